"""A Redis of the test's own (so it can be stopped, filled up or made a replica) and the app on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from tests.conftest import make_settings
from warning.clock import FakeClock
from warning.redis_server import PrivateRedis, free_port
from warning.web.app import create_app
from warning.web.keys import Deps


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A redis-server for this test alone, on a spare port (AOF on, so a restart keeps the data)."""
    server = PrivateRedis(tmp_path / "own-redis", port=free_port(), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def admin_redis(own_redis: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    """A second client on the same server, to fill it up, make it a replica and put it back."""
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def app_client(aiohttp_client: Any, own_redis: PrivateRedis, tmp_path: Path) -> TestClient[Any, Any]:
    """The app on that Redis, without background workers (the tests drive requests only)."""
    deps = Deps(clock=FakeClock(), redis_url=own_redis.url, extra={"background": False})
    return await aiohttp_client(create_app(make_settings(tmp_path), deps=deps))  # type: ignore[no-any-return]
