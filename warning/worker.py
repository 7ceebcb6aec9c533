"""A channel worker: take a batch from the channel's queues, check, render, rate-limit, send, record, ack."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from warning import keys
from warning.channel import Channel, Outbound, SendResult
from warning.clock import Clock
from warning.delivery import DeliveryState
from warning.delivery_store import Change, DeliveryStore, Row
from warning.dispatcher import ENTRY_IDS, PRIORITIES, priority_of
from warning.due import DueQueue
from warning.errors import DeliveryError, Reason
from warning.metrics import Metrics
from warning.model import WarningState
from warning.ratelimit import RateLimiter
from warning.record import LIVE_STATES, WarningRecord
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
S = DeliveryState
GROUP = "ew-workers"
#: cancellations still go out this long after the warning was cancelled
CANCEL_WINDOW = timedelta(hours=6)
#: waits longer than this leave the worker and go to the due queue
INLINE_RETRY_MAX_S = 1.0


class Messages(Protocol):
    """Renders a warning version for a channel kind and language (cached by the implementation)."""

    def render(self, record: WarningRecord, kind: str, lang: str) -> tuple[str, dict[str, str]]: ...


class WorkerStats:
    """The worker's view of the metrics: counts by outcome and retries by reason, labelled with its channel."""

    def __init__(self, metrics: Metrics, channel: str, provider: str) -> None:
        self.metrics, self.channel, self.provider = metrics, channel, provider

    def count(self, outcome: str) -> None:
        self.metrics.messages.labels(self.channel, self.provider, outcome).inc()

    def retry(self, reason: str) -> None:
        self.metrics.retries.labels(self.channel, reason).inc()

    def latency(self, seconds: float) -> None:
        self.metrics.send_seconds.labels(self.channel).observe(seconds)

    def waited(self, seconds: float) -> None:
        if seconds > 0:
            self.metrics.ratelimit_wait_seconds.labels(self.channel).inc(seconds)


@dataclass(frozen=True)
class WorkerConfig:
    """How one channel instance's worker behaves."""

    account: str
    max_per_s: float
    batch: int = 200
    concurrency: int = 64
    lease_ms: int = 30_000
    block_ms: int = 500
    max_attempts: int = 6
    failover: str | None = None
    failover_after: int = 3
    reclaim_every_s: float = 5.0


# The provider-id → delivery map of a batch in one call: ARGV[1] the TTL, then key, value pairs. One
# SET per message would cost the client more than the send itself. (The keys are built by the caller
# and not declared: on a Redis Cluster this becomes a pipeline of SET.)
_SET_REFS = """
local ttl = ARGV[1]
for i = 2, #ARGV, 2 do redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ttl) end
return (#ARGV - 1) / 2
"""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable and (exc.retry_after_s or 0) <= INLINE_RETRY_MAX_S


