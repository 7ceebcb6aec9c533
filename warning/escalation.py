"""Escalation (叫应): who has not confirmed by each step's deadline is called, then their supervisor or the
township's duty officer is told, then the county duty officer; timers live in the due queue."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from contacts.directory import ContactDirectory
from contacts.duty import DutyRoster
from contacts.model import Contact
from warning import keys
from warning.acks import AckLedger, delivery_id
from warning.audit import AuditLog
from warning.clock import Clock
from warning.delivery import Delivery
from warning.delivery_store import NOTICE, DeliveryStore, Row
from warning.dispatcher import Dispatcher
from warning.due import DueQueue
from warning.errors import StoreError
from warning.messages import MessageFactory
from warning.model import MsgType, Status
from warning.policy import Policy
from warning.record import LIVE_STATES, WarningRecord
from warning.retention import LUA_KEEP_S
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
KIND = "esc"
#: names listed in one notice before "等N人"
MAX_NAMES = 8
#: townships listed in the county's notice before "等N个乡镇"
MAX_TOWNSHIPS = 6

# KEYS: the warning's escalation hash, its record, the due set.  ARGV: now, fallback (LUA_KEEP_S), the issued field, when
# the version went out, then member, due (epoch s) pairs. The issued mark and the step timers in one step, the first
# time only: a crash leaves both or neither (and the dispatcher starts them before it marks the version planned, so a
# version re-planned after a restart starts them then).
_START = LUA_KEEP_S + """
if redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], keep_s(KEYS[2], ARGV[1], ARGV[2]))
for i = 5, #ARGV, 2 do redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Target:
    """Someone an escalation notice goes to: a supervisor, or an on-duty officer."""

    id: str  # recipient id of the notice: "n:<contact id>" or "n:duty-<hash>"
    phone: str
    name: str
    region: str
    role: str
    contact_id: str = ""


class Planner:
    """Extra deliveries of a version (fallback channel, escalation waves, notices): recorded once by id, queued."""

    def __init__(self, *, store: DeliveryStore, dispatcher: Dispatcher, clock: Clock) -> None:
        self.store, self.dispatcher, self.clock = store, dispatcher, clock

    def person(self, record: WarningRecord, version: int, contact: Contact, kind: str, wave: int) -> Row | None:
        """A delivery of the warning to `contact` on `kind`; None when no channel carries that kind."""
        channel = self.dispatcher.routes.channel_for(kind)
        if channel is None:
            return None
        d = Delivery(id=delivery_id(record.id, version, contact.id, kind, wave), warning_id=record.id,
                     version=version, recipient_id=contact.id, channel=channel, kind=kind, address=contact.phone,
                     updated_at=self.clock.now(), wave=wave)
        return Row(d, region=contact.region, role=contact.role, lang=contact.lang,
                   msg_type=record.msg_type.value.lower(), name=contact.name,
                   needs_check=contact.needs_check is not None)

    def notice(self, record: WarningRecord, version: int, target: Target, body: str, wave: int) -> Row | None:
        """A personalised SMS about the warning to someone outside its audience."""
        channel = self.dispatcher.routes.channel_for("sms")
        if channel is None:
            return None
        d = Delivery(id=delivery_id(record.id, version, target.id, "sms", wave), warning_id=record.id,
                     version=version, recipient_id=target.id, channel=channel, kind="sms", address=target.phone,
                     updated_at=self.clock.now(), wave=wave)
        return Row(d, region=target.region, role=target.role, msg_type=NOTICE, name=target.name, body=body)

    async def plan(self, record: WarningRecord, rows: Sequence[Row]) -> int:
        """Record the deliveries that are new and queue them; returns how many were new."""
        if not rows:
            return 0
        rows = await self.store.as_planned(record.id, rows)
        info = {r.delivery.recipient_id: {"name": r.name, "role": r.role, "region": r.region,
                                          **({"notice": "1"} if r.msg_type == NOTICE else {}),
                                          **({"needs_check": "1"} if r.needs_check else {})} for r in rows}
        created = await self.store.create_many(record.id, rows, info)
        await self.dispatcher.enqueue(record, [r.delivery for r in rows])
        return created


