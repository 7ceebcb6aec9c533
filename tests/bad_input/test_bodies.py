"""Malformed bodies (multipart without a boundary or cut short, JSON nested 100,000 deep, NaN, a 1 MiB draft) and a
non-ASCII sign-in link: each a 400 (or 413) with a clear message, nothing changed, the service answering beside it."""

from __future__ import annotations

import io
import json

import pytest

from tests.bad_input.conftest import KANNEL_SECRET, World, answered_while_healthy
from tests.conftest import auth
from warning.web.keys import registry_key

pytestmark = pytest.mark.timeout(60)
K = f"k={KANNEL_SECRET}"
#: every endpoint that reads a form or a multipart body, with the token it needs
FORM_ENDPOINTS = [("/login", None), ("/hooks/twilio/status", None), ("/hooks/twilio/sms", None),
                  ("/hooks/twilio/voice", None), ("/hooks/twilio/gather", None), (f"/hooks/kannel/dlr?{K}", None),
                  (f"/hooks/kannel/mo?{K}", None), ("/hooks/devices/ack", None),
                  ("/api/v1/contacts/import", "admin")]
PART = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
MALFORMED = {
    "no boundary": ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="token"\r\n\r\nabc\r\n--x--'),
    "cut short": ("multipart/form-data; boundary=XyZ", PART + b"name,phone\r\n"),
    "headers cut short": ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nContent-Disposition: form-"),
    "unknown charset": ("multipart/form-data; boundary=XyZ",
                        (b'--XyZ\r\nContent-Disposition: form-data; name="token"\r\nContent-Type: text/plain; '
                         b"charset=no-such-charset\r\n\r\nabc\r\n--XyZ--\r\n")),
    "a part header that is no header": ("multipart/form-data; boundary=XyZ",
                                        b"--XyZ\r\n-4.4e+16--XyZ--\r\n\r\nabc\r\n--XyZ--\r\n"),
    "form in an unknown charset": ("application/x-www-form-urlencoded; charset=no-such-charset", b"token=abc"),
}


def _headers(token: str | None, content_type: str) -> dict[str, str]:
    return {**(auth(token) if token else {}), "Content-Type": content_type}


@pytest.mark.parametrize("kind", list(MALFORMED))
@pytest.mark.parametrize(("path", "token"), FORM_ENDPOINTS)
async def test_malformed_form_or_multipart_is_400(hooked: World, path: str, token: str | None, kind: str) -> None:
    content_type, body = MALFORMED[kind]
    resp = await answered_while_healthy(hooked.client, "POST", path, data=body, headers=_headers(token, content_type))
    assert resp.status == 400, (kind, resp.status, await resp.text())
    doc = await resp.json()
    assert doc["error"] and doc["detail"] and doc["request_id"]
    assert hooked.channels["sms"].sent == []


DEEP = b"[" * 100_000 + b"]" * 100_000
JSON_ENDPOINTS = [("/api/v1/warnings", "issuer"), ("/api/v1/contacts", "admin"), ("/api/v1/devices", "admin"), ("/api/v1/sites", "admin")]


@pytest.mark.parametrize("body", [DEEP, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, b'{"level": NaN}',
                                  b'{"x": ' + b"9" * 5000 + b"}", b"\xff\xfe{", b"{"])
@pytest.mark.parametrize(("path", "token"), JSON_ENDPOINTS)
async def test_malformed_json_is_400_and_creates_nothing(world: World, path: str, token: str, body: bytes) -> None:
    resp = await answered_while_healthy(world.client, "POST", path, data=body,
                                        headers=_headers(token, "application/json"))
    assert resp.status == 400, await resp.text()
    assert "JSON" in (await resp.json())["error"]
    listed = await (await world.client.get("/api/v1/warnings", headers=auth("admin"))).json()
    assert listed["items"] == []
    assert await world.client.app[registry_key].count() == 0


async def test_device_ack_nested_json_is_refused_without_a_500(world: World) -> None:
    resp = await answered_while_healthy(world.client, "POST", "/hooks/devices/ack", data=DEEP,
                                        headers={"Content-Type": "application/json"})
    assert resp.status == 403  # unreadable body: no device token in it, as for any ack without one


async def test_a_draft_over_1_mib_is_413_and_creates_nothing(world: World) -> None:
    body = {"event": "rainstorm", "level": "blue", "headline": "暴雨", "areas": ["510722"],
            "description": "雨" * 10, "sites": ["s" * 100] * 11_000}
    resp = await answered_while_healthy(world.client, "POST", "/api/v1/warnings",
                                        data=io.BytesIO(json.dumps(body).encode()),
                                        headers={**auth("issuer"), "Content-Type": "application/json"})
    assert resp.status == 413, await resp.text()
    assert "1048576" in (await resp.json())["detail"]
    listed = await (await world.client.get("/api/v1/warnings", headers=auth("admin"))).json()
    assert listed["items"] == []


@pytest.mark.parametrize("t", ["ééé.é", "你好.签名", "a.b\u202e", "%ff%fe.x", "a" * 65 + ".b", "a.b.c"])
async def test_a_malformed_sign_in_link_is_400(world: World, t: str) -> None:
    resp = await answered_while_healthy(world.client, "GET", f"/login/link?t={t}", allow_redirects=False)
    assert resp.status == 400
    assert "链接格式无效" in await resp.text()
    assert all(c.key != "ew_session" for c in world.client.session.cookie_jar)


@pytest.mark.parametrize("presented", ["令牌", "tok\u00e9n"])
async def test_non_ascii_csrf_and_session_cookie_are_refused_not_500(world: World, presented: str) -> None:
    resp = await world.client.post("/login", data={"token": "x", "csrf": presented}, allow_redirects=False)
    assert resp.status == 403
    world.client.session.cookie_jar.update_cookies({"ew_session": f"e30.{presented}"})
    page = await world.client.get("/dashboard/warnings/w1/coverage")
    assert page.status == 401
