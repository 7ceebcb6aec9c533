"""Timers that must survive a restart (retries, escalations): a Redis ZSET scored by due time, taken under a lease.

Taking a timer moves it to the leases (scored by the lease's deadline) in the same script; it leaves them only once its
handler has succeeded. A process that dies in between leaves the lease behind, and any due loop fires the timer again
once the deadline has passed. A timer can therefore fire twice (its first handler acted, then the process died before
it finished): every handler makes its step happen once (a step mark written with the step, or a check of state).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.clock import Clock

logger = logging.getLogger(__name__)
Handler = Callable[[list[str]], Awaitable[None]]
#: a timer's handler must finish within this; after it, the timer is presumed abandoned and fires again
LEASE_S = 120.0
#: a handler that failed fires again this much later
RETRY_S = 60.0
#: a timer taken this many times without its handler ever succeeding is given up (logged as an error): a timer that
#: always fails, or kills its process, must not fire forever (with RETRY_S, about ten minutes of trying)
MAX_FIRES = 10

# KEYS: due, leases, tries.  ARGV: now, limit, lease deadline.
# Expired leases first (their process died in the handler), then timers whose time has come: each moves to the leases
# with the new deadline and counts one more firing. Returns member, firings, reclaimed (1/0) for each.
_TAKE = """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, seen = {}, {}
local function take(m, reclaimed)
  redis.call('ZADD', KEYS[2], ARGV[3], m)
  out[#out + 1] = m
  out[#out + 1] = redis.call('HINCRBY', KEYS[3], m, 1)
  out[#out + 1] = reclaimed
  seen[m] = true
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do take(m, 1) end
local room = limit - #out / 3
if room > 0 then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room)) do
    redis.call('ZREM', KEYS[1], m)
    if not seen[m] then take(m, 0) end
  end
end
return out
"""
# KEYS: leases, tries.  ARGV: member, the lease's deadline.  The handler succeeded (or the timer was given up):
# release the lease, unless another loop took it over meanwhile (its deadline differs).
_DONE = """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""
# KEYS: leases, tries, due.  ARGV: member, the lease's deadline, when to fire again, max firings.
# The handler failed: back on the due set (earlier if it is there already), or given up after max firings (2).
_FAIL = """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') >= tonumber(ARGV[4]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 2
end
redis.call('ZADD', KEYS[3], 'LT', ARGV[3], ARGV[1])
return 1
"""
# KEYS: due, leases.  ARGV: when, member.  Set a timer unless it is waiting or being handled already.
_ARM = """
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 0 end
return redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A timer taken by this process: its member, the lease's deadline (its token), how often it was taken."""

    member: str
    deadline: str
    fires: int
    reclaimed: bool

    @property
    def kind(self) -> str:
        return self.member.split("|", 1)[0]


class DueQueue:
    """Members are `kind|field|field...`; each kind has a handler that gets the fields."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock, lease_s: float = LEASE_S) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock
        self.lease_s = lease_s
        self._take = redis.register_script(_TAKE)
        self._done = redis.register_script(_DONE)
        self._fail = redis.register_script(_FAIL)
        self._arm = redis.register_script(_ARM)

    @staticmethod
    def member(kind: str, *fields: str) -> str:
        return "|".join((kind, *fields))

    async def push(self, member: str, due: datetime) -> None:
        await self.redis.zadd(keys.DUE_KEY, {member: due.timestamp()})

    async def push_many(self, items: Mapping[str, datetime]) -> None:
        if items:
            await self.redis.zadd(keys.DUE_KEY, {m: d.timestamp() for m, d in items.items()})

    async def arm(self, member: str, due: datetime) -> bool:
        """Set a timer unless it is set already (waiting or being handled); True when this call set it."""
        return bool(await self._arm(keys=[keys.DUE_KEY, keys.DUE_LEASES], args=[due.timestamp(), member]))

    async def pending(self, members: list[str]) -> list[bool]:
        """For each member: whether its timer is set (waiting, or taken and not finished)."""
        if not members:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                pipe.zscore(keys.DUE_KEY, m)
                pipe.zscore(keys.DUE_LEASES, m)
            found = await pipe.execute()
        return [found[2 * i] is not None or found[2 * i + 1] is not None for i in range(len(members))]

    async def take(self, limit: int = 500) -> list[Lease]:
        """Lease the timers whose time has come (by the injected clock), and those whose lease ran out."""
        now = self.clock.now().timestamp()
        deadline = repr(now + self.lease_s)
        raw = await self._take(keys=[keys.DUE_KEY, keys.DUE_LEASES, keys.DUE_TRIES], args=[now, limit, deadline])
        return [Lease(raw[i], deadline, int(raw[i + 1]), bool(int(raw[i + 2]))) for i in range(0, len(raw), 3)]

    async def done(self, lease: Lease) -> bool:
        """The handler succeeded: the timer is gone for good."""
        return bool(await self._done(keys=[keys.DUE_LEASES, keys.DUE_TRIES], args=[lease.member, lease.deadline]))

    async def fail(self, lease: Lease) -> bool:
        """The handler failed: fire again in RETRY_S; False when the timer is given up (MAX_FIRES)."""
        again = self.clock.now().timestamp() + RETRY_S
        res = await self._fail(keys=[keys.DUE_LEASES, keys.DUE_TRIES, keys.DUE_KEY],
                               args=[lease.member, lease.deadline, again, MAX_FIRES])
        return int(res) != 2

    async def next_due(self) -> float | None:
        """Seconds until the next timer or lease deadline (None: none)."""
        firsts = [await self.redis.zrange(k, 0, 0, withscores=True) for k in (keys.DUE_KEY, keys.DUE_LEASES)]
        scores = [float(f[0][1]) for f in firsts if f]
        if not scores:
            return None
        return max(0.0, min(scores) - self.clock.now().timestamp())

    async def drain(self, handlers: Mapping[str, Handler], limit: int = 500) -> int:
        """Run the handler of every timer whose time has come (and of every abandoned one); returns how many fired."""
        leases = await self.take(limit)
        for lease in leases:
            await self._fire(lease, handlers.get(lease.kind))
        return len(leases)

    async def _fire(self, lease: Lease, handler: Handler | None) -> None:
        if handler is None:
            logger.warning("due timer of unknown kind %s dropped", lease.kind)
            await self.done(lease)
            return
        if lease.fires > MAX_FIRES:  # taken again and again, never finished: its handler kills the process
            logger.error("due timer %s given up: taken %d times, never finished", lease.member, lease.fires - 1)
            await self.done(lease)
            return
        if lease.reclaimed:
            logger.warning("due timer %s fires again: the process that took it stopped before finishing it",
                           lease.member)
        try:
            await handler(lease.member.split("|")[1:])
        except Exception:
            if not await self.fail(lease):
                logger.exception("due timer %s given up after %d failures", lease.member, lease.fires)
            elif lease.fires == 1:
                logger.exception("due timer %s failed; firing again in %d s", lease.member, RETRY_S)
            else:  # the same error again: once with its trace is enough
                logger.warning("due timer %s failed again (%d times)", lease.member, lease.fires)
            return
        await self.done(lease)