class ChannelWorker:
    """Sends one channel instance's deliveries; any number of these share the work through a consumer group."""

    def __init__(self, *, redis: aioredis.Redis, channel: Channel, store: DeliveryStore, warnings: WarningStore,
                 messages: Messages, limiter: RateLimiter, due: DueQueue, clock: Clock, config: WorkerConfig,
                 consumer: str, on_accepted: Callable[[str, list[Row]], Awaitable[None]] | None = None,
                 on_drained: Callable[[str, int], Awaitable[None]] | None = None, rng: random.Random | None = None,
                 metrics: Metrics | None = None, provider: str = "",
                 on_failed: Callable[[list[Row]], Awaitable[object]] | None = None) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.channel, self.store, self.warnings = channel, store, warnings
        self.messages, self.limiter, self.due, self.clock, self.cfg = messages, limiter, due, clock, config
        self.consumer = consumer
        self.on_accepted, self.on_drained = on_accepted, on_drained
        #: called with the deliveries a send failed for good (registry checks flag numbers a provider refused)
        self.on_failed = on_failed
        self.rng = rng or random.Random()
        self.stats = WorkerStats(metrics or Metrics(), channel.name, provider or type(channel).__name__)
        self.streams = [keys.queue_key(channel.name, p) for p in PRIORITIES]
        self._last_reclaim = -1e9
        self._sem = asyncio.Semaphore(config.concurrency)
        self._set_refs = redis.register_script(_SET_REFS)
        #: queue entries carry up to ENTRY_IDS deliveries each; read about `batch` deliveries at a time
        self._entries = max(1, config.batch // ENTRY_IDS)

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        """Work until cancelled; errors are logged at the loop boundary and the loop goes on."""
        await self.ensure_groups()
        while not _cancelling():
            try:
                await self.step(block=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker %s/%s: step failed", self.channel.name, self.consumer)
                await self.clock.sleep(1.0)

    async def step(self, *, block: bool = False) -> int:
        """One batch: reclaim stale leases, else read by priority; returns how many entries were handled."""
        entries, reclaimed = await self._reclaim(), True
        if not entries:
            entries, reclaimed = await self._read(block=block), False
        if entries:
            await self.process(entries, reclaimed=reclaimed)
        return len(entries)

    async def _read(self, *, block: bool) -> list[tuple[str, str, dict[str, str]]]:
        for stream in self.streams:
            res = await self.redis.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self._entries)
            if res:
                return [(stream, eid, f) for _, items in res for eid, f in items]
        if not block:
            return []
        res = await self.redis.xreadgroup(GROUP, self.consumer, dict.fromkeys(self.streams, ">"),
                                          count=self._entries, block=self.cfg.block_ms)
        return [(stream, eid, f) for stream, items in (res or []) for eid, f in items]

    async def _reclaim(self) -> list[tuple[str, str, dict[str, str]]]:
        now = self.clock.monotonic()
        if now - self._last_reclaim < self.cfg.reclaim_every_s:
            return []
        self._last_reclaim = now
        out = []
        for stream in self.streams:
            _, items, _ = await self.redis.xautoclaim(stream, GROUP, self.consumer, self.cfg.lease_ms, "0-0",
                                                      count=self._entries)
            out += [(stream, eid, f) for eid, f in items if f]
            if out:
                break
        if out:
            logger.warning("worker %s reclaimed %d deliveries from a stalled worker", self.channel.name, len(out))
        return out

    async def process(self, entries: Sequence[tuple[str, str, dict[str, str]]], *, reclaimed: bool = False) -> None:
        """Handle a batch read from the queues, then acknowledge it."""
        by_warning: dict[str, list[str]] = {}
        for _, _, f in entries:
            by_warning.setdefault(f["w"], []).extend(f["d"].split())
        for wid, dids in by_warning.items():
            await self._warning_batch(wid, list(dict.fromkeys(dids)), reclaimed=reclaimed)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, eid, _ in entries:
                pipe.xack(stream, GROUP, eid)
                pipe.xdel(stream, eid)
            await pipe.execute()

    async def _warning_batch(self, wid: str, dids: list[str], *, reclaimed: bool) -> None:
        now = self.clock.now()
        claimed = [r for r in await self.store.claim(wid, dids, now, reclaim=reclaimed) if isinstance(r, Row)]
        if not claimed:
            return
        # read after claiming: a cancellation or update written before this read stops these sends here; one
        # written after it leaves them SENDING (it does not stop those) and reaches their people once accepted
        record = await self.warnings.get(wid)
        go: list[tuple[Row, str | None]] = []
        stop: list[tuple[Row, str | None]] = []
        for row in claimed:
            verdict = self._verdict(record, row, now)
            (go if verdict is None else stop).append((row, verdict))
        changes = [c for row, why in stop if (c := self.store.change(
            row, S.EXPIRED if why == "expired" else S.CANCELLED, now, reason=why)) is not None]
        await self.store.commit(wid, changes)
        if go and record is not None:
            await self._send(record, [row for row, _ in go])
        if self.on_drained is not None and record is not None:
            await self.on_drained(wid, record.version)

    def _verdict(self, record: WarningRecord | None, row: Row, now: datetime) -> str | None:
        """None when the delivery may go now; else why it must not (cancelled, superseded, expired)."""
        if record is None:
            return "cancelled"
        d = row.delivery
        if row.msg_type == "cancel":
            if record.state is WarningState.CANCELLED and d.version == record.version and now <= (
                    record.updated_at + CANCEL_WINDOW):
                return None
            return "expired"
        if record.state is WarningState.EXPIRED or now >= record.expires_at:
            return "expired"
        if record.state is WarningState.CANCELLED:
            return "cancelled"
        if d.version < record.issued_version or record.state is WarningState.SUPERSEDED:
            return "superseded"
        if record.state not in LIVE_STATES and record.state is not WarningState.PENDING_APPROVAL:
            return "cancelled"
        return None

    async def _send(self, record: WarningRecord, rows: list[Row]) -> None:
        outbound = []
        for row in rows:
            body, meta = self.messages.render(record, row.delivery.kind, row.lang)
            if row.body:  # a personalised notice: its own text, read out by the voice adapter's own TwiML
                body, meta = row.body, {k: v for k, v in meta.items() if k != "twiml"}
            outbound.append(Outbound(delivery_id=row.delivery.id, address=row.delivery.address, body=body,
                                     lang=row.lang, meta={**meta, "warning_id": record.id}))
        waited = await self.limiter.acquire(self.cfg.account, len(outbound), max_per_s=self.cfg.max_per_s,
                                            burst=max(float(self.cfg.batch), self.cfg.max_per_s))
        self.stats.waited(waited)
        size = max(1, self.channel.capabilities.max_batch)
        chunks = [outbound[i:i + size] for i in range(0, len(outbound), size)]
        results: list[SendResult] = []
        for res in await asyncio.gather(*(self._send_chunk(c) for c in chunks)):
            results.extend(res)
        await self._record(record, rows, results)

    async def _send_chunk(self, chunk: list[Outbound]) -> list[SendResult]:
        async with self._sem:
            started = self.clock.monotonic()
            try:
                try:
                    # the first attempt goes straight out: building a retry controller per message would cost
                    # more than the request on a fast gateway
                    results = list(await self.channel.send(chunk))
                except DeliveryError as first:
                    if not _retryable(first):
                        raise
                    self.stats.retry(first.reason.value)
                    results = await self._retry_chunk(chunk)
            except DeliveryError as exc:
                if exc.reason is Reason.RATE_LIMITED and exc.retry_after_s:
                    await self.limiter.slow_down(self.cfg.account, exc.retry_after_s)
                results = [SendResult(o.delivery_id, S.FAILED, error=exc) for o in chunk]
            finally:
                self.stats.latency(self.clock.monotonic() - started)
            if len(results) != len(chunk):
                err = DeliveryError(Reason.OTHER, True, "the channel returned a result count unlike the batch")
                results = [SendResult(o.delivery_id, S.FAILED, error=err) for o in chunk]
            return results

    async def _retry_chunk(self, chunk: list[Outbound]) -> list[SendResult]:
        """Short retries inside the worker (tenacity on the injected clock); longer waits go to the due queue."""
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(2), wait=wait_exponential_jitter(multiplier=0.1, max=INLINE_RETRY_MAX_S),
                retry=retry_if_exception(_retryable), sleep=self.clock.sleep, reraise=True,
                before_sleep=lambda rs: self.stats.retry(_reason(rs.outcome.exception() if rs.outcome else None))):
            with attempt:
                return list(await self.channel.send(chunk))
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _record(self, record: WarningRecord, rows: list[Row], results: list[SendResult]) -> None:
        now = self.clock.now()
        by_id = {r.delivery.id: r for r in rows}
        changes: list[Change] = []
        accepted: list[Row] = []  # provider refs are recorded even when a receipt overtook the result
        due: dict[str, datetime] = {}
        for res in results:
            row = by_id[res.delivery_id]
            change = self._outcome(record, row, res, now, due)
            if change is not None:
                changes.append(change)
                if change.row.delivery.state is S.ACCEPTED:
                    accepted.append(change.row)
        ok = await self.store.commit(record.id, changes)
        committed = [c.row for c, good in zip(changes, ok, strict=True) if good]
        refs = {keys.ref_key(self.channel.name, r.delivery.provider_ref): f"{record.id}:{r.delivery.id}"
                for r in accepted if r.delivery.provider_ref}
        if refs:  # provider-id maps expire with the warning's other keys
            await self._set_refs(args=[self.warnings.retention.keep_s(record), *(x for kv in refs.items() for x in kv)])
        retry_ids = {r.delivery.id for r in committed if r.delivery.state is S.RETRY_WAIT}
        await self.due.push_many({m: t for m, t in due.items() if m.split("|")[2] in retry_ids})
        if self.on_accepted is not None:
            await self.on_accepted(record.id, [r for r in committed if r.delivery.state is S.ACCEPTED])
        failed = [r for r in committed if r.delivery.state is S.FAILED]
        if failed and self.on_failed is not None:
            await self.on_failed(failed)

    def _outcome(self, record: WarningRecord, row: Row, res: SendResult, now: datetime,
                 due: dict[str, datetime]) -> Change | None:
        err = res.error
        if res.state is S.ACCEPTED:
            self.stats.count("accepted")
            return self.store.change(row, S.ACCEPTED, now, provider_ref=res.provider_ref,
                                     extra={"provider_ref": res.provider_ref or ""})
        reason = err.reason.value if err else Reason.OTHER.value
        detail = f"{reason}: {err.detail}" if err and err.detail else reason
        if err is None or not err.retryable:
            self.stats.count(f"failed:{reason}")
            return self.store.change(row, S.FAILED, now, reason=detail)
        self.stats.retry(reason)
        attempts = row.delivery.attempts
        channel = row.delivery.channel
        if self.cfg.failover and attempts >= self.cfg.failover_after and channel == self.channel.name:
            channel = self.cfg.failover
        elif attempts >= self.cfg.max_attempts:
            self.stats.count(f"failed:{reason}")
            return self.store.change(row, S.FAILED, now, reason=f"gave up after {attempts} attempts: {detail}")
        backoff = min(300.0, 2.0 ** attempts) * (0.5 + self.rng.random() / 2)
        when = now + timedelta(seconds=max(backoff if channel == row.delivery.channel else 0.0,
                                           err.retry_after_s or 0.0))
        limit = record.expires_at if row.msg_type != "cancel" else record.updated_at + CANCEL_WINDOW
        if when >= limit:
            self.stats.count("expired")
            return self.store.change(row, S.EXPIRED, now, reason=f"deadline passed while retrying: {detail}")
        due[DueQueue.member("retry", record.id, row.delivery.id, channel, str(priority_of(record)))] = when
        extra = {"channel": channel} if channel != row.delivery.channel else None
        return self.store.change(row, S.RETRY_WAIT, now, reason=detail, extra=extra, retry_at=when)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _reason(exc: BaseException | None) -> str:
    return exc.reason.value if isinstance(exc, DeliveryError) else "other"


