"""The dispatcher: plan a warning version's deliveries, record them, queue them; withdraw what is stale."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from warning import keys
from warning.audit import AuditLog
from warning.clock import Clock
from warning.delivery import Delivery, DeliveryState
from warning.delivery_store import DeliveryStore, Row
from warning.model import MsgType, Status
from warning.policy import Policy
from warning.record import WarningRecord
from warning.targeting import Recipient, Targeting

logger = logging.getLogger(__name__)
S = DeliveryState
CHUNK = 500
#: delivery ids in one queue entry: a worker takes entries, so this is also the unit a crash can repeat
ENTRY_IDS = 50
#: queue priorities: 0 is taken first; drills come after every live warning
PRIORITY = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
EXERCISE_PRIORITY = 4
PRIORITIES = (0, 1, 2, 3, 4)
#: a delivery whose recipient was handed the message: they must hear of an update or a cancellation
REACHED = frozenset({S.ACCEPTED, S.SENT, S.DELIVERED, S.ACKNOWLEDGED, S.UNDELIVERED})
#: what a cancellation, an update or the expiry stops. Not SENDING: a worker is handing that one to a provider
#: right now; if the provider takes it, the worker sees the newer version and plans it for that person
#: (reach_late), and if not, the worker's own check stops it.
STOPPABLE = frozenset({S.PENDING, S.RETRY_WAIT})


def priority_of(record: WarningRecord) -> int:
    """Drills and System messages (registry checks) come after every live warning."""
    if record.is_exercise or record.content.status is Status.SYSTEM:
        return EXERCISE_PRIORITY
    return PRIORITY[record.level.value]


@dataclass(frozen=True, slots=True)
class Routes:
    """Which channel instance carries each channel kind (from [[channels]])."""

    by_kind: Mapping[str, str]

    def channel_for(self, kind: str) -> str | None:
        return self.by_kind.get(kind)


class Dispatcher:
    """Turns an issued warning version into recorded, queued deliveries (lifecycle's Dispatch port)."""

    def __init__(self, *, redis: aioredis.Redis, store: DeliveryStore, targeting: Targeting, policy: Policy,
                 routes: Routes, audit: AuditLog, clock: Clock) -> None:
        self.redis, self.store, self.targeting, self.policy = redis, store, targeting, policy
        self.routes, self.audit, self.clock = routes, audit, clock
        #: called after a version's deliveries are planned (escalation starts its timers here)
        self.on_issued: Callable[[WarningRecord], Awaitable[None]] | None = None

    async def issue(self, record: WarningRecord, previous: WarningRecord | None) -> None:
        """Plan, record and queue the deliveries of `record.version`; safe to run again (idempotent)."""
        recipients = await self._audience(record, previous)
        rows, unrouted = self._rows(record, recipients)
        if previous is not None:  # people an earlier version counted stay in the column they were counted in
            rows = await self.store.as_planned(record.id, rows)
        info = {r.id: _recipient_info(r) for r in recipients}
        created = 0
        for i in range(0, len(rows), CHUNK):
            # each chunk is queued as soon as it is recorded: the first messages go out while the rest is planned
            chunk = rows[i:i + CHUNK]
            created += await self.store.create_many(record.id, chunk, info)
            await self.enqueue(record, [r.delivery for r in chunk])
        if self.on_issued is not None:
            # before the planned mark: a crash in between leaves the version to be planned again, and so started
            await self.on_issued(record)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.warning_key(record.id), "planned_version", str(record.version))
            pipe.zrem(keys.PLANNING_INDEX, keys.planning_member(record.id, record.version))
            await pipe.execute()
        await self.audit.record(record.id, "send", "system", version=record.version, msg_type=record.msg_type.value,
                                deliveries=len(rows), new=created, unrouted=unrouted)
        logger.info("warning %s v%d: %d deliveries planned (%d new), %d without a channel", record.id, record.version,
                    len(rows), created, len(unrouted))

    async def reach_late(self, record: WarningRecord, handed: Sequence[Row]) -> int:
        """Plan `record.version` (an update or a cancellation) for people an earlier version was handed to after
        that version was planned (a send in flight while it was issued); idempotent; returns how many were new."""
        people: dict[str, set[str]] = {}
        devices: set[str] = set()
        for row in handed:
            if row.delivery.kind in ("escreen", "broadcast"):
                devices.add(row.delivery.recipient_id)
            else:
                people.setdefault(row.delivery.recipient_id, set()).add(row.delivery.kind)
        if record.msg_type is MsgType.CANCEL:
            recipients = await self._cancel_audience(record, people, devices)
        else:
            recipients = await self.targeting.people(record, self.policy.for_level(record.level.value),
                                                     only=set(people))
        rows, _ = self._rows(record, recipients)
        rows = await self.store.as_planned(record.id, rows)
        created = await self.store.create_many(record.id, rows, {r.id: _recipient_info(r) for r in recipients})
        await self.enqueue(record, [r.delivery for r in rows])
        if created:
            await self.audit.record(record.id, "send", "system", version=record.version,
                                    msg_type=record.msg_type.value, deliveries=len(rows), new=created, late=True)
            logger.info("warning %s v%d: planned for %d people handed an earlier version meanwhile", record.id,
                        record.version, created)
        return created

    async def _cancel_audience(self, record: WarningRecord, people_ids: Mapping[str, set[str]],
                               device_ids: set[str]) -> list[Recipient]:
        people = await self.targeting.people(record, self.policy.for_level(record.level.value),
                                             only=set(people_ids))
        # one cancellation per person, on the kind that reached them first
        firsts: dict[str, Recipient] = {}
        for r in people:
            if r.kind in people_ids.get(r.id, ()) and r.id not in firsts:
                firsts[r.id] = r
        devices = [d for d in await self.targeting.devices(record, ("escreen", "broadcast")) if d.id in device_ids]
        return [*firsts.values(), *devices]

    async def audience(self, record: WarningRecord, previous: WarningRecord | None) -> list[Recipient]:
        """Who `record.version` reaches (read only): what issue() plans, and what the preview shows."""
        return await self._audience(record, previous)

    async def _audience(self, record: WarningRecord, previous: WarningRecord | None) -> list[Recipient]:
        level_policy = self.policy.for_level(record.level.value)
        reached = await self._reached(record) if previous is not None else ({}, set())
        if record.msg_type is MsgType.CANCEL:
            return await self._cancel_audience(record, *reached)
        people = await self.targeting.people(record, level_policy)
        if reached[0]:
            known = {r.id for r in people}
            extra = set(reached[0]) - known
            if extra:
                people += await self.targeting.people(record, level_policy, only=extra)
        devices = await self.targeting.devices(record, level_policy.area_channels)
        return [*people, *devices]

    async def _reached(self, record: WarningRecord) -> tuple[dict[str, set[str]], set[str]]:
        """Who was handed any earlier version: person id → kinds that reached them, and device ids."""
        people: dict[str, set[str]] = {}
        devices: set[str] = set()
        ids = [i for v in range(1, record.version) for i in await self.store.ids(record.id, version=v)]
        for row in await self.store.rows(record.id, ids):
            if row.delivery.state in REACHED:
                if row.delivery.kind in ("escreen", "broadcast"):
                    devices.add(row.delivery.recipient_id)
                else:
                    people.setdefault(row.delivery.recipient_id, set()).add(row.delivery.kind)
        return people, devices

    def _rows(self, record: WarningRecord, recipients: Sequence[Recipient]) -> tuple[list[Row], list[str]]:
        rows, unrouted = [], []
        msg = record.msg_type.value.lower()
        now = self.clock.now()
        for r in recipients:
            channel = self.routes.channel_for(r.kind)
            if channel is None:
                unrouted.append(f"{r.id}:{r.kind}")
                continue
            d = Delivery(id=r.delivery_id(record.id, record.version), warning_id=record.id, version=record.version,
                         recipient_id=r.id, channel=channel, kind=r.kind, address=r.address, updated_at=now)
            rows.append(Row(d, region=r.region, role=r.role, lang=r.lang, msg_type=msg, name=r.name,
                            needs_check=r.needs_check))
        return rows, unrouted

    async def enqueue(self, record: WarningRecord, deliveries: Sequence[Delivery]) -> None:
        """Put deliveries on their channel's queue at the warning's priority (duplicates are harmless)."""
        prio = priority_of(record)
        by_channel: dict[str, list[str]] = {}
        for d in deliveries:
            by_channel.setdefault(d.channel, []).append(d.id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel, ids in by_channel.items():
                for i in range(0, len(ids), ENTRY_IDS):
                    pipe.xadd(keys.queue_key(channel, prio), {"w": record.id, "d": " ".join(ids[i:i + ENTRY_IDS])})
            await pipe.execute()

    async def withdraw(self, record: WarningRecord, reason: str) -> None:
        """Stop every not-yet-sent delivery of the versions before `record.version` (all, when expired)."""
        state = S.EXPIRED if reason == "expired" else S.CANCELLED
        top = record.version + (1 if reason == "expired" else 0)
        ids = [i for v in range(1, top) for i in await self.store.ids(record.id, version=v)]
        now = self.clock.now()
        stopped = 0
        for i in range(0, len(ids), CHUNK):
            rows = [r for r in await self.store.rows(record.id, ids[i:i + CHUNK]) if r.delivery.state in STOPPABLE]
            changes = [c for r in rows if (c := self.store.change(r, state, now, reason=reason)) is not None]
            stopped += sum(await self.store.commit(record.id, changes))
        if stopped:
            await self.audit.record(record.id, "cancel" if state is S.CANCELLED else "expire", "system",
                                    stopped=stopped, reason=reason)


def _recipient_info(r: Recipient) -> dict[str, str]:
    return {"name": r.name, "role": r.role, "region": r.region, "device": "1" if r.device else "",
            **({"needs_check": "1"} if r.needs_check else {})}

