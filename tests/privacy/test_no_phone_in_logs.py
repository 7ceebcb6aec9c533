"""Privacy audit: a whole warning's life, logged at DEBUG for every logger, holds no whole phone number and no
secret; and no JSON body a viewer receives holds a whole phone number.

The flow: contacts imported through the API (bad rows among them), a device and the duty roster added, a red
warning approved and fanned out through the Twilio-protocol stand-in with faults (an invalid number whose error
names it, a 503), status callbacks (delivered, undelivered, unknown, call progress), replies from known and
unknown numbers (Twilio and Kannel), forged callbacks, keypresses, the escalation steps on the fake clock and a
device acknowledgment. Log records are read raw, before any redacting filter: the source must log ids, not phones.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import TOKENS, auth
from tests.dispatch.conftest import Rig, twilio_channel
from tests.fakes.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    UNAVAILABLE,
    Fault,
    gather_params,
    inbound_sms_params,
    sign,
    status_callbacks,
)
from tests.receipts.conftest import BASE, issue, post_signed, rows, settled_sends
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A
from warning.bootstrap import due_handlers

KANNEL_SECRET = "kannel-hook-secret-5a7c9e"
SESSION_SECRET = "dashboard-session-secret-0f1e2d3c4b5a"
DEVICE_TOKEN = "screen-device-token-8b6d4f2a"
NIUTOU = TONGCHUAN + "205"
#: every number the flow uses, national significant digits
PHONES = {
    "zhang1": "13912345601", "zhang2": "13912345602", "zhang3": "13912345603", "zhang4": "13912345604",
    "zhang5": "13912345605", "boss": "13912345690", "county": "13912345691", "township": "13912345692",
    "landline": "2885551234", "stranger": "13912345699", "stranger2": "13912345698", "bad": "12000000009",
    "no_role": "13912345606", "no_region": "13912345607", "no_name": "13912345608",
}
CONTACTS_CSV = "\r\n".join([
    "姓名,手机号码,角色,行政区划代码,渠道,上级手机号码",
    f"李主任,{PHONES['boss']},cadre,{TONGCHUAN},短信",  # 2
    f'张一,139 1234 5601,cadre,{VILLAGE_A},"短信,语音",',  # 3
    f"张二,+86-139-1234-5602,村居委会人员,{VILLAGE_A},\"短信,语音\",{PHONES['boss']}",  # 4
    f"张三,0086{PHONES['zhang3']},village_monitor,{VILLAGE_A},\"短信,语音\",",  # 5
    f"张四,{PHONES['zhang4']},village_monitor,{NIUTOU},\"短信,语音\",",  # 6
    f"张五,{PHONES['zhang5']},village_monitor,{NIUTOU},\"短信,语音\",",  # 7
    f"座机,028-8555-1234,village_monitor,{NIUTOU},语音,",  # 8: a landline, voice only
    f"坏号码,{PHONES['bad']},cadre,{VILLAGE_A},短信,",  # 9: bad phone
    f"重复,{PHONES['zhang2']},cadre,{VILLAGE_A},短信,",  # 10: repeats row 4
    f"无角色,{PHONES['no_role']},队长,{VILLAGE_A},短信,",  # 11: unknown role
    f"坏区划,{PHONES['no_region']},cadre,5107,短信,",  # 12: bad region
    f",{PHONES['no_name']},cadre,{VILLAGE_A},短信,",  # 13: no name
])
REPORT = f"村口桥面被冲毁，请联系{PHONES['zhang2']}"  # a field report quoting a number
ROSTER = ("region,date,start,end,phone,name\r\n"
          f"{TONGCHUAN},2026-07-01,08:00,20:00,{PHONES['township']},镇值班\r\n"
          f"510722,2026-07-01,00:00,00:00,+86{PHONES['county']},县值班\r\n")


def forms(nsn: str) -> list[str]:
    """The ways a number may be written: national, E.164, 0086, and (mobiles) 3-4-4 with spaces or dashes."""
    out = [nsn, "+86" + nsn, "0086" + nsn, "86" + nsn]
    if len(nsn) == 11:
        out += [f"{nsn[:3]} {nsn[3:7]} {nsn[7:]}", f"{nsn[:3]}-{nsn[3:7]}-{nsn[7:]}"]
    else:
        out += ["0" + nsn, f"0{nsn[:2]}-{nsn[2:]}"]
    return out


def secrets() -> list[str]:
    basic = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return [*TOKENS.values(), AUTH_TOKEN, basic, KANNEL_SECRET, SESSION_SECRET, DEVICE_TOKEN]


def leaks(text: str) -> list[str]:
    """Every whole phone number (any form) or secret found in `text`."""
    squeezed = re.sub(r"(?<=\d)[\s\-]+(?=\d)", "", text)
    found = [f"phone {name}" for name, nsn in PHONES.items() if nsn in squeezed or any(f in text for f in forms(nsn))]
    return found + [f"secret {s[:6]}…" for s in secrets() if s in text]


@pytest.mark.parametrize("text", ["to +8613912345601", "to 8613912345601.", "0086 139 1234 5601", "139-1234-5601",
                                  "x13912345601y", "landline 028-85551234", "(0)2885551234",
                                  f"Bearer {TOKENS['viewer']}", f"k={KANNEL_SECRET}"])
def test_the_audit_sees_every_form(text: str) -> None:
    assert leaks(text)


@pytest.mark.parametrize("text", ["139****5601", "+861****5601", "region 510722100001", "id c2e9c1148f263"])
def test_the_audit_lets_masked_numbers_and_codes_pass(text: str) -> None:
    assert leaks(text) == []


class RawCapture(logging.Handler):
    """Keeps each record's message as the code produced it (arguments applied, no redaction), with tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        self.lines.append((record.name, record.levelno, text))


