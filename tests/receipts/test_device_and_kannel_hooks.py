"""Device acknowledgments and Kannel delivery reports and replies, through the webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from contacts.model import Device, Location
from tests.conftest import auth
from tests.dispatch.conftest import Rig, twilio_channel
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, person
from warning.delivery import DeliveryState
from warning.web.keys import registry_key

S = DeliveryState
RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "areas": [TONGCHUAN]}


async def _screens(aiohttp_server: Any) -> tuple[Any, list[dict[str, Any]]]:
    shown: list[dict[str, Any]] = []

    async def show(request: web.Request) -> web.Response:
        shown.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/show", show)
    return await aiohttp_server(app), shown


async def _red(rig: Rig) -> str:
    resp = await rig.client.post("/api/v1/warnings", json=RED, headers=auth("issuer"))
    wid = (await resp.json())["id"]
    await rig.client.post(f"/api/v1/warnings/{wid}/approve", json={}, headers=auth("approver"))
    return str(wid)


async def test_device_ack_needs_the_devices_own_token(make_rig: Any, aiohttp_server: Any) -> None:
    screens, shown = await _screens(aiohttp_server)

    def channels(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [twilio_channel("sms", "sms", urls["primary"]),
                {"name": "screens", "kind": "escreen", "provider": "http", "rate_per_s": 100}]

    rig = await make_rig(channels=channels, devices={"allow_loopback": True})  # the screens' server is local

    reg = rig.client.app[registry_key]
    now = rig.clock.now()
    a = await reg.put_device(Device(id="", name="潼川镇东街电子屏", kind="escreen", region=VILLAGE_A,
                                    address=str(screens.make_url("/show")), location=Location(31.1, 105.1),
                                    token="screen-token-aaaaaaaa"), now, create=True)
    b = await reg.put_device(Device(id="", name="潼川镇西街电子屏", kind="escreen", region=f"{TONGCHUAN}002",
                                    address=str(screens.make_url("/show")), token="screen-token-bbbbbbbb"),
                             now, create=True)
    assert a is not None and b is not None
    await rig.seed([person(1, VILLAGE_A)])
    wid = await _red(rig)
    await rig.pump(lambda: rig.settled(wid))
    assert {s["delivery_id"] for s in shown}
    rows = {r.delivery.recipient_id: r for r in await rig.services.deliveries.rows(
        wid, await rig.services.deliveries.ids(wid))}
    da = rows[a.id].delivery
    assert da.state is S.ACCEPTED
    # no token, a wrong token, and another device's token: refused, nothing changed
    for headers, body in (({}, {"delivery_id": da.id, "status": "displayed"}),
                          ({"Authorization": "Bearer not-a-device-token"}, {"delivery_id": da.id, "status": "displayed"}),
                          ({}, {"delivery_id": da.id, "status": "displayed", "token": "screen-token-bbbbbbbb"})):
        resp = await rig.client.post("/hooks/devices/ack", json=body, headers=headers)
        assert resp.status == 403, await resp.text()
    assert (await rig.services.deliveries.get(wid, da.id)).delivery.state is S.ACCEPTED  # type: ignore[union-attr]
    resp = await rig.client.post("/hooks/devices/ack", json={"delivery_id": da.id, "status": "displayed"},
                                 headers={"Authorization": "Bearer screen-token-aaaaaaaa"})
    assert resp.status == 204
    row = await rig.services.deliveries.get(wid, da.id)
    assert row is not None and row.delivery.state is S.DELIVERED
    # the same ack again changes nothing and counts nothing
    before = await rig.services.deliveries.counts(wid)
    await rig.client.post("/hooks/devices/ack", data={"delivery_id": da.id, "status": "displayed",
                                                      "token": "screen-token-aaaaaaaa"})
    assert await rig.services.deliveries.counts(wid) == before
    assert before["k:escreen:delivered"] == 1


async def test_kannel_dlr_and_reply_hooks(make_rig: Any, aiohttp_server: Any) -> None:
    dlr_urls: list[str] = []

    async def sendsms(request: web.Request) -> web.Response:  # speaks Kannel's sendsms answers
        dlr_urls.append(request.query["dlr-url"])
        return web.Response(status=202, text="0: Accepted for delivery")

    gateway = web.Application()
    gateway.router.add_get("/cgi-bin/sendsms", sendsms)
    kannel = await aiohttp_server(gateway)

    def channels(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [{"name": "sms", "kind": "sms", "provider": "kannel", "username": "tester", "password": "foobar-pw",
                 "sendsms_url": str(kannel.make_url("/cgi-bin/sendsms")), "rate_per_s": 100}]

    rig = await make_rig(channels=channels, hooks={"kannel_secret": "kannel-hook-secret"})
    people = [person(1, VILLAGE_A)]
    await rig.seed(people)
    resp = await rig.client.post("/api/v1/warnings", json={**RED, "level": "blue"}, headers=auth("issuer"))
    wid = (await resp.json())["id"]
    await rig.pump(lambda: rig.settled(wid))
    [row] = await rig.services.deliveries.rows(wid, await rig.services.deliveries.ids(wid))
    assert "k=kannel-hook-secret" in dlr_urls[0]  # the gateway will call back with the secret
    dlr = {"c": "sms", "ref": row.delivery.id, "type": "1", "from": "8613800000001", "to": "12345", "answer": ""}
    # wrong or missing secret: refused, nothing changed
    for secret in ("", "wrong"):
        resp = await rig.client.get("/hooks/kannel/dlr", params={**dlr, "k": secret})
        assert resp.status == 403
    assert (await rig.services.deliveries.get(wid, row.delivery.id)).delivery.state is S.ACCEPTED  # type: ignore[union-attr]
    resp = await rig.client.get("/hooks/kannel/dlr", params={**dlr, "k": "kannel-hook-secret"})
    assert resp.status == 204
    got = await rig.services.deliveries.get(wid, row.delivery.id)
    assert got is not None and got.delivery.state is S.DELIVERED
    # a reply through Kannel's get-url acknowledges, and the answer text goes back as the SMS
    resp = await rig.client.get("/hooks/kannel/mo", params={"from": "8613800000001", "to": "10086", "text": "收到",
                                                            "k": "kannel-hook-secret"})
    assert resp.status == 200 and "确认" in await resp.text()
    counts = await rig.services.deliveries.counts(wid)
    assert counts["acked"] == 1 and counts["delivered"] == 1
    resp = await rig.client.get("/hooks/kannel/mo", params={"from": "8613800000001", "text": "1", "k": "nope"})
    assert resp.status == 403
