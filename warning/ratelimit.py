"""A token bucket per provider account, in Redis, shared by every worker; time comes from the Clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.clock import Clock

# KEYS: bucket hash, penalty key.  ARGV: now (s, float), rate per s, burst, n.
# Returns the seconds to wait before `n` tokens are there (0: taken now).
_TAKE = """
local now = tonumber(ARGV[1]); local rate = tonumber(ARGV[2]); local burst = tonumber(ARGV[3]); local n = tonumber(ARGV[4])
local until_ = tonumber(redis.call('GET', KEYS[2]) or '0')
if until_ > now then return tostring(until_ - now) end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst; local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate); ts = now end
if tokens >= n - 0.001 then  -- a thousandth of a token: float rounding must not leave a wait of nothing
  redis.call('HSET', KEYS[1], 'tokens', tostring(math.max(0, tokens - n)), 'ts', tostring(ts))
  redis.call('EXPIRE', KEYS[1], 3600)
  return '0'
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring((n - tokens) / rate)
"""


class RateLimiter:
    """Paces sends to each provider account at `max_per_s`, across all workers and processes."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock
        self._take = redis.register_script(_TAKE)

    async def wait_s(self, account: str, n: int, *, max_per_s: float, burst: float | None = None) -> float:
        """Take `n` tokens now, or say how long to wait for them (nothing is taken then)."""
        if max_per_s <= 0:
            return 0.0
        cap = max(float(n), burst if burst is not None else max(1.0, max_per_s))
        res = await self._take(keys=[keys.ratelimit_key(account), keys.penalty_key(account)],
                               args=[_ts(self.clock.now()), max_per_s, cap, n])
        return float(res)

    async def acquire(self, account: str, n: int, *, max_per_s: float, burst: float | None = None) -> float:
        """Wait until `n` sends are allowed; returns the seconds waited."""
        waited = 0.0
        while (wait := await self.wait_s(account, n, max_per_s=max_per_s, burst=burst)) > 0:
            await self.clock.sleep(wait)
            waited += wait
        return waited

    async def slow_down(self, account: str, seconds: float) -> None:
        """A provider's 429 Retry-After: nobody sends to that account until it has passed."""
        until = _ts(self.clock.now()) + seconds
        await self.redis.set(keys.penalty_key(account), str(until), ex=max(1, int(seconds) + 1))


def _ts(when: datetime) -> float:
    return when.timestamp()
