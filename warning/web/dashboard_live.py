"""The dashboard's data: coverage grouped for display, and the live coverage stream (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from contacts.reference import Reference
from warning.clock import Clock
from warning.delivery_store import events_key

logger = logging.getLogger(__name__)
CHANNEL_LABELS = {"sms": ("短信", "SMS"), "voice": ("语音", "voice"), "escreen": ("电子屏", "e-screen"),
                  "broadcast": ("广播", "broadcast")}
#: XREAD BLOCK: how long one read waits before checking whether the client or the app has gone
BLOCK_MS = 1000
#: at most this many coverage messages a second on one stream
MAX_PER_S = 4.0
#: a comment line this often keeps proxies from closing an idle stream
KEEPALIVE_S = 15.0


def grouped(doc: Mapping[str, Any], reference: Reference | None, lang: str = "zh") -> dict[str, Any]:
    """Coverage rows for the page: townships with their villages, roles and channels, each with labels."""
    tree = reference.regions if reference is not None else None
    by_region: Mapping[str, Mapping[str, int]] = doc.get("by_region", {})
    townships: dict[str, dict[str, Any]] = {}
    county: list[dict[str, Any]] = []
    for code, figures in sorted(by_region.items()):
        name = (tree.name(code) if tree is not None else None) or ""
        row = {"code": code, "name": name, "f": figures}
        if len(code) == 9:
            townships.setdefault(code, {"villages": []}).update(row)
        elif len(code) == 12:
            townships.setdefault(code[:9], {"code": code[:9], "name": "", "f": {}, "villages": []})["villages"].append(row)
        else:
            county.append(row)
    roles = [{"key": key, "zh": reference.roles.label(key, "zh") if reference else key,
              "en": reference.roles.label(key, "en") if reference else key, "f": figures}
             for key, figures in doc.get("by_role", {}).items()]
    channels = [{"key": key, "zh": CHANNEL_LABELS.get(key, (key, key))[0], "en": CHANNEL_LABELS.get(key, (key, key))[1],
                 "f": figures} for key, figures in doc.get("by_channel", {}).items()]
    return {"townships": list(townships.values()), "county": county, "roles": roles, "channels": channels}


def percent(part: int, whole: int) -> int:
    """A bar's width: part of whole in whole percent, 0–100."""
    return 0 if whole <= 0 else max(0, min(100, round(100 * part / whole)))


class LiveStreams:
    """The open event streams of the app, so shutdown can end them."""

    def __init__(self) -> None:
        self.open: set[web.StreamResponse] = set()
        self.closing = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, response: web.StreamResponse) -> None:
        self.open.add(response)
        self._empty.clear()

    def discard(self, response: web.StreamResponse) -> None:
        self.open.discard(response)
        if not self.open:
            self._empty.set()

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait until no stream is open; False when some still are after timeout_s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), timeout=timeout_s)
        return not self.open

    async def close_all(self, app: web.Application) -> None:
        """on_shutdown: tell every stream to end, and wait (briefly) until they have."""
        self.closing.set()
        await self.wait_closed(BLOCK_MS / 1000 + 2)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _send(response: web.StreamResponse, event: str, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {text}\n\n".encode())


async def coverage_stream(request: web.Request, warning_id: str, build: Callable[[], Awaitable[dict[str, Any]]], *,
                          redis: Any, clock: Clock, streams: LiveStreams) -> web.StreamResponse:
    """Send a "coverage" message now and whenever the warning's delivery events move, until the client goes.

    :param build: computes the current coverage document (from counters, so cheap)
    """
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    streams.add(response)
    key = events_key(warning_id)
    try:
        latest = await redis.xrevrange(key, count=1)
        last_id = latest[0][0] if latest else "0-0"
        await response.write(b"retry: 3000\n\n")
        await _send(response, "coverage", await build())
        sent_at = quiet_since = clock.monotonic()
        while not streams.closing.is_set() and not _gone(request):
            found = await redis.xread({key: last_id}, block=BLOCK_MS, count=1000)
            if found:
                last_id = found[0][1][-1][0]
                wait_s = 1 / MAX_PER_S - (clock.monotonic() - sent_at)
                if wait_s > 0:  # coalesce a burst: whatever arrives meanwhile is in the next document
                    await clock.sleep(wait_s)
                await _send(response, "coverage", await build())
                sent_at = quiet_since = clock.monotonic()
            elif clock.monotonic() - quiet_since >= KEEPALIVE_S:
                await response.write(b": keepalive\n\n")
                quiet_since = clock.monotonic()
        if streams.closing.is_set() and not _gone(request):
            await _send(response, "bye", {"reason": "shutdown"})
    except (ConnectionResetError, ConnectionError):
        logger.debug("event stream of %s: client went away", warning_id)
    finally:
        streams.discard(response)
    return response