@pytest.fixture
def raw_logs() -> Iterator[RawCapture]:
    """DEBUG on the root and every logger that exists; the capture first, before any other handler's filters."""
    root = logging.getLogger()
    handler = RawCapture()
    saved = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root_level = root.level
    root.handlers.insert(0, handler)
    root.setLevel(logging.DEBUG)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


async def screens_server(aiohttp_server: Any) -> Any:
    async def show(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/show", show)
    return await aiohttp_server(app)


class Viewer:
    """Every JSON body the viewer receives, errors included."""

    def __init__(self, rig: Rig) -> None:
        self.rig, self.bodies = rig, []  # type: list[tuple[str, int, str]]

    async def call(self, method: str, path: str, **kwargs: Any) -> int:
        resp = await self.rig.client.request(method, path, headers=auth("viewer"), **kwargs)
        text = await resp.text()
        if resp.content_type == "application/json" or resp.status >= 400:
            json.loads(text)  # every answer, errors included, is JSON
        self.bodies.append((f"{method} {path}", resp.status, text))
        return resp.status


async def run_flow(rig: Rig, screens: Any) -> tuple[str, Viewer]:
    client, fake = rig.client, rig.fakes["primary"]
    # the registry: an import with bad rows, a device, the duty roster (one bad row, then the good file)
    resp = await client.post("/api/v1/contacts/import", data=CONTACTS_CSV.encode(),
                             headers={**auth("admin"), "Content-Type": "text/csv"})
    report = await resp.json()
    assert resp.status == 200 and report["accepted"] == 7, report
    assert [r["row"] for r in report["rejected"]] == [9, 10, 11, 12, 13]
    resp = await client.post("/api/v1/devices", headers=auth("admin"), json={
        "name": "东街电子屏", "kind": "escreen", "region": VILLAGE_A, "address": str(screens.make_url("/show")),
        "token": DEVICE_TOKEN})
    assert resp.status == 201, await resp.text()
    bad_roster = ROSTER + f"{TONGCHUAN},2026-07-01,08:00,20:00,{PHONES['bad']},坏号\r\n"
    resp = await client.post("/api/v1/duty", data=bad_roster.encode(), headers={**auth("issuer"),
                                                                                "Content-Type": "text/csv"})
    assert resp.status == 400
    resp = await client.post("/api/v1/duty", data=ROSTER.encode(), headers={**auth("issuer"),
                                                                            "Content-Type": "text/csv"})
    assert resp.status == 200
    # faults: Twilio's real 21211 message names the number; a 503 once
    fake.fail_number("+86" + PHONES["zhang4"],
                     Fault(400, 21211, f"The 'To' number +86{PHONES['zhang4']} is not a valid phone number."))
    fake.script("+86" + PHONES["zhang5"], UNAVAILABLE)
    w = await issue(rig, {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警",
                          "instruction": "请立即转移。", "areas": [TONGCHUAN]}, approve=True)
    wid = w["id"]
    await rig.pump(lambda: settled_sends(rig, wid))
    # status callbacks: delivered for most, undelivered for one (a fallback call), an unknown status, calls
    for url, params in status_callbacks(fake, ["sent", "delivered"]):
        if params["To"] == "+86" + PHONES["zhang3"] and params["MessageStatus"] == "delivered":
            params = {**params, "MessageStatus": "undelivered", "SmsStatus": "undelivered", "ErrorCode": "30003"}
        assert (await post_signed(rig, url, params)).status == 204
    [(url, params), *_] = status_callbacks(fake, ["sent"])
    assert (await post_signed(rig, url, {**params, "MessageStatus": "teleported"})).status == 204
    forged = await client.post(url[len(BASE):], data=params, headers={"X-Twilio-Signature": sign(url, params, "x")})
    assert forged.status == 403
    await rig.pump(lambda: settled_sends(rig, wid))
    for url, params in status_callbacks(fake, ["ringing", "in-progress"], kind="Calls"):
        assert (await post_signed(rig, url, params)).status == 204
    calls = fake.accepted("Calls")
    assert calls
    busy = [(u, p) for u, p in status_callbacks(fake, ["busy"], kind="Calls") if p["To"] == calls[-1].to]
    assert (await post_signed(rig, *busy[0])).status == 204
    # replies: known (a confirmation, a field report), strangers by Twilio and by Kannel in 0086 form
    for phone, text in ((PHONES["zhang1"], "收到"), (PHONES["zhang2"], REPORT),
                        (PHONES["stranger"], "1")):
        resp = await post_signed(rig, f"{BASE}/hooks/twilio/sms", inbound_sms_params("+86" + phone, text))
        assert resp.status == 200
    for sender, secret in ((f"0086{PHONES['stranger2']}", KANNEL_SECRET), (PHONES["zhang5"], KANNEL_SECRET),
                           (PHONES["zhang5"], "wrong-secret-value")):
        resp = await client.get("/hooks/kannel/mo", params={"from": sender, "to": "10086", "text": "收到",
                                                            "k": secret})
        assert resp.status == (200 if secret == KANNEL_SECRET else 403)
    # a keypress on the first call
    voice = {r.delivery.address: r.delivery for r in await rows(rig, wid) if r.delivery.kind == "voice"}
    first = calls[0]
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/gather?c=voice&d={voice[first.to].id}",
                             gather_params(first.sid or "", "1"))
    assert resp.status == 200
    # the escalation steps: call, supervisor or duty officer, county
    for step_s in (300, 300, 600):  # to 5, 10 and 20 minutes after the issue
        rig.clock.advance(step_s)
        await rig.services.due.drain(due_handlers(rig.services))
        await rig.pump(lambda: settled_sends(rig, wid))
    notices = [r for r in await rows(rig, wid) if r.msg_type == "notice"]
    assert {r.delivery.address for r in notices} >= {"+86" + PHONES["boss"], "+86" + PHONES["county"]}
    # the e-screen confirms; a wrong token is refused
    [screen] = [r.delivery for r in await rows(rig, wid) if r.delivery.kind == "escreen"]
    for token, status in (("not-the-device-token", 403), (DEVICE_TOKEN, 204)):
        resp = await client.post("/hooks/devices/ack", json={"delivery_id": screen.id, "status": "displayed"},
                                 headers={"Authorization": f"Bearer {token}"})
        assert resp.status == status
    issuer_reports = await (await client.get(f"/api/v1/warnings/{wid}/reports", headers=auth("issuer"))).json()
    assert [i["text"] for i in issuer_reports["items"]] == [REPORT]
    # what a viewer reads, and the mistakes a viewer makes
    viewer = Viewer(rig)
    contact_id = (await (await client.get("/api/v1/contacts?limit=1", headers=auth("admin"))).json())["items"][0]["id"]
    for path, status in ((f"/api/v1/warnings/{wid}/unreached", 200), (f"/api/v1/warnings/{wid}/deliveries", 200),
                         (f"/api/v1/warnings/{wid}/deliveries?state=failed", 200),
                         (f"/api/v1/warnings/{wid}/coverage", 200), (f"/api/v1/warnings/{wid}/reports", 200),
                         (f"/api/v1/warnings/{wid}/audit", 200), (f"/api/v1/warnings/{wid}", 200),
                         ("/api/v1/contacts", 200), (f"/api/v1/contacts/{contact_id}", 200), ("/api/v1/duty", 200),
                         ("/api/v1/devices", 200), (f"/api/v1/warnings/{wid}/unreached?format=pdf", 400),
                         ("/api/v1/contacts?region=5107x", 400), ("/api/v1/contacts/no-such-id", 404),
                         (f"/api/v1/warnings/{wid}/deliveries?state=lost", 400), ("/api/v1/duty?date=soon", 400),
                         ("/api/v1/warnings/no-such-warning/unreached", 404), ("/api/v1/contacts/export", 403)):
        assert await viewer.call("GET", path) == status, path
    assert await viewer.call("POST", "/api/v1/contacts/import", data=CONTACTS_CSV.encode()) == 403
    assert await viewer.call("PATCH", f"/api/v1/contacts/{contact_id}", json={"phone": PHONES["zhang1"]}) == 403
    assert await viewer.call("POST", "/api/v1/duty", data=ROSTER.encode()) == 403
    return wid, viewer


