"""The feeds as one service: their configuration, health, gauges and proposals, and the background pollers that
`warning serve` runs (one task per feed), started and stopped with the rest of the background work."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from contacts.model import HazardSite
from warning.audit import AuditLog
from warning.clock import Clock
from warning.feeds.area import Box
from warning.feeds.cap_feed import CapFeed
from warning.feeds.config import FeedConfig, load_feed_configs
from warning.feeds.gauge import GaugeFeed, GaugeStore, Proposals
from warning.feeds.health import FeedHealth, FeedMetrics, FeedStatus
from warning.feeds.poller import FeedPoller, Handler
from warning.lifecycle import WarningService
from warning.logs import register_secret
from warning.reference import EventType
from warning.settings import Settings
from warning.warning_store import WarningStore

if TYPE_CHECKING:
    from warning.bootstrap import Services

#: how long the registry's extent (for alerts given only as polygons or circles) is reused before it is read again
EXTENT_REFRESH_S = 600.0


class FeedRegistry(Protocol):
    """What the feeds need of the registry: sites by gauge station, one site, the extent of located records."""

    async def sites_of_station(self, station: str) -> list[HazardSite]: ...

    async def site(self, sid: str) -> HazardSite | None: ...

    async def extent(self) -> Box | None: ...


@dataclass
class FeedService:
    """Everything about polled feeds the web app, the metrics and the background tasks share."""

    configs: tuple[FeedConfig, ...]
    redis: aioredis.Redis
    clock: Clock
    registry: FeedRegistry
    lifecycle: WarningService
    warnings: WarningStore
    audit: AuditLog
    event_types: Mapping[str, EventType]
    county: str
    metrics_registry: CollectorRegistry
    health: FeedHealth = field(init=False)
    gauges: GaugeStore = field(init=False)
    proposals: Proposals = field(init=False)
    metrics: FeedMetrics = field(init=False)
    _extent: tuple[float, Box | None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.metrics = FeedMetrics(self.metrics_registry)
        self.health = FeedHealth(self.redis, clock=self.clock, metrics=self.metrics)
        self.gauges = GaugeStore(self.redis)
        self.proposals = Proposals(store=self.gauges, registry=self.registry, lifecycle=self.lifecycle,
                                   audit=self.audit, clock=self.clock)
        for config in self.configs:
            for value in config.headers.values():
                register_secret(value)  # a header value (a token) never reaches a log line

    def config(self, name: str) -> FeedConfig | None:
        return next((c for c in self.configs if c.name == name), None)

    async def extent(self) -> Box | None:
        """The registry's extent, read again at most every EXTENT_REFRESH_S."""
        now = self.clock.monotonic()
        if self._extent is None or now - self._extent[0] > EXTENT_REFRESH_S:
            self._extent = (now, await self.registry.extent())
        return self._extent[1]

    async def statuses(self) -> list[FeedStatus]:
        out = [await self.health.status(c) for c in self.configs]
        self.metrics.refresh(out)
        return out

    async def panel(self) -> dict[str, Any]:
        """What the dashboard's home page shows: every feed's health (a silent one is an alarm) and the
        cancellations gauges propose."""
        return {"feeds": [s.to_json() for s in await self.statuses()],
                "proposals": [p.to_json() for p in await self.proposals.list()]}

    def poller(self, config: FeedConfig, http: aiohttp.ClientSession, owner: str) -> FeedPoller:
        """The poller of one feed, with what takes a fetched document of its kind."""
        types = dict(self.event_types)
        handler: Handler
        recheck: Callable[[], Awaitable[Any]] | None = None
        if config.kind == "observations":
            gauge = GaugeFeed(config, store=self.gauges, registry=self.registry, lifecycle=self.lifecycle,
                              warnings=self.warnings, audit=self.audit, health=self.health, event_types=types,
                              clock=self.clock)
            handler, recheck = gauge.handle, gauge.recheck
        else:
            handler = CapFeed(config, http=http, lifecycle=self.lifecycle, warnings=self.warnings, health=self.health,
                              event_types=types, county=self.county, extent=self.extent).handle
        return FeedPoller(config, handler=handler, recheck=recheck, health=self.health, http=http, clock=self.clock,
                          owner=owner)

    def pollers(self, http: aiohttp.ClientSession, *, owner: str | None = None) -> list[FeedPoller]:
        owner = owner or f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        return [self.poller(c, http, owner) for c in self.configs]


def start_feeds(feeds: FeedService | None, http: aiohttp.ClientSession) -> list[asyncio.Task[Any]]:
    """The pollers as background tasks, one per feed (the caller cancels them with the rest at shutdown)."""
    if feeds is None:
        return []
    return [asyncio.create_task(p.run(), name=f"feed:{p.config.name}") for p in feeds.pollers(http)]


def build_feed_service(settings: Settings, services: Services) -> FeedService:
    """The feeds of `[[feeds]]` on the core services; ConfigError (file, key, reason) for a bad entry."""
    configs = load_feed_configs(settings.raw.get("feeds", []), settings.sources[-1],
                                event_types=services.event_types)
    county = str(settings.section("issuer").get("code", ""))[:6]
    return FeedService(configs=configs, redis=services.redis, clock=services.clock, registry=services.directory,
                       lifecycle=services.lifecycle, warnings=services.warnings, audit=services.audit,
                       event_types=services.event_types, county=county, metrics_registry=services.metrics.registry)
