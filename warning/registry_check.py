"""汛前核查 (registry check): a verification SMS to a region's contacts; who answers "1" is confirmed, who does not by the
end — and any number a send fails on for good — is flagged `needs_check` in the registry for follow-up.

A check is not a warning. Its messages travel as deliveries of a carrier record in the warning key space (origin
`registry_check`, CAP status System), so the workers, rate limits, receipts, retries and retention handle them
unchanged; the carrier is never in the warnings list or the active index (no reply attribution, no expiry sweep, no
coverage of any warning), and the warnings API answers 404 for its id. Its keys expire at its end + `[retention]
days`, like a warning's; the flags it sets are registry data.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from contacts.model import CheckFlag, Contact
from warning import keys
from warning.acks import AckLedger, ReplyOutcome, delivery_id, is_ack_text
from warning.audit import AuditLog
from warning.clock import Clock
from warning.delivery import Delivery, DeliveryState
from warning.delivery_store import DeliveryStore, Row
from warning.dispatcher import Dispatcher
from warning.drafting import CN_TZ
from warning.due import DueQueue
from warning.errors import ConfigError, EarlyWarningError
from warning.escalation import Planner
from warning.model import Area, EarlyWarning, Info, Level, MsgType, Scope, Status, WarningState
from warning.policy import Policy
from warning.record import LIVE_STATES, WarningRecord
from warning.retention import Retention
from warning.settings import Settings

logger = logging.getLogger(__name__)
S = DeliveryState
#: the carrier record's origin, and the deliveries' message type (counted apart from any warning: their own record)
ORIGIN = "registry_check"
MSG_TYPE = "check"
#: the due-queue timer that closes a check at its end: `chk|<check id>`
TIMER = "chk"
#: checks still open: id → when they end (shared by every check; a check leaves it when it closes)
OPEN_INDEX = keys.CHECKS_OPEN
#: how long people may take to answer, at least and at most
MIN_REPLY_WITHIN_S = 60
MAX_REPLY_WITHIN_S = 30 * 86400
DEFAULT_REPLY_WITHIN_S = 86400
#: the send error a delivery records when the provider refused the number itself (warning.errors.Reason)
INVALID_ADDRESS = "invalid_address"
#: states in which the check SMS was handed to the network: no answer by the end means the number needs checking
HANDED = frozenset({S.ACCEPTED, S.SENT, S.DELIVERED})
FAILED = frozenset({S.FAILED, S.UNDELIVERED})


class CheckError(EarlyWarningError):
    """A check that cannot start: `status` 400 (nobody to check) or 409 (another check, no SMS channel)."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        self.status, self.error, self.detail = status, error, detail
        super().__init__(error)


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """[registry_checks]: how long people have by default, and which provider error codes mean a number is wrong."""

    default_reply_within_s: int = DEFAULT_REPLY_WITHIN_S
    #: receipt error codes (a delivery report's error, e.g. Twilio's ErrorCode) that mean the number itself is wrong
    permanent_failure_codes: frozenset[str] = field(default_factory=lambda: frozenset({"30005", "30006"}))

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckSettings:
        """Read and check `[registry_checks]`; ConfigError naming the file, key and reason."""
        source = settings.sources[-1]
        table = settings.section("registry_checks")
        unknown = sorted(set(table) - {"default_reply_within_s", "permanent_failure_codes"})
        if unknown:
            raise ConfigError(source, f"registry_checks.{unknown[0]}",
                              "unknown key (known: default_reply_within_s, permanent_failure_codes)")
        within = table.get("default_reply_within_s", DEFAULT_REPLY_WITHIN_S)
        if isinstance(within, bool) or not isinstance(within, int) or not \
                MIN_REPLY_WITHIN_S <= within <= MAX_REPLY_WITHIN_S:
            raise ConfigError(source, "registry_checks.default_reply_within_s",
                              f"expected whole seconds from {MIN_REPLY_WITHIN_S} to {MAX_REPLY_WITHIN_S}, got {within!r}")
        codes = table.get("permanent_failure_codes", sorted(cls().permanent_failure_codes))
        if not isinstance(codes, list) or not all(isinstance(c, str) and c.strip() for c in codes):
            raise ConfigError(source, "registry_checks.permanent_failure_codes",
                              f"expected a list of provider error codes (strings), got {codes!r}")
        return cls(default_reply_within_s=within, permanent_failure_codes=frozenset(c.strip() for c in codes))


