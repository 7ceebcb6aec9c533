"""The service skeleton: health, auth, errors, body limit, OpenAPI, configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import auth, make_settings
from warning.clock import FakeClock
from warning.errors import ConfigError
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings
from warning.web.app import create_app
from warning.web.keys import Deps
from warning.web.routing import ApiRoutes
from warning.web.throttle import API_FAILURE_WINDOW_S, API_FAILURES_ALLOWED


async def test_healthz_says_only_ok(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}  # nothing about where the store is or how it is reached
    assert resp.headers["X-Request-Id"]


async def test_healthz_says_unavailable_when_the_store_is_down(aiohttp_client: Any, tmp_path: Path) -> None:
    store = PrivateRedis(tmp_path / "store", port=free_port(), appendonly=False)
    store.start()
    try:
        client = await aiohttp_client(create_app(make_settings(tmp_path), deps=Deps(redis_url=store.url)))
        assert (await client.get("/healthz")).status == 200
    finally:
        store.stop()
    resp = await client.get("/healthz")
    assert resp.status == 503 and resp.headers["Retry-After"]
    text = await resp.text()
    assert await resp.json() == {"status": "unavailable"} and str(store.port) not in text and "127.0.0.1" not in text


async def test_the_bearer_api_pauses_an_address_after_repeated_401s(client: Any, clock: FakeClock) -> None:
    for _ in range(API_FAILURES_ALLOWED):
        resp = await client.get("/api/v1/contacts", headers={"Authorization": "Bearer guess-guess-guess-0"})
        assert resp.status == 401
    # the address waits now, even with a right token, so a right guess looks like any other
    resp = await client.get("/api/v1/contacts", headers=auth("admin"))
    assert resp.status == 429 and 0 < int(resp.headers["Retry-After"]) <= API_FAILURE_WINDOW_S
    body = await resp.json()
    assert body["error"] == "too many requests" and body["request_id"]
    # another address is not concerned
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))) as other:
        assert (await other.get(f"{base}/api/v1/contacts", headers=auth("admin"))).status == 200
    clock.advance(API_FAILURE_WINDOW_S)
    assert (await client.get("/api/v1/contacts", headers=auth("admin"))).status == 200


async def test_throttle_429_is_documented_on_guarded_routes(client: Any) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    guarded = [op for ops in spec["paths"].values() for op in ops.values() if "security" in op]
    assert guarded and all("429" in op["responses"] for op in guarded)


async def test_request_id_is_echoed(client: Any) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"


async def test_unknown_route_is_json_404(client: Any) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not found"


async def test_openapi_lists_every_route_and_only_routes(client: Any) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    assert spec["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    routed = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "OPTIONS") or path is None or path.startswith("/static"):
            continue
        routed.add((route.method, path))
    assert routed == documented


def _guarded_app_routes() -> ApiRoutes:
    routes = ApiRoutes("test")

    @routes.post("/api/v1/_probe", summary="probe", roles=("issuer",))
    async def probe(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    return routes


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token-at-all"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        (auth("viewer"), 403),
        (auth("feed"), 403),
        (auth("issuer"), 200),
        (auth("admin"), 200),
    ],
)
async def test_auth_statuses(make_client: Any, headers: dict[str, str], status: int) -> None:
    client = await make_client(routes=[_guarded_app_routes()])
    resp = await client.post("/api/v1/_probe", headers=headers)
    assert resp.status == status
    if status >= 400:
        body = await resp.json()
        assert body["error"]


async def test_body_limit_gives_413(make_client: Any) -> None:
    routes = ApiRoutes("test")

    @routes.post("/api/v1/_echo", summary="echo", roles=("issuer",))
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"n": len(await request.read())})

    client = await make_client(server={"max_body_bytes": 1024}, routes=[routes])
    ok = await client.post("/api/v1/_echo", data=b"x" * 1000, headers=auth("issuer"))
    assert ok.status == 200
    big = await client.post("/api/v1/_echo", data=b"x" * 5000, headers=auth("issuer"))
    assert big.status == 413
    assert (await big.json())["error"] == "request body too large"


def test_env_overrides_config(tmp_path: Path) -> None:
    s = load_settings(None, env={"WARNING_SERVER_PORT": "9123", "WARNING_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert s.server.port == 9123
    assert s.redis.url == "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\nport = 'x'\n", "server.port", "integer"),
        ("[server]\nport = 70000\n", "server.port", "port"),
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ("[redis]\nurl = 'http://x'\n", "redis.url", "scheme"),
        ("[[auth.tokens]]\nname='a'\nrole='root'\ntoken='0123456789abcdef'\n", "auth.tokens[0].role", "not one of"),
        ("[[auth.tokens]]\nname='a'\nrole='admin'\ntoken='short'\n", "auth.tokens[0].token", "16"),
        ("[server\n", "-", "TOML"),
    ],
)
def test_bad_config_names_file_key_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.file == str(path)
    assert err.value.key == key
    assert reason in err.value.reason


def test_bad_env_value_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, env={"WARNING_SERVER_PORT": "eighty"})
    assert err.value.key == "WARNING_SERVER_PORT"


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings("/nonexistent/x.toml", env={})


def test_demo_config_loads() -> None:
    s = load_settings(None, demo=True, env={})
    assert s.demo
    assert {t.role for t in s.tokens} == {"admin", "issuer", "approver", "viewer", "feed"}


def test_test_settings_helper(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    assert s.server.public_url == "http://testserver.example"
