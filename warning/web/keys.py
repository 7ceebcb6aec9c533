"""Every web.AppKey of the application, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from contacts.reference import Reference
from contacts.store import RedisRegistry
from warning.bootstrap import Services
from warning.clock import Clock
from warning.settings import Settings, Token
from warning.web.dashboard_live import LiveStreams
from warning.web.dashboard_session import Session, SessionBook
from warning.web.followup_view import ReportRules

if TYPE_CHECKING:
    from warning.web.routing import ApiRoutes


@dataclass
class Deps:
    """What tests (or an embedding program) hand to create_app instead of the defaults."""

    clock: Clock | None = None
    redis_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: extra route tables to mount (tests use it for probe routes)
    routes: list[ApiRoutes] = field(default_factory=list)


settings_key = web.AppKey("settings", Settings)
deps_key = web.AppKey("deps", Deps)
clock_key = web.AppKey[Clock]("clock")
redis_key = web.AppKey("redis", aioredis.Redis)
http_key = web.AppKey("http", aiohttp.ClientSession)
route_tables_key = web.AppKey("route_tables", list["ApiRoutes"])
principal_key = web.RequestKey("principal", Token)
#: the contact registry (people, devices, hazard sites) and the reference data it validates against
registry_key = web.AppKey("registry", RedisRegistry)
reference_key = web.AppKey("reference", Reference)
services_key = web.AppKey("services", Services)
#: the dashboard: session signing, the open live streams, and the signed-in browser of a request
session_book_key = web.AppKey("session_book", SessionBook)
live_streams_key = web.AppKey("live_streams", LiveStreams)
session_key = web.RequestKey("dashboard_session", Session)
#: `[reports] action_keywords`: which field reports the warning page marks as needing action
report_rules_key = web.AppKey("report_rules", ReportRules)
