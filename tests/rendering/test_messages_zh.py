"""Every message a zh-CN recipient gets from the demo county, rendered through the real pipeline (API, lifecycle,
dispatcher, workers, escalation, reply hooks): the signature first and the only 【】, no Latin letters, places by
name and never a code, the issuer and the Beijing time, and no more SMS parts than the level allows."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contacts.model import Device
from tests.conftest import auth
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, WorldFactory, person
from warning.bootstrap import due_handlers
from warning.channel import InboundMessage
from warning.clock import FakeClock
from warning.rendering import sms_part_limit
from warning.sms_text import measure
from warning.web.hooks import _reply
from warning.web.keys import registry_key

SIG = "【三台县应急管理局】"
#: the README shows three of the texts these tests render, as they are
README = (Path(__file__).resolve().parent.parent.parent / "README.md").read_text(encoding="utf-8")
#: 2026-12-01 12:35 Beijing time
START = datetime(2026, 12, 1, 4, 35, tzinfo=UTC)
LATIN = re.compile(r"[A-Za-z]")
CODE = re.compile(r"\d{6,}")
RAIN = "预计未来3小时潼川镇、芦溪镇降雨量将达100毫米以上，山洪、滑坡、泥石流等灾害风险极高。"
DO = "请立即组织山洪、地质灾害危险区和低洼地带群众转移避险。"
RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "description": RAIN,
       "instruction": DO, "areas": [TONGCHUAN]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


def check_sms(text: str, level: str) -> None:
    """What every SMS to a zh-CN recipient must be."""
    assert text.startswith(SIG), text
    assert text.count("【") == 1 and text.count("】") == 1, text
    assert not LATIN.search(text), text
    assert not CODE.search(text), text  # no division code, no identifier
    assert measure(text).parts <= sms_part_limit(level), (measure(text), text)


def check_spoken(text: str) -> None:
    assert "【" not in text and not LATIN.search(text) and not CODE.search(text), text


def sent(world: World, kind: str) -> list[str]:
    return [o.body for o in world.channels[kind].sent]


def to(world: World, phone: str) -> list[str]:
    return [o.body for o in world.channels["sms"].sent if o.address == phone]


async def post(world: World, path: str, body: dict[str, Any], who: str = "issuer") -> dict[str, Any]:
    resp = await world.client.post(path, json=body, headers=auth(who))
    assert resp.status in (200, 201), await resp.text()
    out: dict[str, Any] = await resp.json()
    return out


async def county(world: World) -> tuple[Any, Any]:
    """A 中心户 in each township, and a screen and a loudspeaker in 潼川镇."""
    a, b = replace(person(1, VILLAGE_A), name="张一"), replace(person(2, VILLAGE_B), name="李二")
    await world.seed([a, b])
    registry = world.client.app[registry_key]
    for kind in ("escreen", "broadcast"):
        await registry.put_device(Device(id="", name=f"东街{kind}", kind=kind, region=VILLAGE_A,
                                         address=f"https://{kind}.example.cn/show", token=f"{kind}-token-0000"),
                                  world.services.clock.now(),
                                  create=True)
    return a, b


async def test_a_red_manual_warning_on_every_channel(world: World) -> None:
    a, _ = await county(world)
    w = await post(world, "/api/v1/warnings", RED)
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    [sms] = to(world, a.phone)
    assert sms == (f"{SIG}三台县应急管理局12月1日12时35分发布潼川镇暴雨红色预警：{RAIN}{DO}回复1确认")
    check_sms(sms, "red")
    [voice] = sent(world, "voice")
    assert voice.startswith("三台县应急管理局12月1日12时35分发布潼川镇暴雨红色预警。") and voice.endswith("请按1确认收到。")
    [screen] = sent(world, "escreen")
    assert screen == f"三台县应急管理局12月1日12时35分发布潼川镇暴雨红色预警：{RAIN}{DO}"
    [speaker] = sent(world, "broadcast")
    assert speaker.startswith("各位村民请注意！三台县应急管理局12月1日12时35分发布潼川镇暴雨红色预警。")
    for text in (voice, screen, speaker):
        check_spoken(text)


async def test_a_relayed_feed_warning_names_its_issuer_and_is_signed_by_the_office(world: World) -> None:
    a, b = await county(world)
    cap = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>51072241600000_20261201123000_0</identifier><sender>51072241600000</sender>
  <sent>2026-12-01T12:30:00+08:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>zh-CN</language><category>Met</category><event>暴雨</event><urgency>Immediate</urgency>
    <severity>Orange</severity><certainty>Likely</certainty><expires>2026-12-02T12:30:00+08:00</expires>
    <senderName>三台县气象台</senderName><headline>三台县气象台发布暴雨橙色预警</headline>
    <description>{RAIN}</description><instruction>{DO}</instruction>
    <area><areaDesc>三台县潼川镇、芦溪镇</areaDesc></area></info>
</alert>""".encode()
    resp = await world.client.post("/api/v1/cap", data=cap, headers={**auth("feed"), "Content-Type": "application/xml"})
    assert resp.status == 202, await resp.text()
    await world.drain()
    for phone in (a.phone, b.phone):  # the areaDesc's names were found in the region tree
        [sms] = to(world, phone)
        assert sms == f"{SIG}三台县气象台12月1日12时30分发布潼川镇、芦溪镇暴雨橙色预警：{RAIN}{DO}回复1确认"
        check_sms(sms, "orange")
        assert f"\n{sms}\n" in README


