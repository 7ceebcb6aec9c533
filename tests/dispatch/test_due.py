"""The due queue leases its timers: a process that dies in a handler loses no timer, a failing handler is tried again a
minute later and given up (logged) after a bound, nothing fires twice while its lease runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from warning import keys
from warning.bootstrap import due_loop
from warning.clock import FakeClock
from warning.due import LEASE_S, MAX_FIRES, RETRY_S, DueQueue, Handler

MEMBER = "esc|w1|1|0"


async def died_in_handler(due: DueQueue, handlers: Mapping[str, Handler], kind: str) -> list[list[str]]:
    """Run a drain whose `kind` handler never returns, and stop it there as a SIGKILL would: nothing after runs."""
    entered: list[list[str]] = []
    stuck = asyncio.Event()

    async def dies(fields: list[str]) -> None:
        entered.append(fields)
        await stuck.wait()

    task = asyncio.create_task(due.drain({**handlers, kind: dies}))
    await asyncio.wait_for(_entered(entered), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return entered


async def _entered(entered: list[list[str]]) -> None:
    while not entered:
        await asyncio.sleep(0)


async def timers(redis: Any) -> tuple[list[str], list[str], dict[str, str]]:
    return (await redis.zrange(keys.DUE_KEY, 0, -1), await redis.zrange(keys.DUE_LEASES, 0, -1),
            await redis.hgetall(keys.DUE_TRIES))


async def test_a_timer_whose_process_died_in_its_handler_fires_again_after_its_lease(redis: Any,
                                                                                      clock: FakeClock) -> None:
    first = DueQueue(redis, clock=clock)
    await first.push(MEMBER, clock.now())
    assert await died_in_handler(first, {}, "esc") == [["w1", "1", "0"]]
    assert (await timers(redis))[:2] == ([], [MEMBER])  # taken, not lost
    # the restarted process: nothing fires while the lease runs, then the timer fires once and is gone
    second = DueQueue(redis, clock=clock)
    fired: list[list[str]] = []

    async def handler(fields: list[str]) -> None:
        fired.append(fields)

    assert await second.next_due() == LEASE_S  # the loop wakes for the lease's end
    clock.advance(LEASE_S - 1)
    assert await second.drain({"esc": handler}) == 0
    clock.advance(1)
    assert await second.drain({"esc": handler}) == 1
    assert fired == [["w1", "1", "0"]]
    assert await timers(redis) == ([], [], {})
    clock.advance(3600)
    assert await second.drain({"esc": handler}) == 0 and await second.next_due() is None


async def test_the_due_loop_cancelled_mid_handler_leaves_the_timer_leased(redis: Any, clock: FakeClock) -> None:
    """The production loop (bootstrap.due_loop) stopped while a handler runs: the timer waits for its lease's end."""
    services = _LoopServices(DueQueue(redis, clock=clock), clock)
    await services.due.push("retry|w1|d1|sms|2", clock.now())
    started = asyncio.Event()

    async def stuck(fields: list[str]) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(due_loop(services, handlers={"retry": stuck}))  # type: ignore[arg-type]
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (await timers(redis))[:2] == ([], ["retry|w1|d1|sms|2"])


class _LoopServices:
    """What due_loop reads of the services."""

    def __init__(self, due: DueQueue, clock: FakeClock) -> None:
        self.due, self.clock = due, clock


async def test_a_failing_handler_fires_again_a_minute_later_and_is_given_up_after_the_bound(
        redis: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    due = DueQueue(redis, clock=clock)
    await due.push(MEMBER, clock.now())
    calls = 0

    async def broken(fields: list[str]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("the store went away")

    with caplog.at_level(logging.WARNING, logger="warning.due"):
        for n in range(1, MAX_FIRES + 1):
            assert await due.drain({"esc": broken}) == 1 and calls == n
            clock.advance(RETRY_S - 1)
            assert await due.drain({"esc": broken}) == 0  # not before the minute is up
            clock.advance(1)
    assert await due.drain({"esc": broken}) == 0 and calls == MAX_FIRES
    assert await timers(redis) == ([], [], {})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"due timer {MEMBER} failed; firing again in 60 s",
                                                f"due timer {MEMBER} given up after {MAX_FIRES} failures"]
    assert all(r.exc_info for r in errors)  # the trace twice, not ten times


async def test_a_timer_that_kills_its_process_every_time_is_given_up(redis: Any, clock: FakeClock,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    due = DueQueue(redis, clock=clock)
    await due.push(MEMBER, clock.now())
    for _ in range(MAX_FIRES):
        assert len(await died_in_handler(due, {}, "esc")) == 1
        clock.advance(LEASE_S)
    ran: list[list[str]] = []

    async def handler(fields: list[str]) -> None:
        ran.append(fields)

    with caplog.at_level(logging.WARNING, logger="warning.due"):
        assert await due.drain({"esc": handler}) == 1
    assert ran == [] and await timers(redis) == ([], [], {})
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"due timer {MEMBER} given up: taken {MAX_FIRES} times, never finished"]


async def test_a_lease_taken_over_by_another_loop_is_not_released_by_the_first(redis: Any, clock: FakeClock) -> None:
    """A slow handler outlives its lease: another loop takes the timer over; the slow one's success or failure
    neither removes nor moves the other's lease."""
    slow, other = DueQueue(redis, clock=clock), DueQueue(redis, clock=clock)
    await slow.push(MEMBER, clock.now())
    [first] = await slow.take()
    clock.advance(LEASE_S)
    [second] = await other.take()
    assert second.reclaimed and second.fires == 2 and not first.reclaimed
    assert not await slow.done(first) and await slow.fail(first)
    assert (await timers(redis))[:2] == ([], [MEMBER])
    assert await other.done(second)
    assert await timers(redis) == ([], [], {})


async def test_arm_sets_a_timer_only_when_none_is_waiting_or_running(redis: Any, clock: FakeClock) -> None:
    due = DueQueue(redis, clock=clock)
    assert await due.pending([MEMBER]) == [False]
    assert await due.arm(MEMBER, clock.now())
    assert not await due.arm(MEMBER, clock.now())
    [lease] = await due.take()
    assert await due.pending([MEMBER]) == [True] and not await due.arm(MEMBER, clock.now())
    await due.done(lease)
    assert await due.pending([MEMBER]) == [False]
