"""A person's request never fails because the machine was busy, and a change reaches whoever a send in flight
reached: updates and cancellations racing the workers and the housekeeping."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import auth
from tests.warnings.conftest import LUXI, VILLAGE_A, VILLAGE_B, World, person
from warning.audit import AuditEntry
from warning.bootstrap import make_workers
from warning.delivery import DeliveryState
from warning.dispatcher import REACHED
from warning.housekeeping import expire, reconcile
from warning.model import WarningState

S = DeliveryState
WARNINGS = 12
PEOPLE = 300


def draft(headline: str, areas: list[str] | None = None) -> dict[str, Any]:
    return {"event": "rainstorm", "level": "blue", "headline": headline, "areas": areas or [VILLAGE_A],
            "instruction": "注意防范。"}


async def post(world: World, who: str, path: str, payload: Any) -> tuple[int, Any]:
    resp = await world.client.post(path, json=payload, headers=auth(who))
    return resp.status, await resp.json()


async def after(delay_s: float, call: Callable[[], Awaitable[tuple[int, Any]]]) -> tuple[int, Any]:
    await asyncio.sleep(delay_s)
    return await call()


def check_audit(entries: list[AuditEntry]) -> None:
    """The record's own entries (each written with the change it records) tell one consistent story."""
    changes = [e for e in entries if "state" in e.detail]
    assert changes[0].action == "draft"
    for prev, cur in itertools.pairwise(changes):
        bump = 1 if cur.action in ("update", "cancel") and cur.actor != "system" else 0
        assert cur.detail["version"] == prev.detail["version"] + bump, (prev, cur)
    cancelled = [i for i, e in enumerate(changes) if e.detail["state"] == WarningState.CANCELLED.value]
    assert cancelled and changes[cancelled[0]].action == "cancel" and changes[-1].detail["state"] == "cancelled"
    assert len(cancelled) == len(changes) - cancelled[0]  # nothing changed the warning after its cancellation


