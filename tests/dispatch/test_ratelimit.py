"""The shared token bucket: a few thousand sends paced within 10 % of the configured rate, on the fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.channels import RecordingChannel
from tests.warnings.conftest import VILLAGE_A, person
from warning.bootstrap import make_workers
from warning.clock import FakeClock
from warning.ratelimit import RateLimiter


async def test_bucket_paces_to_the_rate(redis: Any, clock: FakeClock) -> None:
    limiter = RateLimiter(redis, clock=clock)
    start = clock.monotonic()
    for _ in range(3000):
        # every worker shares the bucket by account name; waits happen on the fake clock
        waited = await limiter.wait_s("acct", 1, max_per_s=50, burst=10)
        while waited > 0:
            clock.advance(waited)
            waited = await limiter.wait_s("acct", 1, max_per_s=50, burst=10)
    elapsed = clock.monotonic() - start
    rate = (3000 - 10) / elapsed  # the first `burst` sends need no wait
    assert abs(rate - 50) / 50 < 0.10


async def test_retry_after_slows_that_account_only(redis: Any, clock: FakeClock) -> None:
    limiter = RateLimiter(redis, clock=clock)
    await limiter.slow_down("twilio-a", 5)
    assert await limiter.wait_s("twilio-a", 1, max_per_s=100) == 5
    assert await limiter.wait_s("kannel", 1, max_per_s=100) == 0
    clock.advance(5)
    assert await limiter.wait_s("twilio-a", 1, max_per_s=100) == 0


async def test_workers_honour_the_rate_over_a_fan_out(world: Any) -> None:
    """2,000 deliveries through two workers sharing one account at 40/s take 50 s of (fake) time, ±10 %."""
    await world.seed([person(i, VILLAGE_A) for i in range(2000)])
    resp = await world.client.post("/api/v1/warnings", json={
        "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]},
        headers={"Authorization": "Bearer test-issuer-token-00000"})
    assert resp.status == 201
    services = world.services
    services.channel_configs["sms"] = {"rate_per_s": 40, "batch": 20, "account": "shared"}
    a = make_workers(services, consumer="a")
    b = make_workers(services, consumer="b")
    workers = [w for w in a + b if w.channel.name == "sms"]
    clock: FakeClock = services.clock  # type: ignore[assignment]
    start = clock.monotonic()
    sent_at: list[float] = []
    channel: RecordingChannel = world.channels["sms"]
    for w in workers:
        await w.ensure_groups()
    while len(channel.sent) < 2000:
        before = len(channel.sent)
        tasks = [asyncio.ensure_future(w.step()) for w in workers]
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=0.01)
            if clock.sleepers:
                clock.advance(0.05)
        sent_at += [clock.monotonic()] * (len(channel.sent) - before)
    elapsed = sent_at[-1] - start
    burst = 40  # the bucket starts full: max(batch, rate) tokens
    rate = (2000 - burst) / elapsed
    assert abs(rate - 40) / 40 < 0.10, rate
