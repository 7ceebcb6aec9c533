"""Device addresses fail closed: none on this machine or a link-local network (unless `[devices] allow_loopback`),
at registration and when sending; no redirects followed; credentials in an address shown to admins only."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.devices_http import HttpDeviceChannel
from contacts.addresses import is_local_ip, mask_credentials, names_local_target
from contacts.model import Device
from tests.conftest import auth, make_settings
from tests.dashboard.conftest import login
from tests.dispatch.conftest import Rig, twilio_channel
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, person
from warning.bootstrap import build_channels, channel_tables
from warning.channel import Outbound
from warning.clock import FakeClock
from warning.errors import ConfigError, Reason
from warning.web.keys import registry_key

PUBLIC = "https://warn.example.org"
LOCAL = ["http://127.0.0.1/show", "http://127.8.9.10:8080/x", "http://[::1]/", "http://169.254.169.254/latest/meta-data",
         "http://[fe80::1]/", "http://[fe80::1%25eth0]:80/", "http://localhost:8080/", "http://screen.localhost/",
         "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "https://LOCALHOST./"]
SCREEN = {"name": "潼川镇电子屏", "kind": "escreen", "region": TONGCHUAN}


@pytest.mark.parametrize("url", LOCAL)
def test_local_targets_are_recognised(url: str) -> None:
    assert names_local_target(url)


@pytest.mark.parametrize("url", ["http://screen.example/1", "http://10.1.2.3/", "http://192.168.1.20:8080/",
                                 "http://[2001:db8::1]/", "http://127.example/", "not a url"])
def test_other_targets_are_not(url: str) -> None:
    assert not names_local_target(url)


@pytest.mark.parametrize(("url", "shown"), [
    ("http://admin:pa55word@screen.example/show", "http://***@screen.example/show"),
    ("https://tok3n@screen.example:8443/x?token=abc123&id=7", "https://***@screen.example:8443/x?token=***&id=7"),
    ("http://screen.example/x?api_key=k1&Signature=s2&zone=3", "http://screen.example/x?api_key=***&Signature=***&zone=3"),
    ("http://screen.example/plain", "http://screen.example/plain"),
    ("510722100", "510722100"),
])
def test_credentials_are_masked(url: str, shown: str) -> None:
    assert mask_credentials(url) == shown


@pytest.mark.parametrize("url", LOCAL)
async def test_registration_refuses_local_addresses(client: Any, url: str) -> None:
    resp = await client.post("/api/v1/devices", json={**SCREEN, "address": url}, headers=auth("admin"))
    assert resp.status == 400
    assert "allow_loopback" in (await resp.json())["detail"]["address"]
    listed = await (await client.get("/api/v1/devices", headers=auth("admin"))).json()
    assert listed["items"] == []  # nothing stored


async def test_patching_to_a_local_address_is_refused(client: Any) -> None:
    made = await (await client.post("/api/v1/devices", json={**SCREEN, "address": "http://screen.example/1"},
                                    headers=auth("admin"))).json()
    resp = await client.patch(f"/api/v1/devices/{made['id']}", json={"address": "http://169.254.169.254/"},
                              headers=auth("admin"))
    assert resp.status == 400
    got = await (await client.get(f"/api/v1/devices/{made['id']}", headers=auth("admin"))).json()
    assert got["address"] == "http://screen.example/1"


async def test_allow_loopback_lets_local_devices_register(make_client: Any) -> None:
    client = await make_client(devices={"allow_loopback": True})
    resp = await client.post("/api/v1/devices", json={**SCREEN, "address": "http://127.0.0.1:9000/show"},
                             headers=auth("admin"))
    assert resp.status == 201


def test_allow_loopback_must_be_a_boolean(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, devices={"allow_loopback": "yes"})
    with pytest.raises(ConfigError, match="devices.allow_loopback"):
        build_channels(settings, channel_tables(settings), http=None, clock=FakeClock())


async def test_devices_api_masks_credentials_for_everyone_but_admins(client: Any) -> None:
    address = "http://admin:pa55word@screen.example/show?token=abc123def"
    made = await (await client.post("/api/v1/devices", json={**SCREEN, "address": address},
                                    headers=auth("admin"))).json()
    assert made["address"] == address
    for who in ("viewer", "issuer", "approver"):
        one = await (await client.get(f"/api/v1/devices/{made['id']}", headers=auth(who))).text()
        listed = await (await client.get("/api/v1/devices", headers=auth(who))).text()
        for body in (one, listed):
            assert "pa55word" not in body and "abc123def" not in body and "screen.example/show" in body
    admin = await (await client.get(f"/api/v1/devices/{made['id']}", headers=auth("admin"))).json()
    assert admin["address"] == address


# ---- sending ------------------------------------------------------------------------------------------------

async def _device_server(aiohttp_server: Any, host: str = "127.0.0.1") -> tuple[Any, list[web.Request]]:
    seen: list[web.Request] = []

    async def show(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"id": "copy-1"})

    async def moved(request: web.Request) -> web.Response:
        seen.append(request)
        raise web.HTTPTemporaryRedirect("/show")

    app = web.Application()
    app.router.add_post("/show", show)
    app.router.add_post("/moved", moved)
    return await aiohttp_server(app, host=host), seen


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_sending_to_this_machine_is_refused(aiohttp_server: Any, host: str) -> None:
    server, seen = await _device_server(aiohttp_server)
    async with aiohttp.ClientSession() as http:
        channel = HttpDeviceChannel(name="screens", http=http, public_url=PUBLIC)
        [result] = await channel.send([Outbound("d1", f"http://{host}:{server.port}/show", "暴雨红色预警")])
    assert result.error is not None and (result.error.reason, result.error.retryable) == (Reason.INVALID_ADDRESS, False)
    assert seen == []


async def test_redirects_are_not_followed(aiohttp_server: Any) -> None:
    server, seen = await _device_server(aiohttp_server)
    async with aiohttp.ClientSession() as http:
        channel = HttpDeviceChannel(name="screens", http=http, public_url=PUBLIC, allow_loopback=True)
        [result] = await channel.send([Outbound("d1", str(server.make_url("/moved")), "暴雨红色预警")])
    assert not result.ok and result.error is not None and not result.error.retryable
    assert [r.path for r in seen] == ["/moved"]


def _lan_address() -> str | None:
    """An address of this machine outside loopback (the one its routes would use), if it has one."""
    for probe in ("192.0.2.1", "10.0.0.1", "172.16.0.1", "192.168.0.1"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # UDP: picks a route and a source address, sends nothing
                address = str(s.getsockname()[0])
        except OSError:
            continue
        if not is_local_ip(address):
            return address
    return None


async def test_a_name_is_sent_to_the_address_that_was_checked(aiohttp_server: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # a name that resolves to a LAN address when checked and to this machine afterwards (DNS rebinding): the
    # request still goes to the checked address, with the name as Host
    lan = _lan_address()
    if lan is None:
        pytest.skip("this machine has no address outside loopback")
    server, seen = await _device_server(aiohttp_server, host=lan)
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    answers = iter([lan])

    async def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "screen.test":
            return await real(next(answers, "127.0.0.1"), port, *args, **kw)
        return await real(host, port, *args, **kw)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)  # the resolver is the stdlib's: no DNS server here
    async with aiohttp.ClientSession() as http:
        channel = HttpDeviceChannel(name="screens", http=http, public_url=PUBLIC)
        [result] = await channel.send([Outbound("d1", f"http://screen.test:{server.port}/show", "暴雨红色预警")])
        assert result.ok, result.error
        assert seen[-1].headers["Host"] == f"screen.test:{server.port}"
        # the next send looks the name up again, finds this machine, and refuses
        [again] = await channel.send([Outbound("d2", f"http://screen.test:{server.port}/show", "暴雨红色预警")])
    assert again.error is not None and again.error.reason is Reason.INVALID_ADDRESS and len(seen) == 1


# ---- what people see of a device delivery ------------------------------------------------------------------

async def test_deliveries_show_device_credentials_to_admins_only(make_rig: Any, aiohttp_server: Any) -> None:
    server, seen = await _device_server(aiohttp_server)
    address = f"http://screen:pa55word@127.0.0.1:{server.port}/show?token=abc123def"

    def channels(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [twilio_channel("sms", "sms", urls["primary"]),
                {"name": "screens", "kind": "escreen", "provider": "http", "rate_per_s": 100}]

    rig: Rig = await make_rig(channels=channels, devices={"allow_loopback": True})
    await rig.client.app[registry_key].put_device(
        Device(id="", name="东街电子屏", kind="escreen", region=VILLAGE_A, address=address,
               token="screen-token-aaaaaaaa"), rig.clock.now(), create=True)
    await rig.seed([person(1, VILLAGE_A)])
    resp = await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "areas": [TONGCHUAN]})
    wid = (await resp.json())["id"]
    await rig.client.post(f"/api/v1/warnings/{wid}/approve", json={}, headers=auth("approver"))
    await rig.pump(lambda: rig.settled(wid))
    assert seen and seen[0].headers["Authorization"].startswith("Basic")  # the device got its credentials
    path = f"/api/v1/warnings/{wid}/deliveries?kind=escreen"
    admin = await (await rig.client.get(path, headers=auth("admin"))).json()
    assert [d["address"] for d in admin["items"]] == [address]
    for who in ("viewer", "issuer", "approver"):
        for fmt in ("json", "csv"):
            body = await (await rig.client.get(f"{path}&format={fmt}", headers=auth(who))).text()
            assert "pa55word" not in body and "abc123def" not in body and "/show" in body, (who, fmt)
    assert (await login(rig.client, "viewer")).status == 303
    export = await rig.client.get(f"/dashboard/warnings/{wid}/export/deliveries?format=csv")
    text = await export.text()
    assert export.status == 200 and "***@127.0.0.1" in text and "pa55word" not in text and "abc123def" not in text
