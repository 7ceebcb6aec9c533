"""Prometheus metrics of one service instance (its own registry, so tests and apps never share)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from warning import keys
from warning.dispatcher import PRIORITIES

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters the workers and webhooks move, and gauges read from Redis at scrape time."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter("ew_messages_total", "Messages by channel, provider and outcome",
                                ["channel", "provider", "outcome"], registry=r)
        self.retries = Counter("ew_retries_total", "Send retries by channel and reason", ["channel", "reason"],
                               registry=r)
        self.send_seconds = Histogram("ew_send_seconds", "Time of one provider request (with inline retries)",
                                      ["channel"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.ratelimit_wait_seconds = Counter("ew_ratelimit_wait_seconds_total",
                                              "Time workers waited for the provider's rate limit", ["channel"],
                                              registry=r)
        self.receipts = Counter("ew_receipts_total", "Provider receipts by channel and status", ["channel", "status"],
                                registry=r)
        self.queue_depth = Gauge("ew_queue_depth", "Queue entries (up to 50 deliveries each) waiting or in flight, by channel and priority",
                                 ["channel", "priority"], registry=r)
        self.queue_age_seconds = Gauge("ew_queue_oldest_age_seconds", "Age of the oldest queued entry",
                                       ["channel", "priority"], registry=r)
        self.due_timers = Gauge("ew_due_timers", "Retries and escalations waiting for their time", registry=r)

    async def refresh(self, redis: aioredis.Redis, channels: Iterable[str], now: datetime) -> None:
        """Read queue depths and ages from Redis (streams hold what is waiting and what is unacknowledged)."""
        names = list(channels)
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                for p in PRIORITIES:
                    pipe.xlen(keys.queue_key(name, p))
                    pipe.xrange(keys.queue_key(name, p), count=1)
            pipe.zcard(keys.DUE_KEY)
            res = await pipe.execute()
        i = 0
        for name in names:
            for p in PRIORITIES:
                depth, first = res[i], res[i + 1]
                i += 2
                self.queue_depth.labels(name, str(p)).set(depth)
                age = 0.0
                if first:
                    ms = int(first[0][0].split("-")[0])
                    age = max(0.0, now.timestamp() - ms / 1000)
                self.queue_age_seconds.labels(name, str(p)).set(age)
        self.due_timers.set(res[-1])

    def render(self) -> bytes:
        return generate_latest(self.registry)
