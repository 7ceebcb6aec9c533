"""Retries survive a crash: a process killed inside the retry handler neither loses the retry nor queues it twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.conftest import auth
from tests.dispatch.conftest import Rig
from tests.fakes.twilio import UNAVAILABLE
from tests.warnings.conftest import VILLAGE_A, person
from warning import keys
from warning.bootstrap import due_handlers
from warning.due import LEASE_S

BLUE = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]}


async def waiting_for_retry(rig: Rig, phone: str) -> tuple[str, str]:
    """Issue a warning whose SMS to `phone` fails (503, and twice more in the worker's quick retries): its delivery
    waits in retry_wait with a timer."""
    rig.fakes["primary"].script(phone, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    resp = await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json=BLUE)
    wid = (await resp.json())["id"]
    store = rig.services.deliveries

    async def retrying() -> bool:
        return any(r.delivery.address == phone and r.delivery.state.value == "retry_wait"
                   for r in await store.rows(wid, await store.ids(wid)))

    await rig.pump(retrying)
    [did] = [r.delivery.id for r in await store.rows(wid, await store.ids(wid)) if r.delivery.address == phone]
    return wid, did


async def die_in_retry(rig: Rig, *, after_acting: bool) -> None:
    """The due loop takes the retry timer and its process dies in the handler (before or after it queued)."""
    handlers = due_handlers(rig.services)
    entered = asyncio.Event()

    async def dies(fields: list[str]) -> None:
        if after_acting:
            await handlers["retry"](fields)
        entered.set()
        await asyncio.Event().wait()

    nxt = await rig.services.due.next_due()
    assert nxt is not None
    rig.clock.advance(nxt)
    task = asyncio.create_task(rig.services.due.drain({**handlers, "retry": dies}))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("after_acting", [False, True])
async def test_a_retry_whose_process_died_in_its_handler_is_queued_and_sent_once(make_rig: Any,
                                                                                 after_acting: bool) -> None:
    first = await make_rig()
    p = person(1, VILLAGE_A)
    await first.seed([p])
    wid, did = await waiting_for_retry(first, p.phone)
    await die_in_retry(first, after_acting=after_acting)
    queue = keys.queue_key("sms", 3)
    assert await first.services.redis.xlen(queue) == (1 if after_acting else 0)
    # the restarted process: its due loop fires the abandoned timer once the lease is over
    second = await make_rig()
    second.clock.advance(LEASE_S)
    assert await second.services.due.drain(due_handlers(second.services)) == 1
    assert await second.services.redis.xlen(queue) == 1  # queued once, however often the timer fired
    await second.pump(lambda: second.settled(wid))
    assert second.fakes["primary"].accepted_count_by_number() == {p.phone: 1}
    assert first.fakes["primary"].accepted() == []
    row = await second.services.deliveries.get(wid, did)
    assert row is not None and row.delivery.state.value == "accepted"
    assert await second.services.redis.zcard(keys.DUE_LEASES) == 0
