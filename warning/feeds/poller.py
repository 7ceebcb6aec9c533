"""One feed's polling loop: fetch (conditionally), hand the document to the feed's kind, record health, then wait
the interval, or a jittered backoff after a failure; a silent feed raises the alarm once. A failure of any kind is
caught here: one broken feed never stops another, nor the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from warning.clock import Clock
from warning.feeds.config import FeedConfig
from warning.feeds.fetch import FetchError, fetch
from warning.feeds.health import FeedHealth
from warning.feeds.index import FeedDocumentError

logger = logging.getLogger(__name__)
#: the longest wait between attempts of a failing feed (a feed polled less often waits its interval)
MAX_BACKOFF_S = 900.0
#: how much longer than a round a poll lease is held
LEASE_MARGIN_S = 30.0

Handler = Callable[[bytes], Awaitable[Any]]


def backoff_s(interval_s: float, failures: int, rnd: random.Random) -> float:
    """The wait after `failures` failed polls in a row: doubling from the interval up to MAX_BACKOFF_S, each wait
    drawn between half and all of it ("equal jitter"), never below the interval."""
    ceiling = max(interval_s, min(MAX_BACKOFF_S, interval_s * 2.0 ** min(failures, 30)))
    return max(interval_s, ceiling / 2 + rnd.random() * ceiling / 2)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class FeedPoller:
    """Polls one feed until cancelled."""

    def __init__(self, config: FeedConfig, *, handler: Handler, health: FeedHealth, http: aiohttp.ClientSession,
                 clock: Clock, owner: str, rnd: random.Random | None = None,
                 recheck: Callable[[], Awaitable[Any]] | None = None) -> None:
        """:param recheck: run when the document has not changed (a gauge feed judges its open sites again: a
            reading that stays below for long enough proposes a cancellation without a new document)."""
        self.config, self.handler, self.health, self.http = config, handler, health, http
        self.recheck = recheck
        self.clock, self.owner = clock, owner
        self.rnd = rnd or random.Random()
        self.failures = 0
        self._last_reason = ""

    async def run(self) -> None:
        """Poll, wait, poll again: the feed's background task."""
        await self.health.started(self.config.name)
        while not _cancelling():
            try:
                delay = await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("feed %s: poll failed; trying again later", self.config.name)
                self.failures += 1
                with contextlib.suppress(Exception):  # the store may be what failed
                    self.failures = await self.health.failure(self.config.name, "error",
                                                              f"内部错误 internal error ({type(exc).__name__})")
                delay = backoff_s(self.config.interval_s, self.failures, self.rnd)
            if not _cancelling():
                await self.clock.sleep(delay)

    async def cycle(self) -> float:
        """One round: poll when this process holds the feed, check for silence; the seconds to wait."""
        interval = self.config.interval_s
        # held past the next poll's time (and a slow poll's requests), so no other process starts while this one
        # is still at work; this process takes it again each round
        if await self.health.lease(self.config.name, self.owner, interval + self.config.timeout_s + LEASE_MARGIN_S):
            ok = await self.poll()
            delay = interval if ok else backoff_s(interval, self.failures, self.rnd)
        else:
            delay = interval  # another process polls it now
        until_stale = await self.check_silence()
        # wake when the feed would turn silent, so the alarm is never late by a long backoff
        return min(delay, until_stale + 1.0) if until_stale is not None and until_stale >= 0 else delay

    async def poll(self) -> bool:
        """Fetch and hand over the document; whether it worked."""
        name, cfg = self.config.name, self.config
        state = await self.health.state(name)
        try:
            fetched = await fetch(self.http, cfg.url, headers=cfg.headers, etag=state.get("etag") or None,
                                  last_modified=state.get("last_modified") or None, timeout_s=cfg.timeout_s,
                                  max_bytes=cfg.max_bytes)
            heard = cfg.kind != "observations"  # a gauge feed is heard when new readings come
            if fetched.not_modified:
                if self.recheck is not None:
                    await self.recheck()
                await self.health.success(name, "not_modified", etag=fetched.etag,
                                          last_modified=fetched.last_modified, heard=heard)
            else:
                await self.handler(fetched.body)
                await self.health.success(name, "ok", etag=fetched.etag, last_modified=fetched.last_modified,
                                          heard=heard)
        except (FetchError, FeedDocumentError) as exc:
            self.failures = await self.health.failure(name, exc.reason, exc.detail)
            if exc.reason != self._last_reason:  # said once when it changes, not on every retry
                logger.warning("feed %s: %s (%s failure(s) in a row)", name, exc.detail, self.failures)
            self._last_reason = exc.reason
            return False
        if self.failures:
            logger.info("feed %s: polled again after %d failure(s)", name, self.failures)
        self.failures, self._last_reason = 0, ""
        return True

    async def check_silence(self) -> float | None:
        """Raise (or lift) the alarm of a silent feed; the seconds until it turns silent (None: already is)."""
        status = await self.health.status(self.config)
        silent = status.silent_s
        if silent is None:
            return None
        if await self.health.set_stale(self.config.name, status.stale):
            if status.stale:
                logger.warning("feed %s: silent for %.0f s (more than stale_after_s %g): 信息源已中断", self.config.name,
                               silent, self.config.stale_after_s)
            else:
                logger.info("feed %s: heard again", self.config.name)
        return None if status.stale else self.config.stale_after_s - silent
