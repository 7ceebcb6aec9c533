"""A polled feed's health in Redis (so every process agrees) and in Prometheus: last success and error, what was
seen, issued, held and skipped (with why), the lag behind the newest alert, and whether the feed went silent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from warning import keys
from warning.clock import Clock
from warning.feeds.config import FeedConfig

#: entries a feed handled are remembered this long (as CAP messages are for deduplication)
SEEN_KEEP_S = 30 * 86400
#: skipped entries listed with their reason
RECENT_SKIPS = 20
OUTCOMES = ("seen", "issued", "held", "skipped")

# Newest of two epoch times: write ARGV[2] into field ARGV[1] only when it is newer. KEYS[1] the health hash.
_NEWER = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0
"""
# The poll lease: KEYS[1]; ARGV owner, now (epoch s, the injected clock), until (epoch s), safety TTL (ms).
# Taken when free, expired by the service's clock, or already ours.
_LEASE = """
local v = redis.call('GET', KEYS[1])
if v then
  local owner, untils = string.match(v, '^(.*)|([^|]*)$')
  if owner ~= ARGV[1] and tonumber(untils) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[4])
return 1
"""


def _iso(epoch: str | None) -> str | None:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat() if epoch else None


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """What GET /api/v1/feeds and the dashboard show of one feed."""

    config: FeedConfig
    fields: dict[str, str]
    skips: dict[str, int]
    recent: list[dict[str, Any]]
    now: datetime

    def _int(self, name: str) -> int:
        return int(self.fields.get(name) or 0)

    @property
    def lag_s(self) -> float | None:
        newest = self.fields.get("newest")
        return round(max(0.0, self.now.timestamp() - float(newest)), 1) if newest else None

    @property
    def silent_s(self) -> float | None:
        """Seconds since the feed was last heard (or since polling started, when it never was)."""
        since = self.fields.get("last_heard") or self.fields.get("started")
        return max(0.0, self.now.timestamp() - float(since)) if since else None

    @property
    def stale(self) -> bool:
        silent = self.silent_s
        return silent is not None and silent > self.config.stale_after_s

    def to_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": c.name, "kind": c.kind, "url": c.shown_url, "last_success": _iso(self.fields.get("last_success")),
            "last_error": self.fields.get("last_error") or None, "seen": self._int("seen"),
            "issued": self._int("issued"), "held": self._int("held"), "skipped": self._int("skipped"),
            "lag_s": self.lag_s, "stale": self.stale, "stale_after_s": c.stale_after_s,
            "last_heard": _iso(self.fields.get("last_heard")), "last_error_at": _iso(self.fields.get("last_error_at")),
            "failures": self._int("failures"), "interval_s": c.interval_s,
            "headers": sorted(c.headers), "skipped_by_reason": self.skips, "recent_skips": self.recent,
        }


