"""Housekeeping jobs: the expiry sweep, the re-planning of a version a crash left half-queued, and the re-arming of a
retry whose timer a crash lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import auth
from tests.dispatch.conftest import make_rig
from tests.dispatch.test_retry_timers import waiting_for_retry
from tests.warnings.conftest import VILLAGE_A, World, person
from warning import keys
from warning.bootstrap import due_handlers
from warning.housekeeping import REARM_AFTER, build_scheduler, expire, rearm_retries, reconcile

__all__ = ["make_rig"]


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
    assert {j.id for j in scheduler.get_jobs()} == {"expiry-sweep", "reconcile", "rearm-retries", "retention",
                                                      "forget-expired"}
    assert all(j.coalesce and j.max_instances == 1 for j in scheduler.get_jobs())


async def test_a_retry_whose_timer_is_gone_is_armed_again_and_sent_once(make_rig: Any) -> None:
    """A process stopped between moving a delivery to retry_wait and setting its timer: housekeeping sets it again
    once the retry is overdue; it is sent once, and the warning leaves the index of warnings with retries."""
    rig = await make_rig()
    people = [person(1, VILLAGE_A), person(2, VILLAGE_A)]
    await rig.seed(people)
    wid, did = await waiting_for_retry(rig, people[0].phone)
    services, due = rig.services, rig.services.due
    [member] = await services.redis.zrange(keys.DUE_KEY, 0, -1)
    retry_at = float(await services.redis.zscore(keys.DUE_KEY, member))
    await services.redis.zrem(keys.DUE_KEY, member)  # the state such a crash leaves
    assert await services.redis.zrange(keys.RETRYING, 0, -1) == [wid]
    assert await rearm_retries(services) == []  # not overdue yet: its timer may be on its way
    rig.clock.set(datetime.fromtimestamp(retry_at, UTC) + REARM_AFTER)
    assert await rearm_retries(services) == [did]
    assert await rearm_retries(services) == []  # set once
    assert await services.redis.zrange(keys.DUE_KEY, 0, -1) == [member]
    await rig.pump(lambda: rig.settled(wid))
    assert rig.fakes["primary"].accepted_count_by_number() == {p.phone: 1 for p in people}
    assert await services.redis.zcard(keys.retrying_key(wid)) == 0
    rig.clock.advance(REARM_AFTER.total_seconds() + 1)
    assert await rearm_retries(services) == [] and await services.redis.zcard(keys.RETRYING) == 0
    assert await due.next_due() is None


async def test_a_retry_queued_again_or_with_its_timer_set_is_left_alone(make_rig: Any) -> None:
    rig = await make_rig()
    p = person(1, VILLAGE_A)
    await rig.seed([p])
    wid, _ = await waiting_for_retry(rig, p.phone)
    services = rig.services
    rig.clock.advance(3600)  # long overdue, its timer still set (the due loop is behind)
    assert await rearm_retries(services) == []
    # the timer fired: the delivery is on its queue again, still in retry_wait until a worker takes it
    assert await services.due.drain(due_handlers(services)) == 1
    rig.clock.advance(3600)
    assert await rearm_retries(services) == []
    assert await services.redis.xlen(keys.queue_key("sms", 3)) == 1
    await rig.pump(lambda: rig.settled(wid))
    assert rig.fakes["primary"].accepted_count_by_number() == {p.phone: 1}
