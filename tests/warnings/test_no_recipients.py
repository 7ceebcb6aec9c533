"""A warning that reaches nobody is never sent into the void: CAP areas found by name or by any region geocode
name feeds use, and what still reaches nobody waits in pending_approval with problem "no_recipients" (logged,
shown in red) until an update fixes its area, someone is in its area at approval, or it is cancelled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import auth
from tests.dashboard.conftest import login
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person
from warning.clock import FakeClock

START = datetime(2026, 12, 1, 4, 35, tzinfo=UTC)
#: 石安镇玉林村 of the demo tree: nobody lives there in these tests
EMPTY_VILLAGE = "510722107202"
BLUE = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "instruction": "注意防范。",
        "areas": [EMPTY_VILLAGE]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


def cap(identifier: str, area: str, *, msg: str = "Alert", refs: str = "", severity: str = "Yellow") -> bytes:
    sent = START.astimezone().isoformat()
    expires = (START + timedelta(hours=12)).isoformat()
    references = f"<references>{refs}</references>" if refs else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>51072241600000</sender><sent>{sent}</sent>
  <status>Actual</status><msgType>{msg}</msgType><scope>Public</scope>{references}
  <info><language>zh-CN</language><category>Met</category><event>暴雨</event><urgency>Expected</urgency>
    <severity>{severity}</severity><certainty>Likely</certainty><expires>{expires}</expires>
    <senderName>三台县气象台</senderName><headline>三台县气象台发布暴雨预警</headline>
    <area>{area}</area></info>
</alert>""".encode()


async def push(world: World, data: bytes) -> dict[str, Any]:
    resp = await world.client.post("/api/v1/cap", data=data, headers={**auth("feed"), "Content-Type": "application/xml"})
    assert resp.status == 202, await resp.text()
    out: dict[str, Any] = await resp.json()
    return out


async def post(world: World, who: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await world.client.post(path, json=body, headers=auth(who))
    return resp.status, await resp.json()


@pytest.mark.parametrize("desc", ["三台县潼川镇、芦溪镇", "潼川镇,芦溪镇", "四川省绵阳市三台县潼川镇 芦溪镇等地", "潼川镇和芦溪镇"])
async def test_a_cap_area_with_only_names_is_found_in_the_region_tree(world: World, desc: str) -> None:
    ids = await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B), person(3, "510722107001")])
    res = await push(world, cap("N1", f"<areaDesc>{desc}</areaDesc>"))
    assert res["state"] == "dispatching"
    assert {r.delivery.recipient_id for r in await world.deliveries(res["id"])} == set(ids[:2])
    record = await world.services.lifecycle.get(res["id"])
    assert record.content.region_codes == (TONGCHUAN, LUXI)


@pytest.mark.parametrize("name", ["GB/T 2260", "ADCODE", "行政区划代码", "areaCode", "gb2260"])
async def test_every_region_geocode_name_targets(world: World, name: str) -> None:
    [one] = await world.seed([person(1, VILLAGE_A)])
    area = f"<areaDesc>东街</areaDesc><geocode><valueName>{name}</valueName><value>510722101000</value></geocode>"
    res = await push(world, cap("G1", area))
    assert res["state"] == "dispatching"
    assert [r.delivery.recipient_id for r in await world.deliveries(res["id"])] == [one]


