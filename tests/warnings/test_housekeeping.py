"""Housekeeping jobs: the expiry sweep and the re-planning of a version a crash left half-queued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import auth
from tests.warnings.conftest import VILLAGE_A, World, person
from warning import keys
from warning.housekeeping import build_scheduler, expire, reconcile


async def test_reconcile_plans_again_what_a_crash_left_unqueued(world: World) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(3)])
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]})
    wid = (await resp.json())["id"]
    services = world.services
    assert await reconcile(services) == []  # fully planned: nothing to do
    # a crash after recording but before queueing: queue emptied, the planned mark missing
    for p in range(5):
        await services.redis.delete(keys.queue_key("sms", p))
    await services.redis.hdel(keys.warning_key(wid), "planned_version")
    assert await reconcile(services) == [wid]
    assert await world.drain() > 0
    assert sorted(o.address for o in world.channels["sms"].sent) == [person(i, VILLAGE_A).phone for i in range(3)]
    counts = await services.deliveries.counts(wid)
    assert counts["sent"] == 3 and counts["targeted"] == 3  # planning again created nothing new
    assert await reconcile(services) == []


async def test_expiry_sweep_and_the_scheduler_jobs(world: World, clock: Any) -> None:
    await world.seed([person(1, VILLAGE_A)])
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A],
        "expires": (clock.now() + timedelta(minutes=10)).isoformat()})
    wid = (await resp.json())["id"]
    assert await expire(world.services) == []
    clock.advance(601)
    assert await expire(world.services) == [wid]
    scheduler = build_scheduler(world.services)
    assert {j.id for j in scheduler.get_jobs()} == {"expiry-sweep", "reconcile"}
    assert all(j.coalesce and j.max_instances == 1 for j in scheduler.get_jobs())
