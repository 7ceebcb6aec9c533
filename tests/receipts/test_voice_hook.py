"""`/hooks/twilio/voice`: the TwiML for a call placed by URL — the warning read twice in Mandarin inside a one-digit
Gather whose action is our signed keypress hook; unsigned and forged requests refused with nothing changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from defusedxml import ElementTree

from tests.conftest import auth
from tests.fakes.twilio import ACCOUNT_SID, gather_params, sign
from tests.receipts.conftest import BASE, BLUE, Rig, coverage, issue, post_signed, rows, settled_sends
from tests.warnings.conftest import VILLAGE_A, person

RED = {**BLUE, "level": "red", "headline": "潼川镇暴雨红色预警", "instruction": "请立即转移到安全地带。"}


def answered(sid: str, to: str) -> dict[str, str]:
    """What Twilio posts to a call's Url when the callee answers."""
    return {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": "+15005550006", "To": to, "CallStatus": "in-progress",
            "Direction": "outbound-api", "ApiVersion": "2010-04-01", "Called": to, "Caller": "+15005550006"}


async def red_call(make_rig: Any, **contact: Any) -> tuple[Rig, dict[str, Any], Any, Any]:
    """A red warning to one cadre; returns the rig, the warning, the call the stand-in accepted and its delivery."""
    rig = await make_rig()
    cadre = replace(person(1, VILLAGE_A, "cadre"), **contact)
    await rig.seed([cadre])
    w = await issue(rig, RED, approve=True)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    [call] = rig.fakes["primary"].accepted("Calls")
    [voice] = [r.delivery for r in await rows(rig, w["id"]) if r.delivery.kind == "voice"]
    return rig, w, call, voice


async def snapshot(rig: Rig, wid: str) -> Any:
    states = sorted((r.delivery.id, r.delivery.state.value, r.delivery.attempts) for r in await rows(rig, wid))
    return states, await coverage(rig, wid), await rig.services.redis.dbsize()


async def test_signed_request_gets_the_warning_twice_in_a_one_digit_gather(make_rig: Any) -> None:
    rig, w, call, voice = await red_call(make_rig)
    for url in (f"{BASE}/hooks/twilio/voice?c=voice&d={voice.id}", f"{BASE}/hooks/twilio/voice?c=voice"):
        resp = await post_signed(rig, url, answered(call.sid or "", call.to))
        assert resp.status == 200 and resp.content_type == "text/xml"
        root = ElementTree.fromstring(await resp.text())
        assert root.tag == "Response"
        [gather] = list(root)
        assert gather.tag == "Gather" and gather.get("numDigits") == "1" and gather.get("method") == "POST"
        says = gather.findall("Say")
        assert len(says) == 2 and {s.get("language") for s in says} == {"cmn-CN"}
        assert says[0].text == says[1].text and "请立即转移到安全地带" in (says[0].text or "")
        assert "按1" in (says[0].text or "")
        action = urlsplit(gather.get("action") or "")
        assert f"{action.scheme}://{action.netloc}" == BASE and action.path == "/hooks/twilio/gather"
        assert parse_qs(action.query) == {"c": ["voice"], "d": [voice.id]}
    # the action URL, posted as Twilio would with the keypress 1, confirms
    resp = await post_signed(rig, gather.get("action") or "", gather_params(call.sid or "", "1"))
    assert resp.status == 200 and "已确认收到" in await resp.text()
    assert (await coverage(rig, w["id"]))["acked"] == 1


async def test_an_unknown_call_gets_a_short_pointer_to_the_sms(make_rig: Any) -> None:
    rig, _, call, _ = await red_call(make_rig)
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/voice?c=voice", answered("CA" + "f" * 32, call.to))
    assert resp.status == 200
    root = ElementTree.fromstring(await resp.text())
    [say] = list(root)
    assert say.tag == "Say" and say.get("language") == "cmn-CN" and "短信" in (say.text or "")


async def test_unsigned_and_forged_requests_are_refused_and_change_nothing(make_rig: Any) -> None:
    rig, w, call, voice = await red_call(make_rig)
    before = await snapshot(rig, w["id"])
    url = f"{BASE}/hooks/twilio/voice?c=voice&d={voice.id}"
    params = answered(call.sid or "", call.to)
    attempts = [
        {},  # no signature at all
        {"X-Twilio-Signature": ""},
        {"X-Twilio-Signature": sign(url, params, "someone-elses-token")},
        {"X-Twilio-Signature": sign(f"{BASE}/hooks/twilio/voice?c=voice&d=other", params)},  # another URL
        {"X-Twilio-Signature": sign(url, {**params, "To": "+8613999999999"})},  # other parameters
        {"X-Twilio-Signature": sign("http://attacker.example/hooks/twilio/voice?c=voice&d=" + voice.id, params)},
    ]
    for headers in attempts:
        resp = await rig.client.post(url[len(BASE):], data=params, headers=headers)
        assert resp.status == 403, headers
        body = await resp.json()
        assert body["error"] == "invalid signature" and "签名无效" in body["detail"] and body["request_id"]
        assert "<Response>" not in await resp.text()
    # a forged keypress for the same call is refused too
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/gather?c=voice&d={voice.id}",
                             gather_params(call.sid or "", "1"), token="someone-elses-token")
    assert resp.status == 403
    assert await snapshot(rig, w["id"]) == before
    assert (await rig.client.get(f"/api/v1/warnings/{w['id']}", headers=auth("viewer"))).status == 200
