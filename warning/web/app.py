"""The composition root of the web process: create_app builds the aiohttp application."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from warning.bootstrap import Services, build_services, due_loop, make_workers, simulator_pumps
from warning.clock import SystemClock
from warning.feeds.service import start_feeds
from warning.housekeeping import build_scheduler
from warning.logs import register_secret
from warning.redis_server import PrivateRedis
from warning.settings import Settings
from warning.web import (
    approvals,
    checks_api,
    contacts_api,
    dashboard,
    delivery_api,
    evaluation_api,
    feeds_api,
    followup_api,
    hooks,
    review_api,
    system,
    warning_page,
    warnings_api,
    workbench,
)
from warning.web.desk import wiring as desk
from warning.web.keys import (
    Deps,
    clock_key,
    deps_key,
    http_key,
    redis_key,
    route_tables_key,
    settings_key,
)
from warning.web.routing import ApiRoutes

logger = logging.getLogger(__name__)

#: Feature modules, each with `setup(app)`: adds its routes (ApiRoutes) and its cleanup contexts.
FEATURES: list[Callable[[web.Application], None]] = [
    system.setup,
    contacts_api.setup,
    warnings_api.setup,
    review_api.setup,
    delivery_api.setup,
    hooks.setup,
    followup_api.setup,
    dashboard.setup,
    feeds_api.setup,
    warning_page.setup,
    workbench.setup,
    approvals.setup,
    desk.setup,
    evaluation_api.setup,
    checks_api.setup,
]


def app_version() -> str:
    try:
        return version("warning-dissemination")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect to the configured Redis, or start a private one under data_dir."""
    settings, deps = app[settings_key], app[deps_key]
    url = deps.redis_url or settings.redis.url
    private: PrivateRedis | None = None
    if not url:
        private = PrivateRedis(settings.redis.data_dir)  # FolderBusy when another process owns the folder
        url = private.start()
        print(f"存储 store: private Redis ({private.binary_source}) {url}, data in {private.data_dir}",
              file=sys.stderr, flush=True)
    client = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
    app[redis_key] = client
    try:
        yield
    finally:
        await client.aclose()
        if private is not None:
            private.stop()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """One shared outbound HTTP session; channels borrow it."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15, connect=5),
                                    connector=aiohttp.TCPConnector(limit=200))
    app[http_key] = session
    try:
        yield
    finally:
        await session.close()


def create_app(settings: Settings, *, deps: Deps | None = None) -> web.Application:
    """Build the application; every resource opens in a cleanup context, none at import."""
    from warning.web.middlewares import error_middleware, request_id_middleware

    app = web.Application(middlewares=[request_id_middleware, error_middleware],
                          client_max_size=settings.server.max_body_bytes)
    deps = deps or Deps()
    app[settings_key] = settings
    app[deps_key] = deps
    app[clock_key] = deps.clock or SystemClock()
    app[route_tables_key] = []
    for token in settings.tokens:
        register_secret(token.token)
    register_secret(str(settings.section("hooks").get("kannel_secret", "") or ""))
    app.cleanup_ctx.extend([redis_ctx, http_ctx])
    for feature in FEATURES:
        feature(app)
    for table in deps.routes:
        add_routes(app, table)
    return app


def build_app_services(app: web.Application) -> Services:
    """The core services on the app's Redis and registry; tests may hand in channels (Deps.extra["channels"])."""
    from warning.web.keys import reference_key, registry_key

    deps = app[deps_key]
    names = {r.code: r.name for r in app[reference_key].regions}  # the tree the registry feature already read
    return build_services(app[settings_key], redis=app[redis_key], clock=app[clock_key], directory=app[registry_key],
                          channels=deps.extra.get("channels"), http=app[http_key], names=names)


async def start_background(app: web.Application, services: Services) -> list[asyncio.Task[None]]:
    """Workers, the due-timer loop and housekeeping, unless Deps.extra["background"] is False (tests drive them)."""
    if app[deps_key].extra.get("background", True) is False:
        return []
    tasks = []
    lanes = max(1, int(services.settings.section("dispatch").get("lanes", 2)))
    for worker in make_workers(services):
        await worker.ensure_groups()
        tasks += [asyncio.create_task(worker.run(), name=f"worker:{worker.channel.name}:{i}") for i in range(lanes)]
    tasks.append(asyncio.create_task(due_loop(services), name="due"))
    tasks += [asyncio.create_task(pump, name="simulator") for pump in simulator_pumps(services)]
    tasks += start_feeds(services.feeds, app[http_key])
    scheduler = build_scheduler(services)
    scheduler.start()
    app.on_cleanup.append(lambda _app: _stop_scheduler(scheduler))
    return tasks


async def _stop_scheduler(scheduler: Any) -> None:
    scheduler.shutdown(wait=False)


def add_routes(app: web.Application, routes: ApiRoutes) -> None:
    """Register a feature's route table (and so its documentation)."""
    app.router.add_routes(routes.table)
    app[route_tables_key].append(routes)
