"""Receipts: provider reports applied to deliveries — found by provider id, held when they come first,
terminal wins, counters once; concurrent callbacks share one round of Redis calls."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from contacts.directory import ContactDirectory
from warning import keys
from warning.acks import AckLedger, ack_counters, delivery_id
from warning.channel import ReceiptEvent
from warning.clock import Clock
from warning.delivery import DeliveryState, classify, requeue
from warning.delivery_store import NOTICE, Change, DeliveryStore, Row, counter_fields
from warning.dispatcher import priority_of
from warning.due import DueQueue
from warning.errors import IllegalTransition
from warning.escalation import Planner
from warning.policy import Policy
from warning.record import LIVE_STATES, WarningRecord
from warning.targeting import person_kinds
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
S = DeliveryState
#: a receipt whose provider id is not recorded yet waits this long for it
HELD_TTL_S = 3600
#: busy / no-answer: call again this many times, this long apart, while the warning is live
VOICE_RETRIES = 2
VOICE_RETRY_S = 120.0
MAX_BATCH = 2000

# KEYS: each receipt's refs in pairs (by provider id, by our delivery id).  ARGV: the delivery key's text
# before the warning id, between it and the delivery id, after it (keys.delivery_key's form).
# Per pair: false when neither ref is recorded, else {ref '<warning id>:<delivery id>', its hash flat}.
_LOCATE = """
local out = {}
for i = 1, #KEYS, 2 do
  local ref = redis.call('GET', KEYS[i]) or redis.call('GET', KEYS[i + 1])
  if ref then
    local sep = string.find(ref, ':', 1, true)
    local key = ARGV[1] .. string.sub(ref, 1, sep - 1) .. ARGV[2] .. string.sub(ref, sep + 1) .. ARGV[3]
    out[#out + 1] = {ref, redis.call('HGETALL', key)}
  else
    out[#out + 1] = false
  end
end
return out
"""
# KEYS: triples (ref by provider id, ref by our delivery id, held list).  ARGV: ttl, then one receipt json a triple.
# Atomic against the worker's SET of the ref: either the ref is seen here, or the receipt is held
# before the worker's on_accepted hook drains the list.  Per triple: the ref, or false when held.
_HOLD = """
local out = {}
for i = 1, #KEYS, 3 do
  local ref = redis.call('GET', KEYS[i]) or redis.call('GET', KEYS[i + 1])
  if ref then
    out[#out + 1] = ref
  else
    redis.call('RPUSH', KEYS[i + 2], ARGV[(i + 2) / 3 + 1])
    redis.call('EXPIRE', KEYS[i + 2], tonumber(ARGV[1]))
    out[#out + 1] = false
  end
end
return out
"""
# KEYS: delivery hashes.  Their fields, flat, in order (empty for a missing one).
_READ = """
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end
return out
"""
# KEYS: held lists.  Take them whole (the claim: two workers never apply the same held receipt).
_TAKE = """
local out = {}
for _, k in ipairs(KEYS) do
  for _, v in ipairs(redis.call('LRANGE', k, 0, -1)) do out[#out+1] = v end
  redis.call('DEL', k)
end
return out
"""


def encode(ev: ReceiptEvent) -> str:
    return json.dumps({"c": ev.channel, "p": ev.provider_ref, "d": ev.delivery_id, "s": ev.state.value,
                       "at": ev.at.isoformat() if ev.at else None, "e": ev.error_code, "r": ev.raw_status,
                       "a": ev.ack, "g": ev.digits, "t": ev.retryable}, ensure_ascii=False)


def decode(raw: str) -> ReceiptEvent:
    d = json.loads(raw)
    return ReceiptEvent(channel=d["c"], provider_ref=d["p"], delivery_id=d["d"], state=DeliveryState(d["s"]),
                        at=datetime.fromisoformat(d["at"]) if d["at"] else None, error_code=d["e"],
                        raw_status=d["r"], ack=d["a"], digits=d["g"], retryable=d["t"])


def _refs(ev: ReceiptEvent) -> tuple[str, str]:
    primary = ev.provider_ref or ev.delivery_id or ""
    return keys.ref_key(ev.channel, primary), keys.ref_key(ev.channel, ev.delivery_id or primary)


@dataclass
class _Batch:
    """One round of receipts: what each delivery became and what must follow."""

    now: datetime
    records: dict[str, WarningRecord | None] = field(default_factory=dict)
    retries: dict[str, datetime] = field(default_factory=dict)
    failed_sms: list[Row] = field(default_factory=list)
    #: person deliveries (SMS and calls) that ended failed or undelivered
    failed: list[Row] = field(default_factory=list)
    acked: list[Row] = field(default_factory=list)


class ReceiptService:
    """Applies ReceiptEvents; `submit` groups concurrent callers into one batch (one pipeline, one Lua call a warning)."""

    def __init__(self, *, redis: aioredis.Redis, store: DeliveryStore, warnings: WarningStore, ledger: AckLedger,
                 planner: Planner, due: DueQueue, directory: ContactDirectory, policy: Policy, clock: Clock,
                 held_ttl_s: int = HELD_TTL_S) -> None:
        self.redis: Any = redis
        self.store, self.warnings, self.ledger = store, warnings, ledger
        self.planner, self.due, self.directory, self.policy, self.clock = planner, due, directory, policy, clock
        self.held_ttl_s = held_ttl_s
        self._hold = redis.register_script(_HOLD)
        self._take = redis.register_script(_TAKE)
        self._read = redis.register_script(_READ)
        self._locate = redis.register_script(_LOCATE)
        before, _, rest = keys.delivery_key("\x00", "\x01").partition("\x00")
        self._key_parts = [before, *rest.split("\x01")]
        self._queue: list[tuple[ReceiptEvent, asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: called with a batch's person deliveries that ended failed or undelivered (registry checks flag numbers)
        self.on_failed: Callable[[list[Row]], Awaitable[object]] | None = None

    # ---- batching ------------------------------------------------------------------------
    async def submit(self, event: ReceiptEvent) -> str:
        """Apply one receipt together with whatever else arrived meanwhile; its outcome (applied, stale, held, ...)."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append((event, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                outcomes = await self.apply([e for e, _ in batch])
            except Exception as exc:  # every waiting webhook answers 500 and the provider retries
                logger.exception("a batch of %d receipts failed", len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)

    # ---- applying -----------------------------------------------------------------------
    async def locate(self, events: Sequence[ReceiptEvent]) -> list[str | None]:
        """'<warning id>:<delivery id>' of each receipt's delivery, None where its provider id is not recorded."""
        names = [k for ev in events for k in _refs(ev)]
        found = await self.redis.mget(names) if names else []
        return [found[2 * i] or found[2 * i + 1] for i in range(len(events))]

    async def _find(self, events: Sequence[ReceiptEvent]) -> tuple[list[str | None], dict[tuple[str, str], Row]]:
        """Each receipt's '<warning id>:<delivery id>' and the deliveries found, in one script call."""
        pairs: dict[tuple[str, str], int] = {}
        slots = [pairs.setdefault(_refs(ev), len(pairs)) if ev.provider_ref or ev.delivery_id else -1 for ev in events]
        found = await self._locate(keys=[k for pair in pairs for k in pair], args=self._key_parts) if pairs else []
        rows: dict[tuple[str, str], Row] = {}
        for item in found:
            if item and item[1]:
                wid, _, did = item[0].partition(":")
                h = item[1]
                rows[(wid, did)] = Row.from_fields(dict(zip(h[::2], h[1::2], strict=True)))
        return [found[j][0] if j >= 0 and found[j] else None for j in slots], rows

    async def _hold_unknown(self, events: Sequence[ReceiptEvent], refs: list[str | None], out: list[str]) -> None:
        """Hold the receipts whose provider id is not recorded yet, all in one script call (see _HOLD)."""
        todo: list[int] = []
        for i, ref in enumerate(refs):
            if ref is None:
                if events[i].provider_ref or events[i].delivery_id:
                    todo.append(i)
                else:
                    out[i] = "ignored"
        if not todo:
            return
        names: list[str] = []
        for i in todo:
            ev = events[i]
            names += [*_refs(ev), keys.held_receipts_key(ev.channel, ev.provider_ref or ev.delivery_id or "")]
        found = await self._hold(keys=names, args=[self.held_ttl_s, *(encode(events[i]) for i in todo)])
        for i, ref in zip(todo, found, strict=True):
            refs[i] = ref or None
            if not ref:
                out[i] = "held"

    async def apply(self, events: Sequence[ReceiptEvent]) -> list[str]:
        """Apply receipts in order; outcomes: applied, stale, held, ignored."""
        refs, rows = await self._find(events)
        out = ["stale"] * len(events)
        if None in refs:
            await self._hold_unknown(events, refs, out)
        work: dict[tuple[str, str], list[int]] = {}
        for i, ref in enumerate(refs):
            if ref:
                wid, _, did = ref.partition(":")
                work.setdefault((wid, did), []).append(i)
        if work:
            batch = _Batch(self.clock.now())
            await self._settle(work, rows, events, out, batch)
            await self._after(batch)
        return out

    async def _records(self, batch: _Batch, wids: set[str]) -> None:
        """Read the warnings a decision needs (voice retries, fallbacks, acknowledgments) once a batch."""
        for wid in wids - batch.records.keys():
            batch.records[wid] = await self.warnings.get(wid)

    async def _settle(self, work: dict[tuple[str, str], list[int]], rows: dict[tuple[str, str], Row],
                      events: Sequence[ReceiptEvent], out: list[str], batch: _Batch) -> None:
        pending = dict(work)
        for _ in range(8):
            if not pending:
                return
            await self._records(batch, {w for (w, _), idx in pending.items()
                                        if any(events[i].state is S.FAILED and events[i].retryable for i in idx)})
            missing = [key for key in pending if key not in rows]
            if missing:
                rows.update(await self._rows(missing))
            plans: dict[str, list[tuple[tuple[str, str], list[Change]]]] = {}
            for key, idx in pending.items():
                row = rows.get(key)
                if row is None:
                    continue
                chain = await self._chain(row, [events[i] for i in idx], idx, out, batch)
                if chain:
                    plans.setdefault(key[0], []).append((key, chain))
            pending, rows = {}, {}
            results = await asyncio.gather(*(self.store.commit(wid, [c for _, ch in items for c in ch])
                                              for wid, items in plans.items()))
            for (wid, items), ok in zip(plans.items(), results, strict=True):
                pos = 0
                for key, chain in items:
                    good = ok[pos:pos + len(chain)]
                    pos += len(chain)
                    if all(good):
                        self._note(chain, batch)
                    else:  # the delivery moved meanwhile (a send result, another receipt): read again
                        pending[key] = work[key]
                        for i in work[key]:
                            out[i] = "stale"

    async def _rows(self, targets: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        """The deliveries' hashes in one command (a pipeline would pack one command each)."""
        found = await self._read(keys=[keys.delivery_key(wid, did) for wid, did in targets])
        return {t: Row.from_fields(dict(zip(h[::2], h[1::2], strict=True)))
                for t, h in zip(targets, found, strict=True) if h}

    async def _chain(self, row: Row, events: list[ReceiptEvent], idx: list[int], out: list[str],
                     batch: _Batch) -> list[Change]:
        """The changes these receipts make to one delivery, in arrival order, each from the state the last one left."""
        chain: list[Change] = []
        for ev, i in zip(events, idx, strict=True):
            try:
                change = await self._change(row, ev, batch)
            except IllegalTransition:  # e.g. a receipt for a delivery never handed to a provider
                logger.warning("receipt %s for delivery %s in state %s ignored", ev.state.value, row.delivery.id,
                               row.delivery.state.value)
                out[i] = "ignored"
                continue
            if change is None:
                out[i] = "stale"
                continue
            chain.append(change)
            row = change.row
            out[i] = "applied"
        return chain

    async def _change(self, row: Row, ev: ReceiptEvent, batch: _Batch) -> Change | None:
        now = batch.now
        extra = {"raw": ev.raw_status}
        if ev.state is S.FAILED and ev.retryable and row.delivery.kind == "voice":
            record = batch.records.get(row.delivery.warning_id)
            if row.delivery.attempts <= VOICE_RETRIES and self._live(record, row, now) and record is not None:
                when = now + timedelta(seconds=VOICE_RETRY_S)
                change = self._requeue(row, now, ev.error_code or ev.raw_status, when)
                if change is not None:
                    batch.retries[DueQueue.member("retry", record.id, row.delivery.id, row.delivery.channel,
                                                  str(priority_of(record)))] = when
                    return change
        counters: list[str] = []
        if ev.state is S.ACKNOWLEDGED and row.msg_type != NOTICE and row.delivery.kind in ("sms", "voice"):
            issued = await self.ledger.issued_at(row.delivery.warning_id, row.delivery.version)
            counters = ack_counters(row, now, issued)
        return self.store.change(row, ev.state, now, reason=ev.error_code, provider_ref=ev.provider_ref,
                                 ack_counters=counters, event={"raw": ev.raw_status}, extra=extra)

    def _requeue(self, row: Row, now: datetime, reason: str, retry_at: datetime) -> Change | None:
        """Back to RETRY_WAIT (busy, no answer), the one backward move; counters leave `sent` for `queued`."""
        d = row.delivery
        moved = requeue(d, now, reason=reason)
        if moved is d:
            return None
        deltas: dict[str, int] = {}
        for bucket, delta in classify(d.state, S.RETRY_WAIT).deltas().items():
            for f in counter_fields(row, bucket.value):
                deltas[f] = deltas.get(f, 0) + delta
        fields = {"state": S.RETRY_WAIT.value, "updated_at": now.isoformat(), "error": reason,
                  "provider_ref": d.provider_ref or ""}
        event = json.dumps({"d": d.id, "w": d.warning_id, "k": d.kind, "s": S.RETRY_WAIT.value, "o": d.state.value,
                            "r": row.region, "at": now.isoformat()}, ensure_ascii=False)
        return Change(d.state, replace(row, delivery=moved), fields,
                      deltas, event=event, retry_at=retry_at.timestamp())

    @staticmethod
    def _live(record: WarningRecord | None, row: Row, now: datetime) -> bool:
        return (record is not None and record.state in LIVE_STATES and now < record.expires_at
                and row.delivery.version == record.issued_version and row.msg_type in ("alert", "update"))

    def _note(self, chain: list[Change], batch: _Batch) -> None:
        last = chain[-1].row
        state = last.delivery.state
        if state in (S.UNDELIVERED, S.FAILED) and last.delivery.kind == "sms":
            batch.failed_sms.append(last)
        if state in (S.UNDELIVERED, S.FAILED) and last.delivery.kind in ("sms", "voice"):
            batch.failed.append(last)
        if state is S.ACKNOWLEDGED and last.delivery.kind in ("sms", "voice") and last.msg_type != NOTICE:
            batch.acked.append(last)

    # ---- what follows a receipt ------------------------------------------------------------
    async def _after(self, batch: _Batch) -> None:
        await self.due.push_many(batch.retries)
        await self._records(batch, {r.delivery.warning_id for r in (*batch.acked, *batch.failed_sms)})
        for row in batch.acked:  # stop the call about to be placed, the next escalation wave
            record = batch.records.get(row.delivery.warning_id)
            if record is not None:
                rows = await self.ledger.person_rows(record, row.delivery.recipient_id)
                await self.store.commit(record.id, self.ledger.settle(rows, batch.now, keep=row.delivery.id))
        for row in batch.failed_sms:
            await self._fallback(row, batch)
        if batch.failed and self.on_failed is not None:
            await self.on_failed(batch.failed)

    async def _fallback(self, row: Row, batch: _Batch) -> None:
        """An SMS that did not arrive: the next channel of the person's policy (a call), while the warning is live."""
        record = batch.records.get(row.delivery.warning_id)
        if record is None or not self._live(record, row, batch.now):
            return
        contact = await self.directory.get(row.delivery.recipient_id)
        if contact is None or not contact.active:
            return
        wanted = person_kinds(contact, self.policy.for_level(record.level.value))
        order = list(dict.fromkeys([*wanted, *contact.channels]))
        later = order[order.index("sms") + 1:] if "sms" in order else [k for k in order if k != "sms"]
        for kind in later:
            if kind != "voice":
                continue
            existing = await self.store.get(record.id, delivery_id(record.id, row.delivery.version, contact.id, kind))
            if existing is not None:
                return  # the policy already calls this person
            new = self.planner.person(record, row.delivery.version, contact, kind, 0)
            if new is not None and await self.planner.plan(record, [new]):
                logger.info("warning %s: SMS %s %s, calling instead (delivery %s)", record.id, row.delivery.id,
                            row.delivery.state.value, new.delivery.id)
            return

    async def release_held(self, warning_id: str, rows: list[Row]) -> None:
        """Worker hook after providers accepted `rows`: apply receipts that came before their ids were recorded."""
        names: list[str] = []
        sets: dict[str, str] = {}
        for r in rows:
            d = r.delivery
            names.append(keys.held_receipts_key(d.channel, d.provider_ref or d.id))
            if d.kind in ("escreen", "broadcast") and d.provider_ref and d.provider_ref != d.id:
                # devices acknowledge by our delivery id even when they named their copy themselves
                sets[keys.ref_key(d.channel, d.id)] = f"{warning_id}:{d.id}"
        if sets:  # provider-id maps expire with the warning's other keys (the worker's maps too)
            ttl = await self.warnings.retention.keep_s_of(warning_id)
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, v in sets.items():
                    pipe.set(k, v, ex=ttl)
                await pipe.execute()
        held: list[Any] = await self._take(keys=names) if names else []
        if held:
            logger.info("warning %s: %d receipts that came early applied", warning_id, len(held))
            await self.apply([decode(h) for h in held])
