"""A storm of 10,000 shuffled and duplicated callbacks, with replies among them: coverage stays exact."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.receipts.conftest import BLUE, coverage, issue, rows
from tests.warnings.conftest import VILLAGE_A, person
from warning.channel import ReceiptEvent
from warning.delivery import DeliveryState

S = DeliveryState
N = 2000
STATES = {"queued": S.ACCEPTED, "sent": S.SENT, "delivered": S.DELIVERED, "undelivered": S.UNDELIVERED}


async def test_storm_of_callbacks_leaves_exact_figures(make_rig: Any) -> None:
    rig = await make_rig()
    people = [person(i, VILLAGE_A) for i in range(N)]
    await rig.seed(people)
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    by_phone = {r.delivery.address: r for r in await rows(rig, w["id"])}
    events: list[ReceiptEvent | tuple[str, str]] = []
    undelivered, acked = set(), set()
    for i, rec in enumerate(rig.fakes["primary"].accepted()):
        fate = "undelivered" if i % 4 == 0 else "delivered"
        for status in ("queued", "sent", fate, fate, "sent"):
            events.append(ReceiptEvent(channel="sms", provider_ref=rec.sid, delivery_id=by_phone[rec.to].delivery.id,
                                       state=STATES[status], at=None, error_code=None, raw_status=status))
        if fate == "undelivered":
            undelivered.add(rec.to)
        elif i % 4 == 1:
            acked.add(rec.to)
            events.append(("ack", by_phone[rec.to].delivery.recipient_id))
    assert len(events) >= 10_000
    random.Random(7).shuffle(events)
    record = await rig.services.lifecycle.get(w["id"])
    rig.clock.advance(200)

    async def one(item: ReceiptEvent | tuple[str, str]) -> None:
        if isinstance(item, ReceiptEvent):
            await rig.services.receipts.submit(item)
        else:
            await rig.services.ledger.acknowledge(record, item[1], via="sms")

    for start in range(0, len(events), 1000):  # a thousand callbacks in flight at a time
        await asyncio.gather(*(one(e) for e in events[start:start + 1000]))
    cov = await coverage(rig, w["id"])
    sms = cov["by_channel"]["sms"]
    assert (sms["sent"], sms["delivered"], sms["failed"]) == (N, N - len(undelivered), len(undelivered))
    assert (cov["acked"], cov["acked_5m"], cov["acked_15m"]) == (len(acked), len(acked), len(acked))
    assert cov["by_region"][VILLAGE_A]["acked"] == len(acked)
    states = {r.delivery.address: r.delivery.state.value for r in await rows(rig, w["id"]) if r.delivery.kind == "sms"}
    assert {p for p, s in states.items() if s == "undelivered"} == undelivered
    assert {p for p, s in states.items() if s == "acknowledged"} == acked
    # every undelivered SMS became exactly one call
    voice = [r for r in await rows(rig, w["id"]) if r.delivery.kind == "voice"]
    assert sorted(r.delivery.address for r in voice) == sorted(undelivered)
