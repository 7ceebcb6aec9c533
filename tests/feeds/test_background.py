"""Feeds as background tasks on the injected clock: a broken feed never stops the others or the service, and a
silent feed is an alarm on the dashboard and a WARNING in the log, once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.dashboard.conftest import login
from tests.feeds.conftest import FeedServer, WorldWithFeeds, alert, atom, poller
from tests.feeds.test_cap_poll import health, met, warnings_of
from tests.warnings.conftest import VILLAGE_A, person
from warning.clock import FakeClock
from warning.feeds.config import FeedConfig
from warning.feeds.poller import FeedPoller
from warning.feeds.service import start_feeds
from warning.web.keys import http_key


async def until(check: Callable[[], Any], clock: FakeClock, *, step_s: float = 30, deadline_s: float = 20) -> None:
    """Move the fake clock a step at a time until `check()` holds (awaited), within a real deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await check():
        assert loop.time() < end, "condition not reached in time"
        clock.advance(step_s)
        await asyncio.sleep(0.02)


async def test_a_broken_feed_never_stops_the_others_or_the_service(
        feeds_world: WorldWithFeeds, feed_server: FeedServer, clock: FakeClock, caplog: pytest.LogCaptureFixture,
        tmp_path: Any) -> None:
    s = feed_server
    world = await feeds_world([
        met(s), {"name": "down", "kind": "atom", "url": s.base + "/down.atom", "interval_s": 30},
        {"name": "mute", "kind": "cap", "url": s.base + "/mute.xml", "interval_s": 30, "timeout_s": 0.2},
        {"name": "gone", "kind": "observations", "url": (tmp_path / "missing.json").as_uri(), "interval_s": 30},
    ])
    await world.seed([person(1, VILLAGE_A)])
    s.set("/down.atom", status=500)
    s.set("/mute.xml", hang=True)
    s.set("/met.atom", atom([]))
    feeds = world.services.feeds
    assert feeds is not None
    http = world.client.app[http_key]

    async def boom(body: bytes) -> None:
        raise RuntimeError("a bug in one feed's handling")

    # a feed whose handling has a bug (the handler is the poller's injected collaborator)
    crash = FeedPoller(FeedConfig(name="bug", kind="cap", url=s.base + "/met.atom", interval_s=30), handler=boom,
                       health=feeds.health, http=http, clock=clock, owner="crash")
    caplog.set_level(logging.INFO)
    tasks = [*start_feeds(feeds, http), asyncio.create_task(crash.run())]
    try:
        await until(lambda: _failed(world, "down", "mute", "gone"), clock)
        # meanwhile the good feed publishes an alert: it is taken, whatever the others do
        s.set("/a1.xml", alert(world, "A1"))
        s.set("/met.atom", atom([("A1", "/a1.xml")]))

        async def issued() -> bool:
            return bool(await warnings_of(world, "met"))

        await until(issued, clock)
        assert not any(t.done() for t in tasks)
        assert (await world.client.get("/healthz")).status == 200
        # the buggy feed is logged with its traceback and polled again after a backoff, round after round
        bugs = [r for r in caplog.records if r.exc_text and "a bug in one feed's handling" in r.exc_text]
        assert len(bugs) >= 2 and crash.failures == len(bugs)
    finally:
        for t in tasks:
            t.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
    # every poller stops when asked (cancelled, or returning as it sees the request), none with an error
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in ended)


async def _failed(world: Any, *names: str) -> bool:
    for name in names:
        if (await health(world, name))["failures"] < 1:
            return False
    return True


async def test_a_silent_feed_is_an_alarm_and_a_warning_once(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                            clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    s = feed_server
    world = await feeds_world([met(s, stale_after_s=600)])
    p = poller(world, "met")
    s.set("/met.atom", atom([]))
    assert await p.cycle() == 60.0
    s.set("/met.atom", status=500)
    caplog.set_level(logging.INFO)
    clock.advance(590)
    # the wait after a failure is cut short so the alarm is raised when the silence passes stale_after_s
    assert await p.cycle() <= 11.0
    assert (await health(world, "met"))["stale"] is False
    clock.advance(11)
    await p.cycle()
    clock.advance(120)
    await p.cycle()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "silent for" in r.getMessage()]
    assert len(warnings) == 1 and "met" in warnings[0].getMessage()
    h = await health(world, "met")
    assert h["stale"] is True and h["last_heard"] is not None
    await login(world.client, "viewer")
    page = await (await world.client.get("/dashboard")).text()
    assert 'class="alarm" data-feed="met"' in page and "信息源已中断" in page
    metrics = await (await world.client.get("/metrics")).text()
    assert 'ew_feed_stale{feed="met"} 1.0' in metrics
    # heard again: the alarm is lifted (said once, at INFO)
    s.set("/met.atom", atom([]))
    await p.cycle()
    assert (await health(world, "met"))["stale"] is False
    assert any("heard again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    page = await (await world.client.get("/dashboard")).text()
    assert 'class="alarm"' not in page and 'data-feed="met"' in page
    assert 'ew_feed_stale{feed="met"} 0.0' in await (await world.client.get("/metrics")).text()
