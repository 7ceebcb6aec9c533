"""Timers that must survive a restart (retries, escalations): a Redis ZSET scored by due time."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.clock import Clock

logger = logging.getLogger(__name__)
Handler = Callable[[list[str]], Awaitable[None]]

# Take up to ARGV[2] members due by ARGV[1]; removing them is the claim, so no timer fires twice.
_POP = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #items > 0 then redis.call('ZREM', KEYS[1], unpack(items)) end
return items
"""


class DueQueue:
    """Members are `kind|field|field...`; each kind has a handler that gets the fields."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock
        self._pop = redis.register_script(_POP)

    @staticmethod
    def member(kind: str, *fields: str) -> str:
        return "|".join((kind, *fields))

    async def push(self, member: str, due: datetime) -> None:
        await self.redis.zadd(keys.DUE_KEY, {member: due.timestamp()})

    async def push_many(self, items: Mapping[str, datetime]) -> None:
        if items:
            await self.redis.zadd(keys.DUE_KEY, {m: d.timestamp() for m, d in items.items()})

    async def remove(self, *members: str) -> int:
        return int(await self.redis.zrem(keys.DUE_KEY, *members)) if members else 0

    async def pop_due(self, limit: int = 500) -> list[str]:
        """Claim the members whose time has come (by the injected clock)."""
        return list(await self._pop(keys=[keys.DUE_KEY], args=[self.clock.now().timestamp(), limit]))

    async def next_due(self) -> float | None:
        """Seconds until the next timer (None: none)."""
        first = await self.redis.zrange(keys.DUE_KEY, 0, 0, withscores=True)
        if not first:
            return None
        return max(0.0, float(first[0][1]) - self.clock.now().timestamp())

    async def drain(self, handlers: Mapping[str, Callable[[list[str]], Awaitable[None]]], limit: int = 500) -> int:
        """Run every due timer's handler once; returns how many fired."""
        members = await self.pop_due(limit)
        for m in members:
            kind, *fields = m.split("|")
            handler = handlers.get(kind)
            if handler is None:
                logger.warning("due timer of unknown kind %s dropped", kind)
                continue
            try:
                await handler(fields)
            except Exception:
                # a failed handler puts its timer back a minute later rather than losing it
                logger.exception("due timer %s failed; retrying in 60 s", kind)
                await self.redis.zadd(keys.DUE_KEY, {m: self.clock.now().timestamp() + 60})
        return len(members)
