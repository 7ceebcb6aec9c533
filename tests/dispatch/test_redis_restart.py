"""Redis restarted mid-fan-out (append-only file on): no delivery lost, at most one batch sent twice, counters exact."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import auth, make_settings
from tests.dispatch.conftest import twilio_channel
from tests.fakes.twilio import FakeTwilio
from tests.warnings.conftest import VILLAGE_A, person
from warning.bootstrap import make_workers
from warning.clock import FakeClock
from warning.redis_server import PrivateRedis, free_port
from warning.web.app import create_app
from warning.web.keys import Deps, registry_key, services_key

N = 400
BATCH = 50


async def test_redis_restart_mid_fan_out(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> None:
    clock = FakeClock()
    redis = PrivateRedis(tmp_path / "redis", port=free_port(), appendonly=True)
    redis.start()
    fake = FakeTwilio()
    gateway = await aiohttp_server(fake.app)
    try:
        settings = make_settings(tmp_path, channels=[twilio_channel("sms", "sms", str(gateway.make_url("")).rstrip("/"))],
                                 dispatch={"batch": BATCH, "lease_ms": 1000, "reclaim_every_s": 0.0})
        app = create_app(settings, deps=Deps(clock=clock, redis_url=redis.url, extra={"background": False}))
        client = await aiohttp_client(app)
        people = [person(i, VILLAGE_A) for i in range(N)]
        await app[registry_key].upsert_contacts(people, clock.now())
        resp = await client.post("/api/v1/warnings", headers=auth("issuer"), json={
            "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]})
        wid = (await resp.json())["id"]
        services = app[services_key]
        [worker] = make_workers(services, consumer="w1")
        await worker.ensure_groups()
        for _ in range(3):  # some batches go out
            await worker.step()
        sent_before = len(fake.accepted())
        assert 0 < sent_before < N
        redis.stop()  # SHUTDOWN: the append-only file is flushed
        try:
            await worker.step()
        except (RedisConnectionError, OSError):
            pass  # the worker's loop logs and goes on; here the test is the loop
        redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                counts = await services.deliveries.counts(wid)
                if counts.get("queued", 1) == 0:
                    break
                await worker.step()
            except (RedisConnectionError, OSError):
                pass
            clock.advance(2.0)  # past the lease: what the dead connection left unacknowledged is reclaimed
            assert loop.time() < deadline, "fan-out did not finish after the restart"
        by_number = fake.accepted_count_by_number()
        assert set(by_number) == {p.phone for p in people}
        assert sum(1 for c in by_number.values() if c > 1) <= BATCH
        counts = await services.deliveries.counts(wid)
        assert counts["sent"] == N and counts["queued"] == 0 and counts.get("failed", 0) == 0
        assert counts["targeted"] == N
    finally:
        redis.stop()
