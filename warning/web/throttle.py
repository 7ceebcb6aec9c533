"""Failure counters that make guessing tokens slow: dashboard sign-in by address and by the token tried, and the
bearer API by address. Counted in fixed windows of the injected clock, in Redis, so every process sees them."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from warning import keys
from warning.clock import Clock

#: Dashboard sign-in (the form and one-time links): wrong tokens allowed per address, and per token tried (the
#: same wrong token, or the same one-time link with a bad signature, from any number of addresses), per window.
LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW_S = 600
#: Bearer API: answers 401 one address may cause per window; then 429 with Retry-After until the window ends.
API_FAILURES_ALLOWED = 20
API_FAILURE_WINDOW_S = 300


@dataclass(frozen=True)
class Throttle:
    """Counts failures per subject (an address, a token tried) in windows of `window_s`; over `allowed`, a pause."""

    name: str
    allowed: int
    window_s: int

    def _window(self, clock: Clock) -> tuple[int, float]:
        now = clock.now().timestamp()
        return int(now // self.window_s), now

    def _key(self, subject: str, window: int) -> str:
        # a digest, not the subject: a mistyped token is nearly a real one and must not sit in Redis in the clear
        digest = hashlib.sha256(subject.encode(errors="replace")).hexdigest()[:24]
        return keys.throttle_key(self.name, digest, window)

    async def retry_after_s(self, redis: Any, clock: Clock, *subjects: str) -> int | None:
        """Seconds until the window ends when any subject has used up its failures; None when all may go on."""
        window, now = self._window(clock)
        counts = await redis.mget([self._key(s, window) for s in subjects])
        if any(int(c or 0) >= self.allowed for c in counts):
            return max(1, math.ceil((window + 1) * self.window_s - now))
        return None

    async def failed(self, redis: Any, clock: Clock, *subjects: str) -> None:
        """Count one failure against every subject."""
        window, _ = self._window(clock)
        async with redis.pipeline(transaction=False) as pipe:
            for subject in subjects:
                key = self._key(subject, window)
                pipe.incr(key)
                pipe.expire(key, self.window_s)  # only to let Redis forget: the window itself comes from the clock
            await pipe.execute()


SIGN_IN = Throttle("sign-in", LOGIN_FAILURES_ALLOWED, LOGIN_FAILURE_WINDOW_S)
API = Throttle("api", API_FAILURES_ALLOWED, API_FAILURE_WINDOW_S)


def address_of(remote: str | None) -> str:
    """The subject for a peer address."""
    return f"addr:{remote or '-'}"


def token_tried(token: str) -> str:
    """The subject for a token someone tried (a bearer token, a one-time link)."""
    return f"token:{token.strip()}"