async def test_a_long_red_warning_keeps_a_trimmed_description_and_the_instruction(world: World) -> None:
    a, _ = await county(world)
    long = ("预计未来6小时潼川镇、芦溪镇、石安镇、富顺镇、三元镇将出现150毫米以上的特大暴雨，局地可达250毫米。"
            "涪江、凯江水位将超过保证水位，沿江低洼地带有被淹风险。山洪、滑坡、泥石流等地质灾害风险极高。")
    areas = [TONGCHUAN, LUXI, "510722107", "510722108", "510722109"]
    w = await post(world, "/api/v1/warnings", {**RED, "description": long, "areas": areas})
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    [sms] = to(world, a.phone)
    check_sms(sms, "red")
    assert "潼川镇等5个镇暴雨红色预警：" in sms and DO in sms and sms.endswith("回复1确认")
    assert "预计未来6小时" in sms  # what is happening, trimmed, not dropped


async def test_the_issuers_sms_summary_is_used(world: World) -> None:
    a, _ = await county(world)
    w = await post(world, "/api/v1/warnings", {**RED, "sms_summary": "3小时内降雨将超100毫米"})
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    [sms] = to(world, a.phone)
    assert sms == f"{SIG}三台县应急管理局12月1日12时35分发布潼川镇暴雨红色预警：3小时内降雨将超100毫米。{DO}回复1确认"
    resp = await world.client.post("/api/v1/warnings", json={**RED, "sms_summary": "【急】有雨"}, headers=auth("issuer"))
    assert resp.status == 400 and "sms_summary" in await resp.text()


async def test_an_update_says_what_changed(world: World, clock: FakeClock) -> None:
    a, b = await county(world)
    orange = {**RED, "level": "orange", "headline": "潼川镇暴雨橙色预警"}
    w = await post(world, "/api/v1/warnings", orange)
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    clock.advance(3600)
    await post(world, f"/api/v1/warnings/{w['id']}/update", {**RED, "areas": [TONGCHUAN, LUXI]})
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 2}, "approver")
    await world.drain()
    raised = to(world, b.phone)[-1]
    assert raised.startswith(f"{SIG}三台县应急管理局12月1日13时35分将暴雨橙色预警升级为红色预警，范围扩大至潼川镇、芦溪镇：")
    assert to(world, a.phone)[-1] == raised
    check_sms(raised, "red")
    assert f"\n{raised}\n" in README
    clock.advance(3600)
    await post(world, f"/api/v1/warnings/{w['id']}/update", {**orange, "areas": [LUXI]})
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 3}, "approver")
    await world.drain()
    lowered = to(world, b.phone)[-1]
    assert lowered.startswith(f"{SIG}三台县应急管理局12月1日14时35分将暴雨红色预警降级为橙色预警，范围缩小为芦溪镇：")
    assert to(world, a.phone)[-1] == lowered  # who was warned before hears it is narrowed
    check_sms(lowered, "orange")
    clock.advance(600)
    await post(world, f"/api/v1/warnings/{w['id']}/update", {**orange, "areas": [LUXI], "instruction": "请远离河道。"})
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 4}, "approver")
    await world.drain()
    same = to(world, b.phone)[-1]
    assert same.startswith(f"{SIG}三台县应急管理局12月1日14时45分更新芦溪镇暴雨橙色预警：") and "请远离河道。" in same


async def test_a_cancellation_says_what_by_whom_when_and_why_never_the_hazard(world: World, clock: FakeClock) -> None:
    a, _ = await county(world)
    w = await post(world, "/api/v1/warnings", RED)
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    clock.advance(5 * 3600 + 25 * 60)  # 18:00
    await post(world, f"/api/v1/warnings/{w['id']}/cancel", {"reason": "降雨已明显减弱"})
    await world.drain()
    cancel = to(world, a.phone)[-1]
    assert cancel == f"{SIG}三台县应急管理局12月1日18时解除潼川镇暴雨红色预警。解除原因：降雨已明显减弱。请继续关注天气变化。"
    check_sms(cancel, "red")
    assert RAIN not in cancel and "回复" not in cancel
    assert f"\n{cancel}\n" in README
    voice = sent(world, "voice")
    assert len(voice) == 1  # one cancellation per person, by SMS, the kind that reached them first
    [screen_cancel] = sent(world, "escreen")[1:]
    assert screen_cancel == "三台县应急管理局12月1日18时解除潼川镇暴雨红色预警。解除原因：降雨已明显减弱。请继续关注天气变化。"