# KEYS: the delivery hash, its channel's queue stream.  ARGV: warning id, delivery id.
# Queue the delivery again only while it waits in retry_wait, and once per attempt: `requeued` keeps the attempt count
# it was queued at (a claim counts one more), so a timer fired twice (its lease reclaimed after a crash) queues once.
# The two keys are in two hash slots: on a Redis Cluster the queue would have to carry the warning's tag.
_REQUEUE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'requeued')
local attempts = h[2] or '0'
if h[1] ~= 'retry_wait' or h[3] == attempts then return 0 end
redis.call('HSET', KEYS[1], 'requeued', attempts)
redis.call('XADD', KEYS[2], '*', 'w', ARGV[1], 'd', ARGV[2])
return 1
"""


class RetryRequeue:
    """Due-queue handler for `retry|<warning>|<delivery>|<channel>|<priority>`: the delivery goes back on its channel's
    queue when its retry time has come (idempotent: see _REQUEUE)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._requeue = redis.register_script(_REQUEUE)

    async def __call__(self, fields: list[str]) -> None:
        await self.requeue(fields)

    async def requeue(self, fields: list[str]) -> bool:
        """True when the delivery was queued; False when it no longer waits for this retry."""
        wid, did, channel, prio = fields
        return bool(await self._requeue(keys=[keys.delivery_key(wid, did), keys.queue_key(channel, int(prio))],
                                        args=[wid, did]))
