"""CAP out over HTTP as GB/T 35965.1 asks: identifiers of 31 characters with a serial 0-9 per unit and second
(an eleventh message in one second waits for the next), areas by name with 12-digit geocodes, and the national
profile (`[cap] profile = "gbt35965"`) read back by our own parser."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest

from tests.conftest import auth
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, WorldFactory, person
from warning import keys
from warning.cap import parse_cap
from warning.cap_emit import CAP_NS
from warning.clock import FakeClock

CAP = f"{{{CAP_NS}}}"
RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇、芦溪镇暴雨红色预警", "description": "降雨量将达100毫米以上。",
       "instruction": "请立即转移。", "areas": [TONGCHUAN, LUXI]}
BLUE = {**RED, "level": "blue", "headline": "暴雨蓝色预警"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=datetime(2026, 12, 1, 4, 35, 0, tzinfo=UTC))


async def draft(world: World, body: dict[str, Any]) -> dict[str, Any]:
    resp = await world.client.post("/api/v1/warnings", json=body, headers=auth("issuer"))
    assert resp.status == 201, await resp.text()
    out: dict[str, Any] = await resp.json()
    return out


async def cap_of(world: World, wid: str) -> bytes:
    resp = await world.client.get(f"/api/v1/warnings/{wid}/cap", headers=auth("viewer"))
    assert resp.status == 200
    return await resp.read()


async def test_ten_messages_in_one_second_then_the_next_second(world: World, clock: FakeClock) -> None:
    await world.seed([person(1, VILLAGE_A)])
    first = [await draft(world, BLUE) for _ in range(10)]
    assert [w["identifier"] for w in first] == [f"51072200010001_20261201123500_{n}" for n in range(10)]
    eleventh = asyncio.create_task(draft(world, BLUE))
    for _ in range(200):  # the eleventh waits on the clock for the next second
        if clock.sleepers:
            break
        await asyncio.sleep(0.005)
    assert clock.sleepers == 1 and not eleventh.done()
    clock.advance(1)
    late = await eleventh
    assert late["identifier"] == "51072200010001_20261201123501_0" and len(late["identifier"]) == 31
    record = await world.services.lifecycle.get(late["id"])
    assert record.content.sent == datetime(2026, 12, 1, 4, 35, 1, tzinfo=UTC)  # the time it stands for


async def test_a_message_still_without_a_serial_after_waiting_is_refused(world: World, clock: FakeClock) -> None:
    await world.seed([person(1, VILLAGE_A)])
    redis = world.services.redis
    for second in range(4):  # every second from now on is used up by someone else
        await redis.set(keys.serial_key("51072200010001", f"2026120112350{second}"), 10)
    task = asyncio.create_task(world.client.post("/api/v1/warnings", json=BLUE, headers=auth("issuer")))
    for _ in range(3):
        for _ in range(200):
            if clock.sleepers:
                break
            await asyncio.sleep(0.005)
        clock.advance(1)
    resp = await task
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert "10" in (await resp.json())["detail"]
    listed = await (await world.client.get("/api/v1/warnings", headers=auth("viewer"))).json()
    assert listed["items"] == []  # nothing stored


async def test_area_desc_in_names_and_12_digit_geocodes(world: World) -> None:
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    w = await draft(world, {**BLUE, "areas": [TONGCHUAN, LUXI, VILLAGE_A]})
    root = SafeET.fromstring(await cap_of(world, w["id"]))
    area = root.find(f"{CAP}info/{CAP}area")
    assert area is not None and area.findtext(f"{CAP}areaDesc") == "潼川镇、芦溪镇"
    codes = [(g.findtext(f"{CAP}valueName"), g.findtext(f"{CAP}value")) for g in area.findall(f"{CAP}geocode")]
    assert codes == [("GB2260", "510722101000"), ("GB2260", "510722137000"), ("GB2260", "510722101001")]
    back = parse_cap(await cap_of(world, w["id"]))
    assert back.region_codes == (TONGCHUAN, LUXI, VILLAGE_A)


async def test_the_national_profile_reads_back(make_world: WorldFactory) -> None:
    world = await make_world(cap={"profile": "gbt35965"})
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    w = await draft(world, RED)
    await world.client.post(f"/api/v1/warnings/{w['id']}/approve", json={"version": 1}, headers=auth("approver"))
    data = await cap_of(world, w["id"])
    root = SafeET.fromstring(data)
    assert root.findtext(f"{CAP}sender") == "三台县应急管理局"
    assert root.findtext(f"{CAP}senderCode") == "51072200010001"
    assert len(root.findtext(f"{CAP}identifier") or "") == 31
    info = root.find(f"{CAP}info")
    assert info is not None
    assert info.findtext(f"{CAP}eventType") == "11B03" and info.findtext(f"{CAP}severity") == "Red"
    [geocode] = info.findall(f"{CAP}area/{CAP}geocode")
    assert geocode.text == "510722101000,510722137000" and geocode.find(f"{CAP}valueName") is None
    back = parse_cap(data)
    record = await world.services.lifecycle.get(w["id"])
    assert (back.identifier, back.sent, back.level, back.event_type) == (
        record.content.identifier, record.content.sent, record.level, "rainstorm")
    assert back.region_codes == (TONGCHUAN, LUXI) and back.info is not None
    assert back.info.severity == "Extreme" and back.info.headline == RED["headline"]
    assert back.areas[0].desc == "潼川镇、芦溪镇"