async def test_a_cancellation_without_reason(world: World) -> None:
    a, _ = await county(world)
    w = await post(world, "/api/v1/warnings", {**RED, "level": "blue"})
    await world.drain()
    await post(world, f"/api/v1/warnings/{w['id']}/cancel", {})
    await world.drain()
    assert to(world, a.phone)[-1] == f"{SIG}三台县应急管理局12月1日12时35分解除潼川镇暴雨蓝色预警。危险已解除，请继续关注天气变化。"


async def test_a_drill_is_marked_after_the_signature_and_spoken_as_one(world: World) -> None:
    a, _ = await county(world)
    flood = {"event": "flash_flood", "level": "orange", "headline": "山洪演练", "description": "模拟潼川镇发生山洪。",
             "instruction": "请按预案组织转移演练。", "areas": [TONGCHUAN], "status": "Exercise"}
    w = await post(world, "/api/v1/warnings", flood)
    await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
    await world.drain()
    [sms] = to(world, a.phone)
    assert sms.startswith(f"{SIG}（演练）三台县应急管理局12月1日12时35分发布潼川镇山洪橙色预警：")
    check_sms(sms, "orange")
    [screen] = sent(world, "escreen")
    assert screen.startswith("（演练）")
    await post(world, "/api/v1/warnings", {**flood, "level": "red"})
    await world.drain()
    for text in [*sent(world, "voice"), *sent(world, "broadcast")]:
        assert text.startswith("演练") and text.endswith("演练结束。"), text
        check_spoken(text)


async def test_blue_asks_no_confirmation(world: World) -> None:
    a, _ = await county(world)
    await post(world, "/api/v1/warnings", {**RED, "level": "blue"})
    await world.drain()
    [sms] = to(world, a.phone)
    check_sms(sms, "blue")
    assert "回复" not in sms and sms.endswith(DO)


async def test_escalation_notices_name_the_warning_and_speak_chinese(make_world: WorldFactory, clock: FakeClock) -> None:
    world = await make_world()
    sup = replace(person(90, VILLAGE_A, "cadre"), name="李主任")  # in the drill too: a drill stays inside
    [sup_id] = await world.seed([sup])
    people = [replace(person(i, VILLAGE_A, "grid_informant"), name=f"张{i}", supervisor=sup_id) for i in range(1, 11)]
    await world.seed(people)
    roster = ("region,date,start,end,phone,name\r\n"
              "510722,2026-12-01,00:00,00:00,+8613900000002,县值班\r\n")
    resp = await world.client.post("/api/v1/duty", data=roster.encode(), headers={**auth("issuer"),
                                                                                  "Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    for exercise in (False, True):
        body = {**RED, **({"status": "Exercise"} if exercise else {})}
        w = await post(world, "/api/v1/warnings", body)
        await post(world, f"/api/v1/warnings/{w['id']}/approve", {"version": 1}, "approver")
        await world.drain()
        clock.advance(1200)
        await world.services.due.drain(due_handlers(world.services))
        await world.drain()
    notices = [t for t in to(world, sup.phone) if "您负责的" in t]
    assert len(notices) == 2
    head = "三台县应急管理局12月1日12时35分发布的潼川镇暴雨红色预警"
    listed = re.fullmatch(f"{SIG}{head}，您负责的10人尚未确认收到：(.+)等10人。请立即电话或上门通知。", notices[0])
    assert listed is not None and len(set(listed.group(1).split("、")) & {p.name for p in people}) == 8
    assert notices[1].startswith(f"{SIG}（演练）三台县应急管理局12月1日12时55分发布的潼川镇暴雨红色预警，")
    [duty] = to(world, "+8613900000002")[:1]
    assert duty == f"{SIG}{head}，尚有11人未确认收到：潼川镇11人。请督促各乡镇逐户落实。"
    for text in (*notices, duty):
        check_sms(text, "red")


async def test_auto_replies_and_help_are_signed_and_chinese(world: World) -> None:
    a, _ = await county(world)
    await post(world, "/api/v1/warnings", {**RED, "level": "yellow"})
    await world.drain()
    services = world.services

    async def answer(phone: str, text: str) -> str:
        return await _reply(services, InboundMessage(channel="sms", sender=phone, to="+8610690000", text=text, provider_ref="m1",
                                                     at=services.clock.now()))

    acked = await answer(a.phone, "收到")
    assert acked == f"{SIG}已确认收到「潼川镇暴雨黄色预警」，谢谢。"
    report = await answer(a.phone, "东街已通知到位")
    assert report == f"{SIG}已收到您关于「潼川镇暴雨黄色预警」的反馈，谢谢。如已收到预警，请回复1确认。"
    stranger = await answer("+8613999999999", "?")
    assert stranger.startswith(SIG) and "回复1" in stranger
    for text in (acked, report, stranger):
        check_sms(text, "yellow")