class FeedMetrics:
    """The feeds' Prometheus metrics, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter("ew_feed_polls_total", "Polls of a feed by outcome (ok, not_modified, or why it failed)",
                             ["feed", "outcome"], registry=registry)
        self.entries = Counter("ew_feed_entries_total", "Feed entries and gauge readings by what became of them "
                               "(seen, issued, held, skipped)", ["feed", "outcome"], registry=registry)
        self.lag_seconds = Gauge("ew_feed_lag_seconds", "Now minus the newest alert sent (or reading taken) of a feed",
                                 ["feed"], registry=registry)
        self.stale = Gauge("ew_feed_stale", "1 while a feed has been silent for more than its stale_after_s",
                           ["feed"], registry=registry)

    def refresh(self, statuses: Sequence[FeedStatus]) -> None:
        """Set the gauges from the health every process writes."""
        for s in statuses:
            lag = s.lag_s
            if lag is not None:
                self.lag_seconds.labels(s.config.name).set(lag)
            self.stale.labels(s.config.name).set(1 if s.stale else 0)


class FeedHealth:
    """Reads and writes the health of feeds in Redis; counters move in Prometheus at the same time."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock, metrics: FeedMetrics) -> None:
        self.redis: Any = redis
        self.clock, self.metrics = clock, metrics
        self._newer = redis.register_script(_NEWER)
        self._lease = redis.register_script(_LEASE)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def started(self, feed: str) -> None:
        await self.redis.hsetnx(keys.feed_key(feed), "started", repr(self._now()))

    async def lease(self, feed: str, owner: str, hold_s: float) -> bool:
        """Whether this process polls the feed now (several processes share one store)."""
        now = self._now()
        ttl_ms = int(max(hold_s, 1.0) * 1000) + 60_000  # a safety net for a process that died: the clock decides
        return bool(await self._lease(keys=[keys.feed_lease_key(feed)], args=[owner, repr(now), repr(now + hold_s),
                                                                               ttl_ms]))

    async def state(self, feed: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(keys.feed_key(feed)))

    async def success(self, feed: str, outcome: str, *, etag: str | None = None, last_modified: str | None = None,
                      heard: bool = True) -> None:
        """A poll that worked: `ok` (a document) or `not_modified`; the validators for the next request."""
        now = repr(self._now())
        fields = {"last_success": now, "failures": "0", "etag": etag or "", "last_modified": last_modified or ""}
        if heard:
            fields["last_heard"] = now
        await self.redis.hset(keys.feed_key(feed), mapping=fields)
        self.metrics.polls.labels(feed, outcome).inc()

    async def heard(self, feed: str) -> None:
        await self.redis.hset(keys.feed_key(feed), "last_heard", repr(self._now()))

    async def failure(self, feed: str, reason: str, detail: str) -> int:
        """A poll that failed; the number of failures in a row."""
        key = keys.feed_key(feed)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"last_error": detail[:300], "last_error_at": repr(self._now())})
            pipe.hincrby(key, "failures", 1)
            failures = (await pipe.execute())[1]
        self.metrics.polls.labels(feed, reason).inc()
        return int(failures)

    async def count(self, feed: str, outcome: str, n: int = 1) -> None:
        """seen, issued or held: `n` more."""
        if n:
            await self.redis.hincrby(keys.feed_key(feed), outcome, n)
            self.metrics.entries.labels(feed, outcome).inc(n)

    async def skipped(self, feed: str, entry: str, reason: str, *, n: int = 1) -> None:
        """`n` entries (or readings) not taken in, and why; the reason is kept as said, the counts by its label (the
        part before ':')."""
        label = reason.split(":", 1)[0].strip()[:80]
        item = json.dumps({"at": self.clock.now().isoformat(), "entry": entry[:200], "reason": reason[:300]},
                          ensure_ascii=False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.feed_key(feed), "skipped", n)
            pipe.hincrby(keys.feed_skips_key(feed), label, n)
            pipe.lpush(keys.feed_recent_skips_key(feed), item)
            pipe.ltrim(keys.feed_recent_skips_key(feed), 0, RECENT_SKIPS - 1)
            await pipe.execute()
        self.metrics.entries.labels(feed, "skipped").inc(n)

    async def newest(self, feed: str, when: datetime) -> None:
        """The newest `sent` (or reading time) seen, for the lag."""
        await self._newer(keys=[keys.feed_key(feed)], args=["newest", repr(when.timestamp())])

    async def unseen(self, feed: str, entries: Sequence[str]) -> list[str]:
        """The entries not handled before, in order."""
        if not entries:
            return []
        scores = await self.redis.zmscore(keys.feed_seen_key(feed), list(entries))
        return [e for e, s in zip(entries, scores, strict=True) if s is None]

    async def seen(self, feed: str, entry: str) -> None:
        """Remember a handled entry, counted once as seen (and forget those older than SEEN_KEEP_S)."""
        now = self._now()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.feed_seen_key(feed), {entry: now}, nx=True)
            pipe.zremrangebyscore(keys.feed_seen_key(feed), "-inf", now - SEEN_KEEP_S)
            added = (await pipe.execute())[0]
        if added:
            await self.count(feed, "seen")

    async def entry_error(self, feed: str, detail: str) -> None:
        """An entry that could not be fetched now (it is tried again at the next poll): shown as the last error."""
        await self.redis.hset(keys.feed_key(feed), mapping={"last_error": detail[:300],
                                                            "last_error_at": repr(self._now())})

    async def set_stale(self, feed: str, stale: bool) -> bool:
        """Record whether the feed is silent now; True when that changed (so it is logged once)."""
        before = await self.redis.hget(keys.feed_key(feed), "stale")
        await self.redis.hset(keys.feed_key(feed), "stale", "1" if stale else "0")
        return bool((before == "1") != stale)

    async def status(self, config: FeedConfig) -> FeedStatus:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.feed_key(config.name))
            pipe.hgetall(keys.feed_skips_key(config.name))
            pipe.lrange(keys.feed_recent_skips_key(config.name), 0, RECENT_SKIPS - 1)
            fields, skips, recent = await pipe.execute()
        return FeedStatus(config, dict(fields), {k: int(v) for k, v in skips.items()},
                          [json.loads(r) for r in recent], self.clock.now())
