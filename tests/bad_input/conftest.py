"""Bad-input fixtures: the `world` app of the warning tests, and a check that the service stays responsive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import make_settings
from tests.fakes.channels import RecordingChannel
from tests.warnings.conftest import World, world
from warning.redis_server import PrivateRedis
from warning.web.app import create_app
from warning.web.keys import Deps

__all__ = ["DEADLINE_S", "KANNEL_SECRET", "World", "answered_while_healthy", "hooked", "world"]
KANNEL_SECRET = "kannel-hook-secret-0123"
#: a bad request is answered, and /healthz answers beside it, well within this
DEADLINE_S = 10.0


async def answered_while_healthy(client: TestClient[Any, Any], method: str, path: str, **kw: Any) -> Any:
    """Send a request and, while it runs and after, /healthz; both answer within the deadline. The response."""
    request = asyncio.ensure_future(client.request(method, path, **kw))
    during = await asyncio.wait_for(client.get("/healthz"), DEADLINE_S)
    assert during.status == 200, await during.text()
    response = await asyncio.wait_for(request, DEADLINE_S)
    await response.read()
    after = await asyncio.wait_for(client.get("/healthz"), DEADLINE_S)
    assert after.status == 200, await after.text()
    return response


@pytest.fixture
async def hooked(aiohttp_client: Any, redis_server: PrivateRedis, redis: Any, clock: Any, tmp_path: Path) -> World:
    """The `world` app with a Kannel hook secret set (so the Kannel hooks get as far as reading the body)."""
    channels = {"sms": RecordingChannel("sms", "sms"), "voice": RecordingChannel("voice", "voice", max_batch=1)}
    settings = make_settings(tmp_path, hooks={"kannel_secret": KANNEL_SECRET})
    app = create_app(settings, deps=Deps(clock=clock, redis_url=redis_server.url,
                                         extra={"channels": channels, "background": False}))
    return World(await aiohttp_client(app), channels)