class CheckFlags(Protocol):
    """The registry's needs_check flags, as checks set and clear them (contacts.store.RedisRegistry)."""

    async def get_many(self, ids: Sequence[str]) -> list[Contact]: ...

    async def ids_in_regions(self, prefixes: Sequence[str], roles: Sequence[str] | None = None,
                             channel: str | None = None, active_only: bool = True) -> set[str]: ...

    async def flag_needs_check(self, flags: Sequence[tuple[str, CheckFlag]]) -> list[int]: ...

    async def clear_needs_check(self, ids: Sequence[str]) -> list[int]: ...


def check_text(signature: str) -> str:
    """The verification SMS: the signature first and alone, then the request; Chinese only."""
    return f"{signature}请回复1确认本号码有效。"


def confirmed_text(signature: str) -> str:
    """The answer to a confirming reply."""
    return f"{signature}本号码已核实，谢谢。"


def permanent(error: str | None, codes: frozenset[str]) -> bool:
    """Whether a delivery's error says the number itself is wrong: the provider refused it as an address when we
    sent, or its delivery report carries one of the configured codes."""
    if not error:
        return False
    text = error.strip()
    return text.startswith(INVALID_ADDRESS) or text in codes or text.split(":", 1)[0].strip() in codes


def contact_of(row: Row) -> str | None:
    """The registry contact a person's delivery went to (a notice goes to `n:<contact id>`; a duty phone to none)."""
    rid = row.delivery.recipient_id
    if rid.startswith("n:"):
        rid = rid[2:]
        return None if rid.startswith("duty-") else rid
    return rid


@dataclass(frozen=True, slots=True)
class Outcome:
    """A check's result per person at its end: confirmed, no_reply, failed or not_sent."""

    contact_id: str
    result: str
    detail: str = ""


def outcomes(rows: Sequence[Row], acked: set[str]) -> list[Outcome]:
    """Each person's result: confirmed (answered), no_reply (the SMS went out, no answer), failed (the SMS failed or
    was not delivered), not_sent (it never left: the check ended first)."""
    out = []
    for row in rows:
        d = row.delivery
        if d.recipient_id in acked or d.state is S.ACKNOWLEDGED:
            out.append(Outcome(d.recipient_id, "confirmed"))
        elif d.state in HANDED:
            out.append(Outcome(d.recipient_id, "no_reply"))
        elif d.state in FAILED:
            out.append(Outcome(d.recipient_id, "failed", d.error or d.state.value))
        else:
            out.append(Outcome(d.recipient_id, "not_sent", d.state.value))
    return out