async def in_flight(world: World, wid: str, version: int, *, count: int) -> None:
    """Wait (with a deadline) until `count` deliveries of the version are being handed to the provider."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while sum(1 for r in await world.deliveries(wid)
              if r.delivery.version == version and r.delivery.state is S.SENDING) < count:
        assert loop.time() < deadline, "the worker never started sending"
        await asyncio.sleep(0.005)


async def test_a_cancellation_reaches_whoever_a_send_in_flight_reached(world: World) -> None:
    people = await world.seed([person(i, VILLAGE_A) for i in range(3)])
    sms = world.channels["sms"]
    sms.gate = asyncio.Event()
    _, w = await post(world, "issuer", "/api/v1/warnings", draft("暴雨蓝色预警"))
    worker = next(x for x in make_workers(world.services, consumer="t") if x.channel.name == "sms")
    await worker.ensure_groups()
    step = asyncio.create_task(worker.step())
    await in_flight(world, w["id"], 1, count=3)
    # 解除 while the provider holds the three messages: not refused, and it does not pretend they were never sent
    status, c = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/cancel", {"reason": "降雨减弱"})
    assert status == 200 and c["state"] == "cancelled"
    sms.gate.set()
    await step
    await world.drain()
    rows = await world.deliveries(w["id"])
    assert sorted(r.delivery.recipient_id for r in rows if r.delivery.version == 1 and r.delivery.state is S.ACCEPTED
                  ) == sorted(people)
    cancels = [r for r in rows if r.msg_type == "cancel"]
    assert sorted(r.delivery.recipient_id for r in cancels) == sorted(people)
    assert all(r.delivery.state is S.ACCEPTED for r in cancels)
    assert [o.address for o in sms.sent].count(person(0, VILLAGE_A).phone) == 2  # the warning, then its 解除


async def test_an_update_reaches_whoever_a_send_in_flight_reached(world: World) -> None:
    moved_out = await world.seed([person(1, VILLAGE_A)])
    await world.seed([person(2, VILLAGE_B)])
    sms = world.channels["sms"]
    sms.gate = asyncio.Event()
    _, w = await post(world, "issuer", "/api/v1/warnings", draft("暴雨蓝色预警"))
    worker = next(x for x in make_workers(world.services, consumer="t") if x.channel.name == "sms")
    await worker.ensure_groups()
    step = asyncio.create_task(worker.step())
    await in_flight(world, w["id"], 1, count=1)
    # the area moves away from the person being sent the first version: they must still hear of the change
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", draft("范围调整", [LUXI]))
    assert status == 200 and up["version"] == 2
    sms.gate.set()
    await step
    await world.drain()
    v2 = [r for r in await world.deliveries(w["id"]) if r.delivery.version == 2]
    assert moved_out[0] in {r.delivery.recipient_id for r in v2}


async def test_updates_and_cancels_racing_workers_and_housekeeping(world: World) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(PEOPLE)])
    services = world.services
    world.channels["sms"].delay_s = 0.03  # a provider's round trip: sends are in flight while people act
    workers = make_workers(services, consumer="race")
    for worker in workers:
        await worker.ensure_groups()
    stop = asyncio.Event()

    async def housekeeping() -> None:
        while not stop.is_set():
            await reconcile(services)
            await expire(services)
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(w.run()) for w in workers for _ in range(2)]
    tasks.append(asyncio.create_task(housekeeping()))
    rng = random.Random(14)

    async def one(i: int) -> tuple[str, tuple[int, Any], tuple[int, Any]]:
        services.clock.advance(1)  # type: ignore[attr-defined]  # a unit issues at most ten CAP identifiers a second
        status, w = await post(world, "issuer", "/api/v1/warnings", draft(f"暴雨蓝色预警{i}"))
        assert status == 201, w
        path = f"/api/v1/warnings/{w['id']}"
        # while the workers hand the first version over (or have just marked it active): an update and a
        # cancellation, a little apart in either order
        await asyncio.sleep(rng.uniform(0, 0.06))
        update, cancel = await asyncio.gather(
            after(rng.uniform(0, 0.02), lambda: post(world, "issuer2", f"{path}/update", draft(f"更新{i}"))),
            after(rng.uniform(0, 0.02), lambda: post(world, "issuer", f"{path}/cancel", {"reason": "降雨减弱"})))
        return w["id"], update, cancel


    try:
        results = [await one(i) for i in range(WARNINGS)]  # one at a time, so each lands mid-send
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while True:
            queued = [(await services.deliveries.counts(wid)).get("queued", 0) for wid, _, _ in results]
            if not any(queued):
                break
            assert loop.time() < deadline, f"still queued: {queued}"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    for wid, (su, up), (sc, cancel) in results:
        # a 409 only for a person's conflict: the update that came after the cancellation
        assert sc == 200 and cancel["state"] == "cancelled", cancel
        assert su == 200 or (su == 409 and up["error"] == "warning closed" and "cancelled" in up["detail"]), up
        assert (await services.lifecycle.get(wid)).state is WarningState.CANCELLED
        rows = {r.delivery.id: r for r in await world.deliveries(wid)}
        # what the provider was really handed, and what the record says it was handed
        sent = [rows[o.delivery_id] for o in world.channels["sms"].sent if o.delivery_id in rows]
        handed = {r.delivery.recipient_id for r in sent if r.msg_type != "cancel"}
        told = [r.delivery.recipient_id for r in sent if r.msg_type == "cancel"]
        assert handed == set(told), f"{wid}: {len(handed - set(told))} handed the warning never told it was lifted"
        assert len(told) == len(set(told))  # one cancellation each
        assert handed == {r.delivery.recipient_id for r in rows.values()
                          if r.msg_type != "cancel" and r.delivery.state in REACHED}
        check_audit(list(await services.audit.entries(wid)))
