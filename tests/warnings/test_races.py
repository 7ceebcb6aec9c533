"""A person's request never fails because the machine was busy, and a change reaches whoever a send in flight
reached: updates and cancellations racing the workers and the housekeeping."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import auth
from tests.warnings.conftest import LUXI, VILLAGE_A, VILLAGE_B, World, person
from warning.bootstrap import make_workers
from warning.delivery import DeliveryState

S = DeliveryState


def draft(headline: str, areas: list[str] | None = None) -> dict[str, Any]:
    return {"event": "rainstorm", "level": "blue", "headline": headline, "areas": areas or [VILLAGE_A],
            "instruction": "注意防范。"}


async def post(world: World, who: str, path: str, payload: Any) -> tuple[int, Any]:
    resp = await world.client.post(path, json=payload, headers=auth(who))
    return resp.status, await resp.json()


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
