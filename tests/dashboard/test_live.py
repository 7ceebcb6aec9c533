"""The live coverage stream: a message at once, another when deliveries move, and an end when the app stops."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.dashboard.conftest import World, delivered, fan_out, login
from tests.warnings.conftest import LUXI
from warning.clock import FakeClock
from warning.web.keys import live_streams_key


async def next_event(resp: Any, timeout_s: float = 5.0) -> tuple[str, dict[str, Any]]:
    """The next `event:`/`data:` message of a server-sent event stream (comments and retry lines skipped)."""
    while True:
        block = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout_s)).decode()
        fields = dict(line.split(": ", 1) for line in block.strip().split("\n") if ": " in line and line[0] != ":")
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


async def test_stream_sends_coverage_now_and_after_a_delivery_moves(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "viewer")
    resp = await world.client.get(f"/dashboard/warnings/{w['id']}/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    event, doc = await next_event(resp)
    assert event == "coverage" and (doc["id"], doc["delivered"], doc["acked"]) == (w["id"], 4, 2)
    pending = [r for r in await world.deliveries(w["id"]) if r.delivery.state.value == "accepted"]
    await delivered(world, pending)
    clock = world.services.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1)  # past the throttle, whether the stream has read the events yet or not
    event, doc = await next_event(resp)
    assert event == "coverage" and doc["delivered"] == 7 and doc["by_region"][LUXI]["delivered"] == 3
    resp.close()
    assert await world.client.app[live_streams_key].wait_closed(5.0)  # the server noticed the client went


async def test_a_burst_of_changes_is_coalesced(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "admin")
    resp = await world.client.get(f"/dashboard/warnings/{w['id']}/events")
    await next_event(resp)
    clock = world.services.clock
    assert isinstance(clock, FakeClock)
    for row in [r for r in await world.deliveries(w["id"]) if r.delivery.state.value == "accepted"]:
        await delivered(world, [row])  # four separate changes inside the throttle window
    async with asyncio.timeout(5):
        while clock.sleepers == 0:  # the stream waits out the throttle instead of sending four messages
            await _tick()
    clock.advance(1)
    event, doc = await next_event(resp)
    assert event == "coverage" and doc["delivered"] == 7
    resp.close()


async def _tick() -> None:
    """Let the server run for a moment (a wait on a future that never completes, bounded by 10 ms)."""
    await asyncio.wait({asyncio.get_running_loop().create_future()}, timeout=0.01)


async def test_stream_needs_a_session_and_a_warning(world: World) -> None:
    resp = await world.client.get("/dashboard/warnings/x/events")
    assert resp.status == 401
    await login(world.client, "viewer")
    resp = await world.client.get("/dashboard/warnings/nope/events")
    assert resp.status == 404 and (await resp.json())["error"]
    assert not world.client.app[live_streams_key].open


async def test_shutdown_ends_open_streams(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "viewer")
    resp = await world.client.get(f"/dashboard/warnings/{w['id']}/events")
    await next_event(resp)
    streams = world.client.app[live_streams_key]
    assert len(streams.open) == 1
    await streams.close_all(world.client.app)
    assert not streams.open
    event, doc = await next_event(resp)
    assert (event, doc) == ("bye", {"reason": "shutdown"})
    assert await asyncio.wait_for(resp.content.read(), 5) == b""  # and the response ended