class RegistryChecks:
    """Starts checks, credits replies to them, closes them at their end, and flags numbers that fail for good."""

    def __init__(self, *, redis: aioredis.Redis, store: DeliveryStore, registry: CheckFlags, planner: Planner,
                 dispatcher: Dispatcher, due: DueQueue, ledger: AckLedger, audit: AuditLog, retention: Retention,
                 policy: Policy, clock: Clock, settings: CheckSettings, issuer: Mapping[str, Any],
                 region_names: Mapping[str, str] | None = None) -> None:
        self.redis: Any = redis
        self.store, self.registry, self.planner, self.dispatcher = store, registry, planner, dispatcher
        self.due = due
        self.ledger, self.audit, self.retention, self.policy = ledger, audit, retention, policy
        self.clock, self.settings, self.issuer = clock, settings, issuer
        self.region_names = dict(region_names or {})
        self.signature = str(issuer.get("signature", ""))

    # ---- starting ------------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"chk{self.clock.now().astimezone(CN_TZ):%Y%m%d}{secrets.token_hex(4)}"

    def _carrier(self, cid: str, region: str, now: datetime, ends: datetime, actor: str) -> WarningRecord:
        name = self.region_names.get(region, region)
        info = Info(language="zh-CN", categories=("Other",), event="预警联系人号码核查", urgency="Unknown",
                    severity="Unknown", certainty="Unknown", sender_name=str(self.issuer.get("name", "")),
                    headline=f"{name}汛前核查", description=check_text(self.signature), expires=ends,
                    areas=(Area.of_regions(name, (region,)),))
        content = EarlyWarning(identifier=cid, sender=str(self.issuer.get("sender", "")), sent=now,
                               status=Status.SYSTEM, msg_type=MsgType.ALERT, scope=Scope.PRIVATE, infos=(info,),
                               level=Level.BLUE)
        return WarningRecord(id=cid, version=1, state=WarningState.ACTIVE, content=content, origin=ORIGIN,
                             created_at=now, updated_at=now, expires_at=ends, reply_code="", drafter=actor,
                             issued_version=1)

    async def _audience(self, region: str, roles: Sequence[str] | None) -> tuple[list[Contact], list[Contact]]:
        """The active contacts to check: those with a mobile (sent the SMS) and those without (listed, not sent)."""
        ids = await self.registry.ids_in_regions([region], roles=list(roles) if roles else None)
        people = await self.registry.get_many(sorted(ids))
        return [c for c in people if c.phone_kind == "mobile"], [c for c in people if c.phone_kind != "mobile"]

    async def _reserve(self, cid: str, region: str, ends: datetime) -> None:
        """Take the region for this check: 409 while another open check covers any of it (a reply must name one)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(10):
                try:
                    await pipe.watch(OPEN_INDEX)
                    now = self.clock.now().timestamp()
                    for other in await pipe.zrangebyscore(OPEN_INDEX, now, "+inf"):
                        theirs = await pipe.hget(keys.warning_key(other), "check_region") or ""
                        if theirs and (theirs.startswith(region) or region.startswith(theirs)):
                            raise CheckError(409, "核查冲突 another check is open here", {
                                "region": f"核查 {other} 仍在进行，覆盖 {theirs}，结束后再发起 check {other} on {theirs} "
                                          "is still open; start this one once it has ended"})
                    pipe.multi()
                    pipe.zadd(OPEN_INDEX, {cid: ends.timestamp()})
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise CheckError(409, "核查冲突 checks are being started here at the same time; try again")

    async def start(self, *, region: str, roles: Sequence[str] | None, reply_within_s: int, actor: str
                    ) -> dict[str, Any]:
        """Plan and queue a check of the region's contacts (optionally only some roles); its summary."""
        if self.dispatcher.routes.channel_for("sms") is None:
            raise CheckError(409, "没有短信通道 no SMS channel is configured", "核查短信无法发送 the check SMS cannot go out")
        mobiles, others = await self._audience(region, roles)
        if not mobiles:
            raise CheckError(400, "没有可核查的联系人 nobody to check",
                             {"region": "该区域（及所选角色）没有登记手机号码的在用联系人 no active contact with a mobile "
                                        "number in this region (and roles)"})
        now = self.clock.now()
        ends = now + timedelta(seconds=reply_within_s)
        cid = self.new_id()
        await self._reserve(cid, region, ends)
        # the closing timer before anything else: whatever fails after this, the check closes (and frees the region)
        await self.due.push(DueQueue.member(TIMER, cid), ends)
        record = self._carrier(cid, region, now, ends, actor)
        await self._write(record, region, roles, reply_within_s, actor, others)
        rows = [self._row(record, c) for c in mobiles]
        await self.planner.plan(record, rows)
        await self.audit.record(cid, "check", actor, region=region, roles=list(roles or []), people=len(rows),
                                without_mobile=len(others), reply_within_s=reply_within_s)
        logger.info("registry check %s of %s by %s: %d SMS, %d without a mobile", cid, region, actor, len(rows),
                    len(others))
        return await self.status(cid) or {}

    def _row(self, record: WarningRecord, c: Contact) -> Row:
        channel = self.dispatcher.routes.channel_for("sms") or ""
        d = Delivery(id=delivery_id(record.id, 1, c.id, "sms"), warning_id=record.id, version=1, recipient_id=c.id,
                     channel=channel, kind="sms", address=c.phone, updated_at=record.created_at)
        return Row(d, region=c.region, role=c.role, lang=c.lang, msg_type=MSG_TYPE, name=c.name,
                   body=check_text(self.signature))

    async def _write(self, record: WarningRecord, region: str, roles: Sequence[str] | None, reply_within_s: int,
                     actor: str, others: Sequence[Contact]) -> None:
        """The carrier record with the check's own fields, and its issue mark (acked_5m/15m count from it)."""
        ttl = self.retention.keep_s(record)
        check = {"check_region": region, "check_roles": json.dumps(list(roles or [])),
                 "check_reply_within_s": str(reply_within_s), "check_by": actor,
                 "check_text": check_text(self.signature),
                 "check_without_mobile": json.dumps([c.id for c in others])}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.warning_key(record.id), mapping={**record.to_hash(), **check,
                                                            "keep_until": str(self.retention.keep_until(record))})
            pipe.hset(keys.escalation_key(record.id), "issued:1", record.created_at.isoformat())
            for name in (keys.warning_key(record.id), keys.escalation_key(record.id)):
                pipe.expire(name, ttl)
            await pipe.execute()

    # ---- reading ----------------------------------------------------------------------------------
    async def carrier(self, cid: str) -> tuple[WarningRecord, dict[str, str]] | None:
        """The check's carrier record and its raw fields; None when there is no such check."""
        h = await self.redis.hgetall(keys.warning_key(cid))
        if not h or h.get("origin") != ORIGIN:
            return None
        return WarningRecord.from_hash(h), h

    async def status(self, cid: str) -> dict[str, Any] | None:
        """Progress: the figures, and each person's result so far (confirmed, waiting, failed, ...)."""
        found = await self.carrier(cid)
        if found is None:
            return None
        record, h = found
        acked = set(await self.store.acked(cid))
        rows = await self.store.rows(cid, await self.store.ids(cid))
        closed = record.state is not WarningState.ACTIVE
        people = []
        for row, result in zip(rows, outcomes(rows, acked), strict=True):
            d = row.delivery
            shown = result.result if closed or result.result in ("confirmed", "failed") else "waiting"
            people.append({"id": d.recipient_id, "name": row.name, "role": row.role, "region": row.region,
                           "phone": d.address, "state": d.state.value, "result": shown,
                           "error": d.error, "at": d.updated_at.isoformat() if d.updated_at else None})
        people.sort(key=lambda p: (p["region"], p["name"]))
        counts = await self.store.counts(cid)
        return {"id": cid, "state": "closed" if closed else "open", "region": h.get("check_region", ""),
                "region_name": self.region_names.get(h.get("check_region", ""), ""),
                "roles": json.loads(h.get("check_roles") or "[]"), "by": h.get("check_by", ""),
                "text": h.get("check_text", ""), "reply_within_s": int(h.get("check_reply_within_s") or 0),
                "created_at": record.created_at.isoformat(), "closes_at": record.expires_at.isoformat(),
                "closed_at": h.get("check_closed_at") or None,
                "figures": {"targeted": counts.get("targeted", 0), "queued": max(0, counts.get("queued", 0)),
                            "sent": counts.get("sent", 0), "delivered": counts.get("delivered", 0),
                            "failed": counts.get("failed", 0), "confirmed": counts.get("acked", 0)},
                "without_mobile": json.loads(h.get("check_without_mobile") or "[]"), "people": people}

    # ---- replies ----------------------------------------------------------------------------------
    async def open_check_of(self, contact_id: str) -> WarningRecord | None:
        """The open check that asked this person, if any."""
        now = self.clock.now()
        for cid in await self.redis.zrangebyscore(OPEN_INDEX, f"({now.timestamp()}", "+inf"):
            if await self.redis.hexists(keys.recipients_key(cid), contact_id):
                found = await self.carrier(cid)
                if found is not None and found[0].state is WarningState.ACTIVE:
                    return found[0]
        return None

    async def warning_waits_for(self, contact_id: str) -> bool:
        """Whether a live warning sent to this person asks them to confirm and they have not yet."""
        now = self.clock.now()
        for wid in await self.redis.zrange(keys.ACTIVE_INDEX, 0, -1):
            if not await self.redis.hexists(keys.recipients_key(wid), contact_id):
                continue
            h = await self.redis.hmget(keys.warning_key(wid), ["state", "level", "status", "expires_at"])
            state, level, status, expires = h
            if state not in {s.value for s in LIVE_STATES} or not expires or datetime.fromisoformat(expires) <= now:
                continue
            asks = level in ("blue", "yellow", "orange", "red") and self.policy.for_level(level).ack_deadline_s > 0
            if asks and status not in (Status.TEST.value, Status.DRAFT.value) and \
                    not await self.redis.hexists(keys.acked_key(wid), contact_id):
                return True
        return False

    async def claim_reply(self, contact_id: str, text: str) -> ReplyOutcome | None:
        """ReplyService's hook: a confirmation from someone an open check asked, when no live warning waits for
        their confirmation, confirms the check (and takes their needs_check flag off); else None."""
        if not is_ack_text(text):
            return None
        record = await self.open_check_of(contact_id)
        if record is None or await self.warning_waits_for(contact_id):
            return None
        result = await self.ledger.acknowledge(record, contact_id, via="sms", detail="check")
        if result is None:
            return None
        await self.registry.clear_needs_check([contact_id])
        await self.audit.record(record.id, "reply", contact_id, ack=True, new=result.new)
        return ReplyOutcome("check", record.id, text=confirmed_text(self.signature), new=result.new)

    # ---- the end ----------------------------------------------------------------------------------
    async def close(self, fields: list[str]) -> None:
        """Due-queue handler for `chk|<check id>`: stop what was not sent, flag who did not answer, close. Safe to
        run again (flags keep the first reason; the record is closed last)."""
        cid = fields[0]
        found = await self.carrier(cid)
        if found is None or found[0].state is not WarningState.ACTIVE:
            await self.redis.zrem(OPEN_INDEX, cid)
            return
        record, _ = found
        now = self.clock.now()
        await self.dispatcher.withdraw(record.with_(state=WarningState.EXPIRED), "expired")
        rows = await self.store.rows(cid, await self.store.ids(cid))
        results = outcomes(rows, set(await self.store.acked(cid)))
        flags = [(o.contact_id, CheckFlag("no_reply" if o.result == "no_reply" else "failed", now.isoformat(),
                                          cid if o.result == "no_reply" else f"{cid}: {o.detail[:80]}"))
                 for o in results if o.result in ("no_reply", "failed")]
        flagged = await self.registry.flag_needs_check(flags)
        summary = {r: sum(1 for o in results if o.result == r) for r in ("confirmed", "no_reply", "failed", "not_sent")}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.warning_key(cid), mapping={"state": WarningState.EXPIRED.value, "updated_at": now.isoformat(),
                                                      "check_closed_at": now.isoformat(),
                                                      "check_summary": json.dumps(summary)})
            pipe.zrem(OPEN_INDEX, cid)
            await pipe.execute()
        await self.audit.record(cid, "check_closed", "system", **summary, flagged=sum(1 for f in flagged if f == 1))
        logger.info("registry check %s closed: %s; %d numbers flagged", cid, summary, sum(1 for f in flagged if f == 1))

    # ---- failures of any send -------------------------------------------------------------------
    async def note_failures(self, rows: Sequence[Row]) -> int:
        """Worker and receipt hook: a person's number a send failed on for good is flagged; returns how many were."""
        now = self.clock.now().isoformat()
        flags = []
        for row in rows:
            d = row.delivery
            cid = contact_of(row)
            if d.kind in ("sms", "voice") and d.state in FAILED and cid and \
                    permanent(d.error, self.settings.permanent_failure_codes):
                flags.append((cid, CheckFlag("failed", now, f"{d.warning_id} {d.kind}: {(d.error or '')[:80]}")))
        if not flags:
            return 0
        done = sum(1 for r in await self.registry.flag_needs_check(flags) if r == 1)
        if done:
            logger.info("%d numbers flagged needs_check: a send failed on them for good", done)
        return done
