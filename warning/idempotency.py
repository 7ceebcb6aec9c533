"""Idempotency-Key on the create endpoints: a repeat within 24 h gets the first answer and creates nothing.

The key is claimed atomically (SET NX) before anything is created, together with the warning id the
create will use, so two concurrent repeats cannot both create, and a repeat after a crash can look up
what the first attempt stored under that id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from warning import keys
from warning.clock import Clock

#: how long a key is remembered (and its first answer replayed)
TTL_S = 24 * 3600
#: a first attempt that has stored nothing after this long is presumed dead: a repeat may take over
LEASE_S = 60


@dataclass(frozen=True, slots=True)
class Entry:
    """What is remembered of a key: the request it came with, the warning id reserved, and the answer."""

    fingerprint: str
    warning_id: str
    started: float  #: epoch seconds of the attempt that holds the key
    status: int | None = None  #: None while the first attempt is still running
    body: Any = None

    def dumps(self) -> str:
        return json.dumps({"fp": self.fingerprint, "wid": self.warning_id, "at": self.started, "status": self.status,
                           "body": self.body}, ensure_ascii=False)

    @classmethod
    def loads(cls, raw: str) -> Entry:
        d = json.loads(raw)
        return cls(str(d["fp"]), str(d["wid"]), float(d["at"]), d.get("status"), d.get("body"))


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class IdempotencyStore:
    """Claims, answers and releases Idempotency-Keys, per caller (the token's name)."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock

    def _key(self, caller: str, key: str) -> str:
        return keys.idempotency_key(caller, digest(key))

    async def claim(self, caller: str, key: str, fingerprint: str, warning_id: str) -> Entry | None:
        """None when this request now holds the key; else what is remembered of it."""
        mine = Entry(fingerprint, warning_id, self.clock.now().timestamp())
        for _ in range(3):
            if await self.redis.set(self._key(caller, key), mine.dumps(), nx=True, ex=TTL_S):
                return None
            raw = await self.redis.get(self._key(caller, key))
            if raw is not None:
                return Entry.loads(raw)
        raise RuntimeError("Idempotency-Key neither claimable nor readable")  # it expired three times in a row

    def stale(self, entry: Entry) -> bool:
        """The attempt holding the key has run longer than the lease."""
        return self.clock.now().timestamp() - entry.started >= LEASE_S

    async def take_over(self, caller: str, key: str, entry: Entry) -> bool:
        """Hold a key whose first attempt is presumed dead; False when someone else changed it meanwhile."""
        name = self._key(caller, key)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(name)
                raw = await pipe.get(name)
                if raw is None or Entry.loads(raw) != entry:
                    return False
                pipe.multi()
                pipe.set(name, Entry(entry.fingerprint, entry.warning_id, self.clock.now().timestamp()).dumps(),
                         keepttl=True)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def answer(self, caller: str, key: str, fingerprint: str, warning_id: str, status: int, body: Any) -> None:
        """Remember the answer to replay it to every repeat until the key expires."""
        done = Entry(fingerprint, warning_id, self.clock.now().timestamp(), status, body)
        await self.redis.set(self._key(caller, key), done.dumps(), xx=True, keepttl=True)

    async def release(self, caller: str, key: str) -> None:
        """Forget a key whose request created nothing (it was refused): the same key may be sent again."""
        await self.redis.delete(self._key(caller, key))
