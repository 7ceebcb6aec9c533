"""POST /api/v1/warnings/preview: the audience and each channel's exact text, and nothing written."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from contacts.model import Device
from tests.conftest import auth
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person
from warning.sms_text import measure

RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警",
       "description": "预计未来3小时潼川镇降雨量将达100毫米以上。", "instruction": "请立即转移到安全地带。",
       "areas": [TONGCHUAN]}


async def preview(world: World, body: Any, who: str = "issuer", path: str = "/api/v1/warnings/preview"
                  ) -> tuple[int, Any]:
    resp = await world.client.post(path, json=body, headers=auth(who))
    return resp.status, await resp.json()


async def snapshot(redis: aioredis.Redis) -> dict[str, Any]:
    """Every key of the database with its serialised value (DUMP), to compare before and after."""
    return {key: await redis.dump(key) async for key in redis.scan_iter(count=1000)}


async def seed_tongchuan(world: World) -> list[str]:
    """Three people in 潼川镇 (a cadre among them, one reading English), one in 芦溪镇, and an e-screen in 潼川镇."""
    people = [person(1, VILLAGE_A), person(2, VILLAGE_A, "cadre"), person(3, TONGCHUAN), person(4, VILLAGE_B)]
    people[2] = people[2].with_changes(lang="en")
    ids = await world.seed(people)
    from warning.web.keys import registry_key

    await world.client.app[registry_key].put_device(
        Device(id="", name="潼川镇电子屏", kind="escreen", region=TONGCHUAN, address="http://screen.example/1"),
        world.services.clock.now(), create=True)
    return ids


async def test_preview_gives_audience_and_the_texts_the_workers_then_send(world: World, redis: aioredis.Redis) -> None:
    await seed_tongchuan(world)
    before = await snapshot(redis)
    status, doc = await preview(world, RED)
    assert status == 200, doc
    assert await snapshot(redis) == before  # nothing written: no serial, no reply code, no audit, no cache
    # red: SMS and a call to the three people of 潼川镇 (monitors and cadres are called at red), the e-screen;
    # 芦溪镇's person is outside
    assert doc["audience"] == {"people": 3, "by_role": {"cadre": 1, "village_monitor": 2},
                               "by_region": {TONGCHUAN: 3}, "devices": 1,
                               "by_channel": {"sms": 3, "voice": 3, "escreen": 1}}
    assert doc["ok"] is True and doc["needs_approval"] is True and doc["level"] == "red" and doc["sms_limit"] == 2
    shown = {(t["channel"], t["lang"]): t for t in doc["texts"]}
    assert set(shown) == {("sms", "zh-CN"), ("sms", "en"), ("voice", "zh-CN"), ("voice", "en"),
                          ("escreen", "zh-CN")}
    assert all(t["kind"] == "alert" for t in doc["texts"])
    for t in doc["texts"]:
        if t["channel"] == "sms":
            assert (t["chars"], t["segments"]) == (measure(t["text"]).chars, measure(t["text"]).parts)
        else:
            assert t["segments"] is None and t["chars"] == len(t["text"])
    # submit the same draft, approve it, let the workers send: every text is the one previewed
    resp = await world.client.post("/api/v1/warnings", json=RED, headers=auth("issuer"))
    w = await resp.json()
    resp = await world.client.post(f"/api/v1/warnings/{w['id']}/approve", json={"version": 1}, headers=auth("approver"))
    assert resp.status == 200
    await world.drain()
    sent = {(kind, o.lang): o.body for kind in ("sms", "voice", "escreen") for o in world.channels[kind].sent}
    assert sent == {key: t["text"] for key, t in shown.items()}
    coverage = await (await world.client.get(f"/api/v1/warnings/{w['id']}/coverage", headers=auth("viewer"))).json()
    assert coverage["targeted"] == doc["audience"]["people"]
    assert {k: v["sent"] for k, v in coverage["by_channel"].items()} == doc["audience"]["by_channel"]


async def test_preview_problems_long_sms_empty_audience_no_instruction(world: World) -> None:
    await seed_tongchuan(world)
    long = "持续强降雨，" * 40
    status, doc = await preview(world, {**RED, "description": long, "instruction": long})
    assert status == 200
    sms = next(t for t in doc["texts"] if t["channel"] == "sms" and t["lang"] == "zh-CN")
    assert sms["segments"] > 2
    codes = {p["code"]: p for p in doc["problems"] if p.get("lang") in (None, "zh-CN")}  # one per language
    assert codes["sms_too_long"]["segments"] == sms["segments"] and codes["sms_too_long"]["limit"] == 2
    assert codes["sms_too_long"]["severity"] == "warning" and doc["ok"] is True
    # blue allows ten parts: the same text is no problem there
    status, doc = await preview(world, {**RED, "level": "blue", "description": long[:200], "instruction": ""})
    assert "sms_too_long" not in {p["code"] for p in doc["problems"]}
    assert "no_instruction" in {p["code"] for p in doc["problems"]} and doc["needs_approval"] is False
    # a village with nobody in it
    status, doc = await preview(world, {**RED, "areas": ["510722107202"]})
    assert doc["audience"]["people"] == 0 and doc["audience"]["devices"] == 0
    assert [p["code"] for p in doc["problems"]] == ["empty_audience"]
    assert [(t["channel"], t["lang"]) for t in doc["texts"]] == [("sms", "zh-CN")]  # what people would be sent


async def test_preview_of_a_wrong_draft_lists_its_problems_and_bad_bodies_are_400(world: World,
                                                                                   redis: aioredis.Redis) -> None:
    before = await snapshot(redis)
    status, doc = await preview(world, {**RED, "event": "hail", "level": "blue", "areas": ["12x"]})
    assert status == 200 and doc["ok"] is False and doc["audience"] is None and doc["texts"] == []
    fields = {p["field"] for p in doc["problems"] if p["severity"] == "error"}
    assert fields == {"level", "areas"}  # 冰雹 has no blue; a code that is no region code
    for raw in (b"{not json", b"[1, 2]", b'"text"'):
        resp = await world.client.post("/api/v1/warnings/preview", data=raw, headers=auth("issuer"))
        assert resp.status == 400 and (await resp.json())["error"] in ("请求体不是有效的 JSON body is not valid JSON", "invalid body")
    assert await snapshot(redis) == before


async def test_preview_roles(world: World) -> None:
    for who, status in (("issuer", 200), ("approver", 200), ("admin", 200), ("viewer", 403), ("feed", 403)):
        assert (await preview(world, RED, who))[0] == status, who
    resp = await world.client.post("/api/v1/warnings/preview", json=RED)
    assert resp.status == 401


async def test_preview_of_an_update_reaches_the_old_audience_too(world: World, redis: aioredis.Redis) -> None:
    await seed_tongchuan(world)
    resp = await world.client.post("/api/v1/warnings", json={**RED, "level": "yellow", "areas": [LUXI]},
                                   headers=auth("issuer"))
    w = await resp.json()
    await world.drain()
    before = await snapshot(redis)
    status, doc = await preview(world, {**RED, "level": "yellow"}, path=f"/api/v1/warnings/{w['id']}/preview")
    assert status == 200 and await snapshot(redis) == before
    # the update moves the area to 潼川镇: its three people, and 芦溪镇's person who had the first version
    assert doc["audience"]["people"] == 4 and doc["audience"]["by_region"] == {LUXI: 1, TONGCHUAN: 3}
    assert {t["kind"] for t in doc["texts"]} == {"update"} and doc["needs_approval"] is False
    assert (await preview(world, RED, path="/api/v1/warnings/nope/preview"))[0] == 404
