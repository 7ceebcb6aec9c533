"""End-to-end dispatch: the app over HTTP, real Redis, Twilio-protocol stand-ins, workers driven with a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.warnings import conftest as core_fixtures
from warning import keys
from warning.bootstrap import Services, due_handlers, make_workers
from warning.clock import FakeClock
from warning.redis_server import PrivateRedis
from warning.web.app import create_app
from warning.web.keys import Deps, registry_key, services_key
from warning.worker import ChannelWorker

world = core_fixtures.world  # the core's app-with-recording-channels fixture, shared here


def twilio_channel(name: str, kind: str, url: str, **extra: Any) -> dict[str, Any]:
    table = {"name": name, "kind": kind, "provider": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
             "from": "+15005550006", "api_base": url, "rate_per_s": 10_000, "timeout_s": 0.5}
    table.update(extra)
    return table


class Rig:
    """The service under test with its stand-in providers; `pump` runs workers and timers until a condition."""

    def __init__(self, client: TestClient[Any, Any], clock: FakeClock, fakes: dict[str, FakeTwilio]) -> None:
        self.client, self.clock, self.fakes = client, clock, fakes
        self.workers: list[ChannelWorker] = make_workers(self.services, consumer="rig")

    @property
    def services(self) -> Services:
        return self.client.app[services_key]

    async def seed(self, contacts: list[Any]) -> list[str]:
        res = await self.client.app[registry_key].upsert_contacts(contacts, self.clock.now())
        return [r.id for r in res]

    async def _step(self, worker: ChannelWorker) -> int:
        task = asyncio.ensure_future(worker.step())
        while not task.done():
            # real network I/O to the stand-in, or a retry back-off on the fake clock: move time when asked to
            await asyncio.wait({task}, timeout=0.02)
            if self.clock.sleepers:
                self.clock.advance(0.5)
        return task.result()

    async def pump(self, until: Callable[[], Awaitable[bool]], *, max_rounds: int = 400, tick_s: float = 1.0) -> None:
        """Run every worker and the due timers, advancing the fake clock, until `until()` or fail."""
        for w in self.workers:
            await w.ensure_groups()
        handlers = due_handlers(self.services)
        for _ in range(max_rounds):
            if await until():
                return
            busy = 0
            for w in self.workers:
                busy += await self._step(w)
            busy += await self.services.due.drain(handlers)
            if not busy:
                self.clock.advance(tick_s)
        raise AssertionError("condition not reached")

    async def settled(self, warning_id: str) -> bool:
        """Nothing queued and no retry waiting (escalation timers may still be ahead)."""
        counts = await self.services.deliveries.counts(warning_id)
        timers = await self.services.redis.zrange(keys.DUE_KEY, 0, -1)
        return counts.get("queued", 0) == 0 and not any(t.startswith("retry|") for t in timers)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(aiohttp_client: Any, redis_server: PrivateRedis, redis: Any, clock: FakeClock,
                   tmp_path: Path) -> Any:
    servers: list[TestServer] = []
    all_fakes: list[FakeTwilio] = []

    async def build(*, fakes: tuple[str, ...] = ("primary",), channels: Callable[[dict[str, str]], list[dict[str, Any]]]
                    | None = None, **overrides: Any) -> Rig:
        made = {name: FakeTwilio() for name in fakes}
        all_fakes.extend(made.values())
        urls = {}
        for name, fake in made.items():
            server = TestServer(fake.app)
            await server.start_server()
            servers.append(server)
            urls[name] = str(server.make_url("")).rstrip("/")
        tables = channels(urls) if channels else [twilio_channel("sms", "sms", urls["primary"]),
                                                  twilio_channel("voice", "voice", urls["primary"])]
        settings = make_settings(tmp_path, channels=tables, **overrides)
        app = create_app(settings, deps=Deps(clock=clock, redis_url=redis_server.url, extra={"background": False}))
        client = await aiohttp_client(app)
        return Rig(client, clock, made)

    yield build
    for fake in all_fakes:
        fake.release_hangs()
    for fake_server in servers:
        await fake_server.close()
