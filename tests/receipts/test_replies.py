"""Replies (SMS), keypresses and device acks through HTTP: who confirmed, for which warning, counted once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth
from tests.fakes.twilio import gather_params, inbound_sms_params
from tests.receipts.conftest import BASE, BLUE, Rig, coverage, issue, post_signed, rows, settled_sends
from tests.warnings.conftest import LUXI, VILLAGE_A, person
from warning import keys

SMS_HOOK = f"{BASE}/hooks/twilio/sms"


async def reply(rig: Rig, phone: str, text: str) -> str:
    resp = await post_signed(rig, SMS_HOOK, inbound_sms_params(phone, text))
    assert resp.status == 200 and resp.content_type == "text/xml"
    return await resp.text()


async def live(make_rig: Any, n: int = 2, body: dict[str, Any] | None = None) -> tuple[Rig, dict[str, Any], list[Any]]:
    rig = await make_rig()
    people = [person(i, VILLAGE_A) for i in range(1, n + 1)]
    await rig.seed(people)
    w = await issue(rig, body or BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    return rig, w, people


@pytest.mark.parametrize("text", ["1", "收到", "确认", "已收到", "ok", "YES", "收到！", "１", "ＯＫ！", " 确认。 ", "Yes."])
async def test_every_form_of_yes_acknowledges(make_rig: Any, text: str) -> None:
    rig, w, people = await live(make_rig, 1)
    rig.clock.advance(120)
    answer = await reply(rig, people[0].phone, text)
    assert "已确认收到" in answer and "<Response><Message>" in answer
    cov = await coverage(rig, w["id"])
    assert (cov["acked"], cov["acked_5m"], cov["acked_15m"]) == (1, 1, 1)
    assert cov["by_region"][VILLAGE_A]["acked"] == 1 and cov["by_role"]["village_monitor"]["acked_5m"] == 1
    assert [r.delivery.state.value for r in await rows(rig, w["id"])] == ["acknowledged"]


async def test_a_second_reply_and_a_late_one_count_once_and_late_is_not_within_5m(make_rig: Any) -> None:
    rig, w, people = await live(make_rig, 2)
    rig.clock.advance(10 * 60)
    await reply(rig, people[0].phone, "收到")
    await reply(rig, people[0].phone, "1")
    rig.clock.advance(10 * 60)
    await reply(rig, people[1].phone, "确认")
    cov = await coverage(rig, w["id"])
    assert (cov["acked"], cov["acked_5m"], cov["acked_15m"]) == (2, 0, 1)
    assert cov["delivered"] == 2  # an acknowledgment implies delivery


async def test_strangers_and_invalid_numbers_get_help_and_change_nothing(make_rig: Any) -> None:
    rig, w, _ = await live(make_rig, 1)
    before = await coverage(rig, w["id"])
    for phone in ("+8613999999999", "not-a-number", ""):
        answer = await reply(rig, phone, "1")
        assert "回复1" in answer
    assert await coverage(rig, w["id"]) == before


async def test_anything_else_is_a_field_report(make_rig: Any) -> None:
    rig, w, people = await live(make_rig, 1)
    answer = await reply(rig, people[0].phone, "村口河水已漫过桥面，已组织转移12人")
    assert "反馈" in answer
    resp = await rig.client.get(f"/api/v1/warnings/{w['id']}/reports", headers=auth("viewer"))
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert [i["text"] for i in items] == ["村口河水已漫过桥面，已组织转移12人"]
    assert items[0]["name"] == people[0].name and "phone" not in items[0]
    assert (await coverage(rig, w["id"]))["acked"] == 0


async def test_reply_codes_pick_the_warning_when_several_are_open(make_rig: Any) -> None:
    rig = await make_rig()
    people = [person(1, VILLAGE_A), person(2, VILLAGE_A)]
    await rig.seed(people)
    first = await issue(rig, BLUE)
    rig.clock.advance(60)
    second = await issue(rig, {**BLUE, "event": "gale", "headline": "大风蓝色预警"})
    await rig.pump(lambda: rig.settled(second["id"]))
    # with the first warning's code, in the ways people type it
    await reply(rig, people[0].phone, f"1 {first['reply_code']}")
    await reply(rig, people[1].phone, f"{first['reply_code'].lower()}收到")
    assert (await coverage(rig, first["id"]))["acked"] == 2
    assert (await coverage(rig, second["id"]))["acked"] == 0
    # without a code: the most recent warning sent to them
    answer = await reply(rig, people[0].phone, "1")
    assert "大风蓝色预警" in answer
    assert (await coverage(rig, second["id"]))["acked"] == 1


async def test_a_reply_stops_the_call_about_to_be_placed(make_rig: Any) -> None:
    rig = await make_rig()
    cadre = person(1, VILLAGE_A, "cadre")
    await rig.seed([cadre])
    w = await issue(rig, {**BLUE, "level": "red", "headline": "暴雨红色预警"}, approve=True)
    # the SMS goes out; the call is still queued when the reply comes
    sms_worker = next(x for x in rig.workers if x.channel.name == "sms")
    await sms_worker.ensure_groups()
    await sms_worker.step()
    await reply(rig, cadre.phone, "收到")
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    assert rig.fakes["primary"].accepted("Calls") == []
    states = {r.delivery.kind: r.delivery.state.value for r in await rows(rig, w["id"]) if r.msg_type != "notice"}
    assert states == {"sms": "acknowledged", "voice": "cancelled"}


async def test_keypress_one_acknowledges_other_keys_do_not(make_rig: Any) -> None:
    rig = await make_rig()
    cadres = [person(1, LUXI + "001", "cadre"), person(2, LUXI + "001", "cadre")]
    await rig.seed(cadres)
    w = await issue(rig, {**BLUE, "level": "red", "headline": "暴雨红色预警", "areas": [LUXI]}, approve=True)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    calls = rig.fakes["primary"].accepted("Calls")
    assert len(calls) == 2
    voice = {r.delivery.address: r.delivery for r in await rows(rig, w["id"]) if r.delivery.kind == "voice"}
    for call, digit in zip(calls, ("1", "9"), strict=True):
        did = voice[call.to].id
        url = f"{BASE}/hooks/twilio/gather?c=voice&d={did}"
        resp = await post_signed(rig, url, gather_params(call.sid or "", digit))
        assert resp.status == 200
        assert ("已确认收到" if digit == "1" else "请按1") in await resp.text()
    after = {r.delivery.address: r.delivery.state.value for r in await rows(rig, w["id"]) if r.delivery.kind == "voice"}
    assert after == {calls[0].to: "acknowledged", calls[1].to: "delivered"}
    cov = await coverage(rig, w["id"])
    assert cov["acked"] == 1 and cov["by_channel"]["voice"]["acked"] == 1
    # forged keypress: refused, nothing changes
    forged = await post_signed(rig, f"{BASE}/hooks/twilio/gather?c=voice&d={voice[calls[1].to].id}",
                               gather_params(calls[1].sid or "", "1"), token="wrong-token")
    assert forged.status == 403
    assert (await coverage(rig, w["id"]))["acked"] == 1


async def test_held_key_is_never_left_for_acks(make_rig: Any) -> None:
    rig, w, people = await live(make_rig, 1)
    await reply(rig, people[0].phone, "1")
    assert await rig.services.redis.hget(keys.acked_key(w["id"]), (await rows(rig, w["id"]))[0].delivery.recipient_id)