class Escalation:
    """Starts a version's escalation timers at issue and runs each step once when its time comes."""

    def __init__(self, *, redis: aioredis.Redis, store: DeliveryStore, warnings: WarningStore,
                 directory: ContactDirectory, policy: Policy, planner: Planner, ledger: AckLedger, due: DueQueue,
                 duty: DutyRoster, audit: AuditLog, clock: Clock, issuer: Mapping[str, object],
                 region_names: Mapping[str, str] | None = None, messages: MessageFactory | None = None) -> None:
        self.redis: Any = redis
        self.store, self.warnings, self.directory = store, warnings, directory
        self.policy, self.planner, self.ledger, self.due, self.duty = policy, planner, ledger, due, duty
        self.audit, self.clock = audit, clock
        self.county = str(issuer.get("code", ""))
        self.signature = str(issuer.get("signature", ""))
        self.region_names = dict(region_names or {})
        self._start = redis.register_script(_START)
        #: names the warning in notices (its issuer, time, places, event and level)
        self.messages = messages

    async def start(self, record: WarningRecord) -> None:
        """Dispatcher hook: remember when the version went out and set its step timers (the first time only)."""
        if record.msg_type is MsgType.CANCEL or record.content.status in (Status.TEST, Status.DRAFT):
            return
        now = self.clock.now()
        level = self.policy.for_level(record.level.value)
        steps = level.escalation if level.ack_deadline_s > 0 else ()
        timers = [x for i, step in enumerate(steps) for x in (DueQueue.member(KIND, record.id, str(record.version),
                                                                              str(i)),
                                                              repr((now + timedelta(seconds=step.after_s)).timestamp()))]
        await self._start(keys=[keys.escalation_key(record.id), keys.warning_key(record.id), keys.DUE_KEY],
                          args=[*self.warnings.retention.script_args(), f"issued:{record.version}", now.isoformat(),
                                *timers])

    def live(self, record: WarningRecord | None, version: int, now: datetime) -> bool:
        """Only the issued version of a live, unexpired warning escalates."""
        return (record is not None and record.state in LIVE_STATES and record.issued_version == version
                and now < record.expires_at)

    async def fire(self, fields: list[str]) -> None:
        """Due-queue handler for `esc|<warning>|<version>|<step>`: run the step unless done or no longer due."""
        wid, version, index = fields[0], int(fields[1]), int(fields[2])
        record = await self.warnings.get(wid)
        now = self.clock.now()
        if record is None or not self.live(record, version, now):
            logger.info("escalation of %s v%d step %d dropped: the warning is no longer live", wid, version, index)
            return
        steps = self.policy.for_level(record.level.value).escalation
        done = f"done:{version}:{index}"
        if index >= len(steps) or await self.redis.hexists(keys.escalation_key(wid), done):
            return
        action = steps[index].action
        people = await self.unacked(record, version)
        # the step's deliveries have deterministic ids: a second run (this timer fired again after a crash before the
        # mark below) records none anew, and the step is marked and audited once
        sent = await self._run(action, record, version, index + 1, people, now) if people else 0
        if await self._mark_done(record, done, now, version=version, step=index, step_action=action,
                                 unacked=len(people), messages=sent):
            logger.info("warning %s v%d step %d (%s): %d unconfirmed, %d messages", wid, version, index, action,
                        len(people), sent)

    async def _mark_done(self, record: WarningRecord, done: str, now: datetime, **detail: Any) -> bool:
        """The step's mark and its audit entry in one transaction; False when another run marked it first."""
        key = keys.escalation_key(record.id)
        for _ in range(10):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    if await pipe.hexists(key, done):
                        return False
                    pipe.multi()
                    pipe.hset(key, done, now.isoformat())
                    self.audit.add_to(pipe, record.id, "escalate", "system", **detail)
                    ttl = self.warnings.retention.keep_s(record)
                    pipe.expire(key, ttl)
                    pipe.expire(keys.audit_key(record.id), ttl)
                    await pipe.execute()
                    return True
                except WatchError:  # the hash moved (another version's marks): read again
                    continue
        raise StoreError(f"escalation of {record.id}: the step mark {done} kept racing other writes")

    async def _run(self, action: str, record: WarningRecord, version: int, wave: int, people: list[Contact],
                   now: datetime) -> int:
        """Plan the step's deliveries (idempotent by id); returns how many the step has."""
        if action == "call":
            rows = [self.planner.person(record, version, c, "voice", wave) for c in people if "voice" in c.channels]
        elif action == "sms_again":
            rows = [self.planner.person(record, version, c, "sms", wave) for c in people
                    if "sms" in c.channels and c.phone_kind == "mobile"]
        elif action == "notify_supervisor":
            rows = await self._supervisors(record, version, wave, people, now)
        else:
            rows = await self._county(record, version, wave, people, now)
        planned = [r for r in rows if r is not None]
        await self.planner.plan(record, planned)
        return len(planned)

    async def unacked(self, record: WarningRecord, version: int) -> list[Contact]:
        """The people this version was sent to who have not confirmed (active registry entries)."""
        rows = await self.store.rows(record.id, await self.store.ids(record.id, version=version))
        people = {r.delivery.recipient_id for r in rows
                  if r.delivery.kind in ("sms", "voice") and r.msg_type != NOTICE and r.delivery.wave == 0}
        acked = set(await self.store.acked(record.id))
        contacts = await self.directory.get_many(sorted(people - acked))
        return [c for c in contacts if c.active]

    async def _audience(self, record: WarningRecord) -> set[str] | None:
        """For a drill, who is in it (escalation stays inside); None for a live warning."""
        if not record.is_exercise:
            return None
        return set(await self.redis.hkeys(keys.recipients_key(record.id)))

    async def _duty_targets(self, region: str, now: datetime) -> list[Target]:
        out = []
        for e in await self.duty.on_duty(region, now):
            contact = await self.directory.get(e.contact_id) if e.contact_id else None
            if contact is not None:
                out.append(_target(contact))
            elif e.phone:
                tag = hashlib.blake2b(e.phone.encode(), digest_size=5).hexdigest()
                out.append(Target(f"n:duty-{tag}", e.phone, e.name or "值班人员", region, "duty_officer"))
        return out

    async def _supervisors(self, record: WarningRecord, version: int, wave: int, people: list[Contact],
                           now: datetime) -> list[Row | None]:
        """Each unconfirmed person's supervisor, or their township's duty officer, gets the list of their people."""
        sup_ids = sorted({c.supervisor for c in people if c.supervisor})
        sups = {s.id: s for s in await self.directory.get_many(sup_ids) if s.active and s.phone}
        groups: dict[str, tuple[Target, list[Contact]]] = {}
        for c in people:
            sup = sups.get(c.supervisor or "")
            targets = [_target(sup)] if sup else await self._duty_targets(c.region[:9], now)
            for t in targets:
                groups.setdefault(t.id, (t, []))[1].append(c)
        audience = await self._audience(record)
        rows = []
        for target, members in groups.values():
            if audience is not None and target.contact_id not in audience:
                continue
            rows.append(self.planner.notice(record, version, target, self._supervisor_text(record, members), wave))
        return rows

    async def _county(self, record: WarningRecord, version: int, wave: int, people: list[Contact],
                      now: datetime) -> list[Row | None]:
        """The county duty officer gets the townships' counts of unconfirmed people."""
        text = self._county_text(record, people)
        audience = await self._audience(record)
        return [self.planner.notice(record, version, t, text, wave) for t in await self._duty_targets(self.county, now)
                if audience is None or t.contact_id in audience]

    def _head(self, record: WarningRecord) -> str:
        """The signature, a drill's mark, and which warning: 三台县气象台12月1日12时35分发布的潼川镇暴雨红色预警."""
        if self.messages is not None:
            return self.messages.signed(self.messages.described(record), exercise=record.is_exercise)
        info = record.content.info
        headline = (info.headline if info else None) or f"{record.level.zh}预警"
        return f"{self.signature}{'（演练）' if record.is_exercise else ''}「{headline}」"

    def _supervisor_text(self, record: WarningRecord, members: list[Contact]) -> str:
        names = "、".join(c.name for c in members[:MAX_NAMES]) + (f"等{len(members)}人" if len(members) > MAX_NAMES else "")
        return f"{self._head(record)}，您负责的{len(members)}人尚未确认收到：{names}。请立即电话或上门通知。"

    def _county_text(self, record: WarningRecord, people: list[Contact]) -> str:
        """The county duty officer's notice: how many have not confirmed, by township (most first)."""
        by_township: dict[str, int] = {}
        for c in people:
            by_township[c.region[:9]] = by_township.get(c.region[:9], 0) + 1
        ranked = sorted(by_township.items(), key=lambda item: (-item[1], item[0]))
        named = [(self.region_names.get(code) or "其他乡镇", n) for code, n in ranked[:MAX_TOWNSHIPS]]
        parts = "，".join(f"{name}{n}人" for name, n in named)
        more = f"等{len(ranked)}个乡镇" if len(ranked) > MAX_TOWNSHIPS else ""
        return f"{self._head(record)}，尚有{len(people)}人未确认收到：{parts}{more}。请督促各乡镇逐户落实。"


def _target(c: Contact) -> Target:
    return Target(f"n:{c.id}", c.phone, c.name, c.region, c.role, contact_id=c.id)
