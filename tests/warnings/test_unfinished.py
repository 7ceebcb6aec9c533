"""A change stored but whose planning failed midway answers with what was stored; the housekeeping finishes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.conftest import auth
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, World, person
from tests.warnings.test_two_person_rule import cap, push
from warning.delivery_store import Row
from warning.dispatcher import Dispatcher
from warning.housekeeping import PLANNING_GRACE_S, reconcile
from warning.record import WarningRecord

DRAFT = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]}


async def warning_ids(world: World) -> list[str]:
    listing = await (await world.client.get("/api/v1/warnings", headers=auth("viewer"))).json()
    return [w["id"] for w in listing["items"]]


class FailingPlanning:
    """The dispatcher, except that planning fails `times` times after the change was stored (a store error)."""

    def __init__(self, inner: Dispatcher, times: int = 1) -> None:
        self.inner, self.times = inner, times

    async def issue(self, record: WarningRecord, previous: WarningRecord | None) -> None:
        if self.times > 0:
            self.times -= 1
            raise ConnectionError("Redis went away mid-planning")
        await self.inner.issue(record, previous)

    async def withdraw(self, record: WarningRecord, reason: str) -> None:
        await self.inner.withdraw(record, reason)

    async def reach_late(self, record: WarningRecord, handed: Sequence[Row]) -> int:
        return await self.inner.reach_late(record, handed)


async def test_a_create_that_fails_midway_answers_with_the_warning(world: World, clock: Any) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(3)])
    world.services.lifecycle.dispatch = FailingPlanning(world.services.dispatcher)
    resp = await world.client.post("/api/v1/warnings", json=DRAFT, headers=auth("issuer"))
    first = await resp.json()
    assert resp.status == 201 and first["state"] == "dispatching" and "自动补全" in first["note"]
    assert await world.deliveries(first["id"]) == []
    assert await reconcile(world.services) == [first["id"]]  # the housekeeping finishes the planning
    await world.drain()
    assert sorted(world.channels["sms"].addresses()) == [person(i, VILLAGE_A).phone for i in range(3)]
    clock.advance(PLANNING_GRACE_S + 1)
    assert await reconcile(world.services) == []


async def test_a_cap_alert_that_fails_midway_is_kept_as_seen(world: World, clock: Any) -> None:
    await world.seed([person(1, TONGCHUAN + "001")])
    world.services.lifecycle.dispatch = FailingPlanning(world.services.dispatcher)
    status, first = await push(world, "feed", cap(world, "M-1"))
    assert status == 202 and first["state"] == "dispatching" and first["note"]
    status, again = await push(world, "feed", cap(world, "M-1"))  # sent again without a key: a duplicate
    assert status == 202 and again == {"id": first["id"], "duplicate": True}
    assert await warning_ids(world) == [first["id"]]
    clock.advance(PLANNING_GRACE_S + 1)
    assert await reconcile(world.services) == [first["id"]]
    assert len(await world.deliveries(first["id"])) == 1


async def test_a_cancellation_whose_planning_failed_is_finished_by_the_housekeeping(world: World, clock: Any) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(2)])
    resp = await world.client.post("/api/v1/warnings", json=DRAFT, headers=auth("issuer"))
    w = await resp.json()
    await world.drain()
    world.services.lifecycle.dispatch = FailingPlanning(world.services.dispatcher)
    resp = await world.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={}, headers=auth("issuer"))
    c = await resp.json()
    assert resp.status == 200 and c["state"] == "cancelled" and c["note"]
    assert [r for r in await world.deliveries(w["id"]) if r.msg_type == "cancel"] == []
    assert await reconcile(world.services) == []  # too recent: its own request may still be planning it
    clock.advance(PLANNING_GRACE_S + 1)
    assert await reconcile(world.services) == [w["id"]]
    await world.drain()
    cancels = [r for r in await world.deliveries(w["id"]) if r.msg_type == "cancel"]
    assert len(cancels) == 2 and all(r.delivery.state.value == "accepted" for r in cancels)
    assert await reconcile(world.services) == []
