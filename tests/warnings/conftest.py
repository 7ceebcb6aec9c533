"""Fixtures for the warning core: an app with recording channels, no background tasks, seeded contacts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contacts.model import Contact, Location
from tests.conftest import make_settings
from tests.fakes.channels import RecordingChannel
from warning.bootstrap import Services
from warning.redis_server import PrivateRedis
from warning.web.app import create_app
from warning.web.keys import Deps, registry_key, services_key

#: townships and villages of the demo county
TONGCHUAN, LUXI = "510722101", "510722137"  # 潼川镇, 芦溪镇 of the demo tree
VILLAGE_A, VILLAGE_B = "510722101001", "510722137202"  # 东街社区 (潼川镇), 白鹤村 (芦溪镇)
OUTSIDE = "510723100001"  # a village of the neighbouring county


def person(i: int, region: str, role: str = "village_monitor", *, loc: tuple[float, float] | None = None,
           phone_kind: str = "mobile") -> Contact:
    phone = f"+86138{i:08d}" if phone_kind == "mobile" else f"+8681{i:08d}"[:14]
    return Contact(id="", name=f"联系人{i}", phone=phone, phone_kind=phone_kind, role=role, region=region,
                   location=Location(*loc) if loc else None,
                   channels=("sms", "voice") if phone_kind == "mobile" else ("voice",))


class World:
    """The app under test, its services and its recording channels."""

    def __init__(self, client: TestClient[Any, Any], channels: dict[str, RecordingChannel]) -> None:
        self.client = client
        self.channels = channels

    @property
    def services(self) -> Services:
        return self.client.app[services_key]

    async def seed(self, contacts: Sequence[Contact]) -> list[str]:
        registry = self.client.app[registry_key]
        res = await registry.upsert_contacts(list(contacts), self.services.clock.now())
        return [r.id for r in res]

    async def deliveries(self, warning_id: str) -> list[Any]:
        store = self.services.deliveries
        return await store.rows(warning_id, await store.ids(warning_id))

    async def drain(self, rounds: int = 50) -> int:
        """Run every worker until no queue has work."""
        from warning.bootstrap import make_workers

        workers = self.services.workers or make_workers(self.services, consumer="test")
        total = 0
        for w in workers:
            await w.ensure_groups()
        for _ in range(rounds):
            n = 0
            for w in workers:
                n += await w.step()
            total += n
            if n == 0:
                break
        return total


WorldFactory = Callable[..., Awaitable[World]]


async def build_world(aiohttp_client: Any, redis_url: str, clock: Any, tmp_path: Path, **overrides: Any) -> World:
    """The app with recording channels and no background tasks; overrides go to the settings."""
    channels = {"sms": RecordingChannel("sms", "sms"), "voice": RecordingChannel("voice", "voice", max_batch=1),
                "escreen": RecordingChannel("escreen", "escreen"), "broadcast": RecordingChannel("broadcast", "broadcast")}
    settings = make_settings(tmp_path, **overrides)
    app = create_app(settings, deps=Deps(clock=clock, redis_url=redis_url,
                                         extra={"channels": channels, "background": False}))
    client = await aiohttp_client(app)
    return World(client, channels)


@pytest.fixture
async def world(aiohttp_client: Any, redis_server: PrivateRedis, redis: Any, clock: Any, tmp_path: Path) -> World:
    return await build_world(aiohttp_client, redis_server.url, clock, tmp_path)


@pytest.fixture
async def make_world(aiohttp_client: Any, redis_server: PrivateRedis, redis: Any, clock: Any, tmp_path: Path
                     ) -> WorldFactory:
    """Build the world with settings overrides (`make_world(policy={...}, feeds=[...])`)."""

    async def build(**overrides: Any) -> World:
        return await build_world(aiohttp_client, redis_server.url, clock, tmp_path, **overrides)

    return build
