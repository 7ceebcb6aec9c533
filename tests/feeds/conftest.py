"""Feed fixtures: a real local HTTP server whose documents the test changes between polls, CAP and Atom builders,
and the app (recording channels, no background tasks) configured with feeds that point at the server."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from tests.warnings.conftest import TONGCHUAN, World, build_world
from warning.clock import FakeClock
from warning.drafting import CN_TZ
from warning.feeds.poller import FeedPoller
from warning.web.keys import http_key

__all__ = ["TONGCHUAN", "FeedServer", "Reply", "alert", "atom", "poller"]
MET_SENDER = "51072241600000"


@dataclass
class Reply:
    """What the server answers at one path: a body (with an ETag from its content), or a status, or no answer."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml"
    hang: bool = False
    etag: bool = True


@dataclass
class FeedServer:
    """A local HTTP server serving feeds and CAP documents; the test sets what each path answers."""

    base: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, path: str, body: bytes | str = b"", **kw: Any) -> str:
        self.replies[path] = Reply(body.encode() if isinstance(body, str) else body, **kw)
        return self.base + path

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.hits if p == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.path, dict(request.headers)))
        reply = self.replies.get(request.path)
        if reply is None:
            return web.Response(status=404)
        if reply.hang:
            await self.stop.wait()  # never answers while the test runs
        if reply.status != 200:
            return web.Response(status=reply.status, text="error")
        tag = f'"{hashlib.sha256(reply.body).hexdigest()[:16]}"' if reply.etag else None
        if tag and request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.Response(body=reply.body, content_type=reply.content_type,
                            headers={"ETag": tag} if tag else {})


@pytest.fixture
async def feed_server(aiohttp_server: Any) -> Any:
    server = FeedServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    running = await aiohttp_server(app)
    server.base = str(running.make_url("")).rstrip("/")
    yield server
    server.stop.set()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=datetime(2026, 7, 1, 6, 0, tzinfo=CN_TZ))


WorldWithFeeds = Callable[..., Awaitable[World]]


@pytest.fixture
async def feeds_world(aiohttp_client: Any, redis_server: Any, redis: Any, clock: FakeClock, tmp_path: Any
                      ) -> WorldWithFeeds:
    """The app with `[[feeds]]` (and other settings overrides), no background tasks."""

    async def build(feeds: list[dict[str, Any]], **overrides: Any) -> World:
        return await build_world(aiohttp_client, redis_server.url, clock, tmp_path, feeds=feeds, **overrides)

    return build


def poller(world: World, name: str, **kw: Any) -> FeedPoller:
    """The poller of one configured feed, on the app's HTTP session."""
    feeds = world.services.feeds
    assert feeds is not None
    return next(p for p in feeds.pollers(world.client.app[http_key], **kw) if p.config.name == name)


def alert(world: World, identifier: str, *, sender: str = MET_SENDER, msg: str = "Alert", severity: str = "Yellow",
          refs: str = "", area: str | None = TONGCHUAN, event: str = "暴雨", status: str = "Actual",
          polygon: str = "", circle: str = "", sent: datetime | None = None) -> bytes:
    """A CAP 1.2 alert of the county's weather office, sent now (by the app's clock)."""
    now = (sent or world.services.clock.now()).astimezone(CN_TZ).replace(microsecond=0)
    references = f"<references>{refs}</references>" if refs else ""
    geocode = f"<geocode><valueName>GB2260</valueName><value>{area}</value></geocode>" if area else ""
    shapes = (f"<polygon>{polygon}</polygon>" if polygon else "") + (f"<circle>{circle}</circle>" if circle else "")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{sender}</sender><sent>{now.isoformat()}</sent>
  <status>{status}</status><msgType>{msg}</msgType><scope>Public</scope>{references}
  <info><language>zh-CN</language><category>Met</category><event>{event}</event><urgency>Immediate</urgency>
    <severity>{severity}</severity><certainty>Likely</certainty>
    <expires>{(now + timedelta(hours=12)).isoformat()}</expires><senderName>县气象台</senderName>
    <headline>县气象台发布{event}预警</headline>
    <area><areaDesc>潼川镇</areaDesc>{shapes}{geocode}</area>
  </info>
</alert>""".encode()


def ref_of(world: World, identifier: str, sent: datetime | None = None, sender: str = MET_SENDER) -> str:
    """The `references` triple of an alert built by `alert` at `sent` (default: now)."""
    now = (sent or world.services.clock.now()).astimezone(CN_TZ).replace(microsecond=0)
    return f"{sender},{identifier},{now.isoformat()}"


def atom(entries: list[tuple[str, str]], *, title: str = "县气象台预警") -> bytes:
    """An Atom index: (entry id, link to the CAP document) for each entry."""
    items = "".join(f"""
  <entry><id>{eid}</id><title>{eid}</title><updated>2026-07-01T06:00:00+08:00</updated>
    <link rel="alternate" type="application/cap+xml" href="{link}"/></entry>""" for eid, link in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:feed:test</id><title>{title}</title>
<updated>2026-07-01T06:00:00+08:00</updated>{items}
</feed>""".encode()
