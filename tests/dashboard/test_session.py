"""Signing in and out of the dashboard: cookies, CSRF, tampering, roles, one-time links."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.conftest import TOKENS, auth
from tests.dashboard.conftest import World, login, login_csrf
from warning.clock import FakeClock
from warning.web.dashboard import safe_next
from warning.web.dashboard_session import COOKIE, issue_login_link
from warning.web.keys import session_book_key
from warning.web.throttle import LOGIN_FAILURE_WINDOW_S, LOGIN_FAILURES_ALLOWED


def _cookie(world: World) -> str:
    value = next((c.value for c in world.client.session.cookie_jar if c.key == COOKIE), None)
    assert value is not None
    return value


async def _page(world: World, cookie: str | None, path: str = "/dashboard") -> Any:
    world.client.session.cookie_jar.clear()
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    return await world.client.get(path, headers=headers, allow_redirects=False)


async def test_root_and_pages_send_a_stranger_to_the_form(world: World) -> None:
    resp = await world.client.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/dashboard")
    resp = await world.client.get("/dashboard?lang=en", allow_redirects=False)
    assert resp.status == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query) == {"next": ["/dashboard?lang=en"]}
    resp = await world.client.get("/dashboard/warnings/x/coverage")
    assert resp.status == 401 and (await resp.json())["error"] == "no dashboard session"
    form = await (await world.client.get("/login")).text()
    assert "访问令牌" in form and "Access token" in form


async def test_login_sets_a_signed_http_only_strict_cookie_without_the_token(world: World) -> None:
    resp = await login(world.client, "viewer", next_path="/dashboard?lang=en")
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard?lang=en"
    header = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    value = _cookie(world)
    assert TOKENS["viewer"] not in value and TOKENS["viewer"] not in header
    payload = json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "=="))
    assert payload["n"] == "viewer" and set(payload) == {"n", "e", "s"}
    page = await world.client.get("/dashboard", allow_redirects=False)
    assert page.status == 200
    assert page.headers["X-Frame-Options"] == "DENY" and "script-src 'nonce-" in page.headers["Content-Security-Policy"]
    assert "viewer · 查看员" in await page.text()  # who is signed in, the role in Chinese


async def test_wrong_token_feed_token_and_bad_csrf_get_no_session(world: World) -> None:
    csrf = await login_csrf(world.client)
    resp = await world.client.post("/login", data={"token": "not-a-token-at-all-xx", "csrf": csrf})
    assert resp.status == 401 and "令牌无效" in await resp.text()
    resp = await login(world.client, "feed")
    assert resp.status == 403 and "此令牌不能登录看板" in await resp.text()
    resp = await world.client.post("/login", data={"token": TOKENS["admin"], "csrf": "forged"})
    assert resp.status == 403
    world.client.session.cookie_jar.clear()  # a CSRF token without its pre-login cookie is worthless
    resp = await world.client.post("/login", data={"token": TOKENS["admin"], "csrf": csrf})
    assert resp.status == 403
    assert all(c.key != COOKIE for c in world.client.session.cookie_jar)
    assert (await _page(world, None)).status == 303


async def test_tampered_expired_or_foreign_cookies_are_refused(world: World) -> None:
    assert (await login(world.client, "viewer")).status == 303
    good = _cookie(world)
    assert (await _page(world, good)).status == 200
    payload, mac = good.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=="))
    as_admin = base64.urlsafe_b64encode(json.dumps({**doc, "n": "admin"}).encode()).decode().rstrip("=")
    longer = base64.urlsafe_b64encode(json.dumps({**doc, "e": doc["e"] + 10**6}).encode()).decode().rstrip("=")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (f"{as_admin}.{mac}", f"{longer}.{mac}", f"{payload}.{flipped}", payload, "garbage", f"{payload}."):
        resp = await _page(world, forged)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login"), forged
    # another process with another secret does not trust this one's cookies
    book = world.client.app[session_book_key]
    original = book.secret
    book.secret = b"another-secret"
    assert (await _page(world, good)).status == 303
    book.secret = original
    world.services.clock.advance(book.ttl_s + 1)  # type: ignore[attr-defined]
    assert (await _page(world, good)).status == 303


async def test_a_bearer_token_or_the_cookie_does_not_cross_over(world: World) -> None:
    assert (await world.client.get("/dashboard", headers=auth("admin"), allow_redirects=False)).status == 303
    assert (await login(world.client, "admin")).status == 303
    assert (await world.client.get("/api/v1/warnings")).status == 401  # the API still wants its bearer token


async def test_logout_needs_csrf_and_ends_the_session_for_good(world: World) -> None:
    assert (await login(world.client, "issuer")).status == 303
    cookie = _cookie(world)
    page = await (await world.client.get("/dashboard")).text()
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    resp = await world.client.post("/logout", data={"csrf": "nope"}, allow_redirects=False)
    assert resp.status == 403
    assert (await _page(world, cookie)).status == 200
    resp = await world.client.post("/logout", data={"csrf": csrf}, headers={"Cookie": f"{COOKIE}={cookie}"},
                                   allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert any(h.startswith(f'{COOKIE}=""') for h in resp.headers.getall("Set-Cookie"))
    assert (await _page(world, cookie)).status == 303  # a copy of the old cookie is refused too


async def test_next_only_goes_to_this_site(world: World) -> None:
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "dashboard", "", None):
        assert safe_next(bad) == "/dashboard"
    assert safe_next("/dashboard/warnings/w1?lang=en") == "/dashboard/warnings/w1?lang=en"
    resp = await login(world.client, "admin", next_path="//evil.example/")
    assert resp.headers["Location"] == "/dashboard"


async def test_one_time_link_signs_in_once(world: World) -> None:
    app = world.client.app
    path = await issue_login_link(app, "approver", next_path="/dashboard?lang=en")
    resp = await world.client.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard?lang=en"
    assert (await _page(world, _cookie(world))).status == 200
    world.client.session.cookie_jar.clear()
    again = await world.client.get(path, allow_redirects=False)
    assert again.status == 403 and all(c.key != COOKIE for c in world.client.session.cookie_jar)
    other = await issue_login_link(app, "viewer")
    nonce_sig = other.split("t=")[1].split("&")[0]
    forged = other.replace(nonce_sig, nonce_sig[:-2] + "xx")
    assert (await world.client.get(forged, allow_redirects=False)).status == 403
    assert (await world.client.get("/login/link", allow_redirects=False)).status == 403
    assert (await world.client.get(other, allow_redirects=False)).status == 303  # the forgery did not use it up


async def test_guessing_tokens_pauses_sign_in_for_that_address(world: World) -> None:
    for _ in range(LOGIN_FAILURES_ALLOWED):
        csrf = await login_csrf(world.client)
        resp = await world.client.post("/login", data={"token": "guess-guess-guess-1", "csrf": csrf},
                                       allow_redirects=False)
        assert resp.status == 401
    # even the right token waits now, so a guess that happens to be right is not told apart
    resp = await login(world.client, "viewer")
    assert resp.status == 429 and COOKIE not in {c.key for c in world.client.session.cookie_jar}


class _Browser:
    """A browser at another address (127.0.0.n: every loopback address reaches the test server)."""

    def __init__(self, world: World, n: int) -> None:
        self.base = str(world.client.make_url("")).rstrip("/")
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0)),
                                             cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def sign_in(self, token: str) -> aiohttp.ClientResponse:
        form = await (await self.session.get(f"{self.base}/login")).text()
        found = re.search(r'name="csrf" value="([^"]+)"', form)
        assert found is not None
        return await self.session.post(f"{self.base}/login", data={"token": token, "csrf": found.group(1)},
                                       allow_redirects=False)

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.session.get(f"{self.base}{path}", allow_redirects=False)


async def test_the_same_wrong_token_is_paused_whatever_the_address(world: World, clock: FakeClock) -> None:
    browsers = [_Browser(world, n) for n in range(2, LOGIN_FAILURES_ALLOWED + 5)]
    try:
        for b in browsers[:LOGIN_FAILURES_ALLOWED]:  # one try each: no address is over its own limit
            assert (await b.sign_in("leaked-old-token-000")).status == 401
        fresh = browsers[LOGIN_FAILURES_ALLOWED]
        paused = await fresh.sign_in("leaked-old-token-000")
        assert paused.status == 429 and 0 < int(paused.headers["Retry-After"]) <= LOGIN_FAILURE_WINDOW_S
        # another token, from an address that has not failed, is judged as usual
        assert (await fresh.sign_in("another-guess-0000")).status == 401
        assert (await browsers[LOGIN_FAILURES_ALLOWED + 1].sign_in(TOKENS["viewer"])).status == 303
        clock.advance(LOGIN_FAILURE_WINDOW_S)
        assert (await browsers[LOGIN_FAILURES_ALLOWED + 2].sign_in("leaked-old-token-000")).status == 401
    finally:
        for b in browsers:
            await b.session.close()


async def test_a_one_time_link_is_paused_after_bad_signatures_from_anywhere(world: World, clock: FakeClock) -> None:
    path = await issue_login_link(world.client.app, "approver")
    nonce_sig = path.split("t=")[1].split("&")[0]
    forged = path.replace(nonce_sig, nonce_sig.split(".")[0] + ".forged-signature")
    browsers = [_Browser(world, n) for n in range(2, LOGIN_FAILURES_ALLOWED + 4)]
    try:
        for b in browsers[:LOGIN_FAILURES_ALLOWED]:
            assert (await b.get(forged)).status == 403
        # the link itself is paused now, even with its right signature
        paused = await browsers[LOGIN_FAILURES_ALLOWED].get(path)
        assert paused.status == 429 and COOKIE not in {c.key for c in browsers[LOGIN_FAILURES_ALLOWED].session.cookie_jar}
        clock.advance(LOGIN_FAILURE_WINDOW_S)
        assert (await browsers[LOGIN_FAILURES_ALLOWED + 1].get(path)).status == 303
    finally:
        for b in browsers:
            await b.session.close()


async def test_bad_links_count_against_the_address_for_the_form_too(world: World) -> None:
    for i in range(LOGIN_FAILURES_ALLOWED):
        resp = await world.client.get(f"/login/link?t=nonce{i}.bad", allow_redirects=False)
        assert resp.status == 403
    assert (await login(world.client, "viewer")).status == 429
    other = _Browser(world, 7)
    try:
        assert (await other.sign_in(TOKENS["viewer"])).status == 303
    finally:
        await other.session.close()