async def test_no_whole_phone_or_secret_in_any_log_line_or_viewer_body(make_rig: Any, aiohttp_server: Any,
                                                                     raw_logs: RawCapture) -> None:
    screens = await screens_server(aiohttp_server)

    def channels(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [twilio_channel("sms", "sms", urls["primary"]), twilio_channel("voice", "voice", urls["primary"]),
                {"name": "screens", "kind": "escreen", "provider": "http", "rate_per_s": 100}]

    rig = await make_rig(channels=channels, hooks={"kannel_secret": KANNEL_SECRET},
                         server={"session_secret": SESSION_SECRET}, devices={"allow_loopback": True})
    wid, viewer = await run_flow(rig, screens)
    # the flow did what it says: faults, fallback, escalation, acks
    states = {(r.delivery.address, r.delivery.kind, r.delivery.wave): r.delivery.state.value
              for r in await rows(rig, wid)}
    assert states[("+86" + PHONES["zhang4"], "sms", 0)] == "failed"
    assert any(k[0] == "+86" + PHONES["zhang3"] and k[1] == "voice" for k in states)
    lines = [(name, text) for name, _, text in raw_logs.lines
             if name != "aiohttp.access"]  # `warning serve` runs with access_log=None (warning/cli.py)
    assert len(lines) > 10
    assert any("refused" in text for _, text in lines)  # the forged callback and the wrong Kannel secret
    assert any(level == logging.DEBUG for _, level, _ in raw_logs.lines)  # DEBUG really was on
    leaked = [(name, text[:300], found) for name, text in lines if (found := leaks(text))]
    assert leaked == []
    for what, status, body in viewer.bodies:
        assert leaks(body) == [], (what, status, body[:500])
