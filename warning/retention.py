"""Retention: every key a warning creates expires at the warning's end plus `[retention] days` (the archive).

The warning's record holds `keep_until` (epoch s). Python writers compute the same instant from the record; the Lua
scripts that write a warning's keys read it from the record (LUA_KEEP_S), so a key created late (a receipt, a reply,
an escalation step) gets the same expiry as the rest. When the end moves (an update changes the expiry, a cancel ends
the warning early), the record's write puts the warning in `keys.RETENTION_PENDING`, and housekeeping's `apply` sets
every existing key to the new instant. That can wait: the old instant is the old end + retention, at least a day off.

What expires when:
- the record, its versions, audit stream, deliveries, counters, recipients, acknowledgments, live events, field
  reports, escalation state, retry index, provider-id maps, CAP identifier and dedup keys: end + retention;
- the reply code: freed when the warning closes (codes are reused), and never before the warning's end;
- held receipts (a provider id not known yet, so no warning): one hour (receipts.HELD_TTL_S).
Queue streams, the due-timer sets and the indexes of warning ids are shared by every warning: their entries are
consumed or pruned, the keys stay (the list with reasons is in tests/warnings/test_retention.py).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.clock import Clock
from warning.record import WarningRecord

logger = logging.getLogger(__name__)
DAY_S = 86400
#: deliveries whose keys are set in one round trip
CHUNK = 1000

# The scripts that write a warning's keys share this: seconds until the warning's keys expire, from the record's
# keep_until; a record already gone (a late write) keeps the key for the whole period (ARGV fallback) from now.
LUA_KEEP_S = """
local function keep_s(record_key, now, fallback)
  local until_ = tonumber(redis.call('HGET', record_key, 'keep_until') or '')
  if until_ == nil then return tonumber(fallback) end
  return math.max(1, math.floor(until_ - tonumber(now)))
end
"""

# KEYS: the warning's record, RETENTION_PENDING.  ARGV: the keep_until a pass applied, the warning id.
# The pass is done unless the end moved meanwhile (that write marked the warning pending again, after this read).
_SETTLED = """
if redis.call('HGET', KEYS[1], 'keep_until') ~= ARGV[1] then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""


def warning_end(record: WarningRecord) -> datetime:
    """When a warning ends: its expiry, or the time it was cancelled or closed when that came first."""
    if record.closed:
        return min(record.expires_at, record.updated_at)
    return record.expires_at


def fixed_keys(warning_id: str) -> list[str]:
    """The keys of a warning besides its versions, deliveries and the global maps that point to it."""
    return [keys.warning_key(warning_id), keys.audit_key(warning_id), keys.deliveries_key(warning_id),
            keys.recipients_key(warning_id), keys.counts_key(warning_id), keys.acked_key(warning_id),
            keys.events_key(warning_id), keys.escalation_key(warning_id), keys.reports_key(warning_id),
            keys.retrying_key(warning_id)]


def delivery_refs(channel: str, kind: str, delivery_id: str, provider_ref: str, prior: str) -> list[str]:
    """The provider-id map keys that lead to one delivery: its provider id, earlier ones (a call placed again), and
    for devices our own id (they acknowledge by it)."""
    out = [keys.ref_key(channel, provider_ref)] if provider_ref else []
    for item in prior.split():
        ch, _, ref = item.partition(":")
        out.append(keys.ref_key(ch, ref))
    if kind in ("escreen", "broadcast"):
        out.append(keys.ref_key(channel, delivery_id))
    return out


class Retention:
    """How long a warning's keys are kept, and setting it on all of them when the warning's end moves."""

    def __init__(self, redis: aioredis.Redis, *, days: int, clock: Clock) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.days, self.clock = days, clock
        self._settled = redis.register_script(_SETTLED)

    @property
    def period_s(self) -> int:
        return self.days * DAY_S

    def keep_until(self, record: WarningRecord) -> int:
        """Epoch seconds at which the warning's keys expire (stored in its record as `keep_until`)."""
        return int((warning_end(record) + timedelta(days=self.days)).timestamp())

    def keep_s(self, record: WarningRecord) -> int:
        """Seconds from now until the warning's keys expire (at least 1)."""
        return max(1, self.keep_until(record) - int(self.clock.now().timestamp()))

    def script_args(self) -> list[str]:
        """LUA_KEEP_S's `now` and `fallback` arguments."""
        return [repr(self.clock.now().timestamp()), str(self.period_s)]

    async def keep_s_of(self, warning_id: str) -> int:
        """keep_s for a warning known by id (its record's keep_until; the whole period when the record is gone)."""
        raw = await self.redis.hget(keys.warning_key(warning_id), "keep_until")
        if raw is None:
            return self.period_s
        return max(1, int(raw) - int(self.clock.now().timestamp()))

    async def apply(self, warning_id: str) -> int:
        """Set every key of the warning to expire at its record's keep_until; returns how many keys were set.

        Safe to run at any time and more than once; the warning leaves RETENTION_PENDING only if its keep_until did
        not change while this ran (else this runs again).
        """
        record_key = keys.warning_key(warning_id)
        total = 0
        for _ in range(3):
            until, version, idents = await self.redis.hmget(record_key, ["keep_until", "version", "identifiers"])
            if until is None:  # the record is gone (expired itself): nothing left to follow it
                await self.redis.srem(keys.RETENTION_PENDING, warning_id)
                return total
            ttl = max(1, int(until) - int(self.clock.now().timestamp()))
            total = await self._fixed(warning_id, int(version or 1), json.loads(idents or "[]"), ttl)
            total += await self._deliveries(warning_id, ttl)
            if await self._settled(keys=[record_key, keys.RETENTION_PENDING], args=[until, warning_id]):
                return total
        logger.warning("warning %s: its end kept moving while its keys' expiry was set; housekeeping goes on",
                       warning_id)
        return total

    async def _fixed(self, warning_id: str, version: int, identifiers: list[str], ttl: int) -> int:
        versions = [keys.version_key(warning_id, v) for v in range(1, version + 1)]
        dedup = []
        for raw in await self.redis.mget(versions):
            content = json.loads(raw) if raw else {}
            if content.get("sender") and content.get("identifier"):
                dedup.append(keys.cap_dedup_key(content["sender"], content["identifier"]))
        names = [*fixed_keys(warning_id), *versions, *(keys.cap_identifier_key(i) for i in identifiers), *dedup]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.expire(name, ttl)
            return sum(bool(x) for x in await pipe.execute())

    async def _deliveries(self, warning_id: str, ttl: int) -> int:
        total, start = 0, 0
        while True:
            ids = await self.redis.zrange(keys.deliveries_key(warning_id), start, start + CHUNK - 1)
            if not ids:
                return total
            start += len(ids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for did in ids:
                    pipe.hmget(keys.delivery_key(warning_id, did), ["channel", "kind", "provider_ref", "prior_refs"])
                found = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for did, (channel, kind, ref, prior) in zip(ids, found, strict=True):
                    pipe.expire(keys.delivery_key(warning_id, did), ttl)
                    for name in delivery_refs(channel or "", kind or "", did, ref or "", prior or ""):
                        pipe.expire(name, ttl)
                total += sum(bool(x) for x in await pipe.execute())
