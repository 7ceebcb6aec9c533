"""CAP in and out over HTTP: ingest with dedup, update/cancel by references, hostile input, our CAP and Atom."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree

from tests.conftest import auth
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, World, person
from warning.cap import parse_cap
from warning.clock import FakeClock

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
# the samples were sent on 2024-07-11 05:30 +08:00 and expire the next day
SAMPLE_TIME = datetime(2024, 7, 10, 22, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=SAMPLE_TIME)


async def push(world: World, name: str, who: str = "feed", data: bytes | None = None) -> tuple[int, Any]:
    raw = data if data is not None else (DATA / name).read_bytes()
    payload = io.BytesIO(raw) if len(raw) > 1024 * 1024 else raw
    resp = await world.client.post("/api/v1/cap", data=payload, headers={**auth(who), "Content-Type": "application/xml"})
    return resp.status, await resp.json()


async def test_ingest_issues_and_dedups(world: World) -> None:
    people = await world.seed([person(1, "510726100001"), person(2, "510726104002", "cadre")])
    status, first = await push(world, "cma_rainstorm_red.xml")
    assert status == 202 and first["duplicate"] is False and first["state"] == "dispatching"
    rows = await world.deliveries(first["id"])
    assert {r.delivery.recipient_id for r in rows} == set(people)
    status, again = await push(world, "cma_rainstorm_red.xml")
    assert status == 202 and again == {"id": first["id"], "duplicate": True}
    assert len(await world.deliveries(first["id"])) == len(rows)
    record = await world.services.lifecycle.get(first["id"])
    assert record.level.value == "red" and record.content.event_type == "rainstorm"


async def test_update_and_cancel_follow_references(world: World) -> None:
    await world.seed([person(1, "510726100001")])
    _, first = await push(world, "cma_rainstorm_red.xml")
    await world.drain()
    status, up = await push(world, "cn_update.xml")
    assert status == 202 and up["id"] == first["id"]
    record = await world.services.lifecycle.get(first["id"])
    assert record.version == 2 and record.level.value == "orange"
    status, cancel = await push(world, "cn_cancel.xml")
    assert status == 202 and cancel["id"] == first["id"] and cancel["state"] == "cancelled"
    actions = [e.action for e in await world.services.audit.entries(first["id"])]
    assert actions.count("ingest") == 1 and "update" in actions and "cancel" in actions
    # the update and the cancellation sent again are duplicates of the warning they changed, which exists
    for name in ("cn_update.xml", "cn_cancel.xml"):
        status, again = await push(world, name)
        assert status == 202 and again == {"id": first["id"], "duplicate": True}, name
    assert (await world.services.lifecycle.get(first["id"])).version == 3


async def test_cancel_for_unknown_warning_is_ignored(world: World) -> None:
    status, res = await push(world, "cn_cancel.xml")
    assert status == 202 and res["id"] is None and "ignored" in res["note"]
    listing = await world.client.get("/api/v1/warnings", headers=auth("viewer"))
    assert (await listing.json())["items"] == []


@pytest.mark.parametrize("name", ["hostile_xxe.xml", "hostile_billion_laughs.xml", "hostile_internal_dtd.xml",
                                  "hostile_external_dtd.xml", "hostile_xxe_parameter.xml", "bad_missing_required.xml",
                                  "bad_enums.xml", "bad_polygons.xml", "bad_sent_without_zone.xml"])
async def test_bad_and_hostile_documents_are_400_and_change_nothing(world: World, name: str) -> None:
    status, err = await push(world, name)
    assert status == 400, err
    assert err["error"] == "invalid CAP document"
    assert all("path" in p and "reason" in p for p in err["detail"])
    listing = await world.client.get("/api/v1/warnings", headers=auth("viewer"))
    assert (await listing.json())["items"] == []
    # the service is unharmed: a good document goes through afterwards
    status, _ = await push(world, "cma_rainstorm_red.xml")
    assert status == 202


async def test_oversized_and_empty_and_wrong_role(world: World) -> None:
    status, _ = await push(world, "", data=b"<alert>" + b" " * (21 * 1024 * 1024) + b"</alert>")
    assert status == 413
    status, err = await push(world, "", data=b"<alert>" + b" " * (3 * 1024 * 1024) + b"</alert>")
    assert status == 400 and "too large" in err["detail"][0]["reason"]
    status, _ = await push(world, "", data=b"")
    assert status == 400
    status, _ = await push(world, "cma_rainstorm_red.xml", who="issuer")
    assert status == 403
    status, _ = await push(world, "cma_rainstorm_red.xml", who="viewer")
    assert status == 403


async def test_our_cap_parses_back_and_atom_lists_it(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "flash_flood", "level": "yellow", "headline": "山洪黄色预警", "areas": [TONGCHUAN]})
    w = await resp.json()
    cap = await world.client.get(f"/api/v1/warnings/{w['id']}/cap", headers=auth("viewer"))
    assert cap.headers["Content-Type"].startswith("application/cap+xml")
    data = await cap.read()
    parsed = parse_cap(data, event_types=world.services.event_types)
    record = await world.services.lifecycle.get(w["id"])
    assert parsed == record.content
    text = data.decode()
    assert "<language>zh-CN</language>" in text and "+08:00" in text
    assert parsed.identifier.startswith("51072200010001_")
    feed = await world.client.get("/feeds/cap.atom")
    assert feed.status == 200
    root = ElementTree.fromstring(await feed.read())
    links = [el.get("href") for el in root.iter("{http://www.w3.org/2005/Atom}link")]
    assert f"http://testserver.example/feeds/cap/{w['id']}.xml" in links
    public = await world.client.get(f"/feeds/cap/{w['id']}.xml")
    assert public.status == 200 and parse_cap(await public.read()).identifier == parsed.identifier


async def test_exercises_and_drafts_stay_out_of_the_public_feed(world: World) -> None:
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "flash_flood", "level": "yellow", "headline": "演练", "areas": [TONGCHUAN], "status": "Exercise"})
    w = await resp.json()
    assert (await world.client.get(f"/feeds/cap/{w['id']}.xml")).status == 404
    feed = await (await world.client.get("/feeds/cap.atom")).text()
    assert w["id"] not in feed