async def test_a_feed_warning_that_reaches_nobody_waits_and_says_why(world: World,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    await world.seed([person(1, VILLAGE_A)])
    with caplog.at_level(logging.WARNING, logger="warning.lifecycle"):
        res = await push(world, cap("V1", "<areaDesc>涪江沿岸低洼地带</areaDesc>"))
    assert res["state"] == "pending_approval"
    summary = await (await world.client.get(f"/api/v1/warnings/{res['id']}", headers=auth("viewer"))).json()
    assert summary["problem"] == "no_recipients" and summary["state"] == "pending_approval"
    assert await world.deliveries(res["id"]) == []
    assert any("reaches nobody" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    audit = await world.services.audit.entries(res["id"])
    assert audit[0].action == "ingest" and audit[0].detail["problem"] == "no_recipients"
    # a cancellation takes it out: nothing was sent, nothing is
    status, done = await post(world, "issuer", f"/api/v1/warnings/{res['id']}/cancel", {"reason": "区域有误"})
    assert status == 200 and done["state"] == "cancelled" and done["problem"] is None
    await world.drain()
    assert await world.deliveries(res["id"]) == [] and world.channels["sms"].sent == []


async def test_a_feed_update_that_fixes_the_area_goes_out(world: World) -> None:
    [one] = await world.seed([person(1, VILLAGE_A)])
    first = await push(world, cap("U1", "<areaDesc>涪江沿岸</areaDesc>"))
    record = await world.services.lifecycle.get(first["id"])
    ref = f"51072241600000,U1,{record.content.sent.isoformat()}"
    res = await push(world, cap("U2", "<areaDesc>潼川镇</areaDesc>", msg="Update", refs=ref))
    assert res == {"id": first["id"], "duplicate": False, "state": "dispatching"}
    assert [r.delivery.recipient_id for r in await world.deliveries(first["id"])] == [one]
    assert (await world.services.lifecycle.get(first["id"])).problem == ""


async def test_a_manual_warning_to_an_empty_area_waits_for_a_fixed_area(world: World) -> None:
    [one] = await world.seed([person(1, VILLAGE_A)])
    status, w = await post(world, "issuer", "/api/v1/warnings", BLUE)
    assert status == 201 and w["state"] == "pending_approval" and w["problem"] == "no_recipients"
    status, err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1})
    assert status == 409 and err["error"] == "no recipients"
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", {**BLUE, "areas": [TONGCHUAN]})
    assert status == 200 and up["state"] == "dispatching" and up["problem"] is None
    assert [r.delivery.recipient_id for r in await world.deliveries(w["id"])] == [one]


async def test_approval_goes_through_once_someone_is_in_the_area(world: World) -> None:
    status, w = await post(world, "issuer", "/api/v1/warnings", BLUE)
    assert w["problem"] == "no_recipients"
    [one] = await world.seed([person(1, EMPTY_VILLAGE)])
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1})
    assert status == 200 and ok["state"] == "dispatching" and ok["problem"] is None
    assert [r.delivery.recipient_id for r in await world.deliveries(w["id"])] == [one]


async def test_a_red_draft_to_nobody_is_marked_before_approval_and_a_device_is_somebody(world: World) -> None:
    red = {**BLUE, "level": "red"}
    _, w = await post(world, "issuer", "/api/v1/warnings", red)
    assert w["state"] == "pending_approval" and w["problem"] == "no_recipients"
    from contacts.model import Device
    from warning.web.keys import registry_key

    await world.client.app[registry_key].put_device(
        Device(id="", name="玉林村广播", kind="broadcast", region=EMPTY_VILLAGE, address="https://speaker.example.cn/",
               token="speaker-token-00001"), world.services.clock.now(), create=True)
    _, w2 = await post(world, "issuer", "/api/v1/warnings", red)
    assert w2["state"] == "pending_approval" and w2["problem"] is None  # waits for the second person only


async def test_the_dashboard_shows_the_problem_in_red(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, held = await post(world, "issuer", "/api/v1/warnings", BLUE)
    _, fine = await post(world, "issuer", "/api/v1/warnings", {**BLUE, "areas": [TONGCHUAN]})
    assert (await login(world.client, "viewer")).status == 303
    html = await (await world.client.get("/dashboard")).text()
    rows = {m: html.split(f'data-id="{m}"')[1].split("</tr>")[0] for m in (held["id"], fine["id"])}
    assert '<span class="error problem">无接收人' in rows[held["id"]] and "problem" not in rows[fine["id"]]
    page = await (await world.client.get(f"/dashboard/warnings/{held['id']}")).text()
    assert '<span class="error problem">区域内没有接收人' in page
    assert "error problem" not in await (await world.client.get(f"/dashboard/warnings/{fine['id']}")).text()
