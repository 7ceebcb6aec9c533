"""Shared fixtures: a real redis-server on a spare port, a real Redis Cluster (tests/redis_cluster.py), settings,
the app client, a fake clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from tests.redis_cluster import make_cluster_client, redis_cluster  # noqa: F401  (fixtures for every folder)
from warning.clock import FakeClock
from warning.redis_server import PrivateRedis, free_port
from warning.settings import Settings, load_settings
from warning.web.app import create_app
from warning.web.keys import Deps

TOKENS = {
    "admin": "test-admin-token-000000",
    "issuer": "test-issuer-token-00000",
    "issuer2": "test-issuer2-token-0000",
    "approver": "test-approver-token-000",
    "approver2": "test-approver2-token-00",
    "viewer": "test-viewer-token-00000",
    "feed": "test-feed-token-0000000",
}
ROLE_OF = {"issuer2": "issuer", "approver2": "approver"}


def auth(name: str) -> dict[str, str]:
    """The Authorization header of a test token by name (admin, issuer, viewer, ...)."""
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """One real redis-server for the test session, on a spare loopback port, no AOF."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed database."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings: the test tokens, the demo region tree, data under tmp_path."""
    base: dict[str, Any] = {
        "auth": {"tokens": [{"name": n, "role": ROLE_OF.get(n, n), "token": t} for n, t in TOKENS.items()]},
        "redis": {"data_dir": str(tmp_path / "data")},
        "server": {"log_format": "text", "public_url": "http://testserver.example"},
        "issuer": {"code": "510722", "unit": "00010001", "name": "三台县应急管理局", "signature": "【三台县应急管理局】"},
        "registry": {"regions_csv": str(Path(__file__).resolve().parent.parent / "config" / "demo_regions.csv")},
    }
    for section, table in overrides.items():
        if isinstance(table, dict) and isinstance(base.get(section), dict):
            base[section] = {**base[section], **table}
        else:
            base[section] = table
    return load_settings(None, env={}, overrides=base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


AppFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(
    aiohttp_client: Any, redis_server: PrivateRedis, redis: aioredis.Redis, clock: FakeClock, tmp_path: Path,
) -> AppFactory:
    """Build the app on the test Redis with a fake clock; overrides go to the settings."""

    async def build(settings: Settings | None = None, *, routes: list[Any] | None = None,
                    **overrides: Any) -> TestClient[Any, Any]:
        s = settings or make_settings(tmp_path, **overrides)
        app = create_app(s, deps=Deps(clock=clock, redis_url=redis_server.url, routes=routes or []))
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return build


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client()


os.environ.setdefault("WARNING_TESTING", "1")
