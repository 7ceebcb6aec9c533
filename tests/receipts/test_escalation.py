"""Escalation (叫应) with an injected clock: calls, supervisors, duty officers; acks and cancel stop it; a restart
neither loses nor repeats a step; drills stay inside the drill."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import pytest

from tests.conftest import auth
from tests.fakes.twilio import inbound_sms_params
from tests.receipts.conftest import BASE, BLUE, Rig, coverage, issue, post_signed, rows, settled_sends
from tests.warnings.conftest import OUTSIDE, TONGCHUAN, VILLAGE_A, person
from warning import keys
from warning.bootstrap import due_handlers
from warning.due import LEASE_S

RED = {**BLUE, "level": "red", "headline": "潼川镇暴雨红色预警"}
ROSTER = ("region,date,start,end,phone,name\r\n"
          f"{TONGCHUAN},2026-07-01,08:00,20:00,+8613900000001,王值班\r\n"
          "510722,2026-07-01,00:00,00:00,+8613900000002,县值班\r\n")


async def red_world(rig: Rig, *, exercise: bool = False) -> tuple[dict[str, Any], list[Any], Any]:
    sup = replace(person(90, OUTSIDE, "cadre"), name="李主任")
    [sup_id] = await rig.seed([sup])
    people = [replace(person(1, VILLAGE_A, "grid_informant"), supervisor=sup_id, name="张一"),
              replace(person(2, VILLAGE_A, "grid_informant"), name="张二"),
              replace(person(3, VILLAGE_A, "grid_informant"), name="张三")]
    await rig.seed(people)
    resp = await rig.client.post("/api/v1/duty", data=ROSTER.encode(), headers={**auth("issuer"),
                                                                              "Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    w = await issue(rig, {**RED, **({"status": "Exercise"} if exercise else {})}, approve=True)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    return w, people, sup


async def at(rig: Rig, seconds: float, wid: str) -> None:
    """Move the clock to `seconds` after the start, fire due timers, send what they planned."""
    rig.clock.advance(seconds - rig.clock_offset)  # type: ignore[attr-defined]
    rig.clock_offset = seconds  # type: ignore[attr-defined]
    await rig.services.due.drain(due_handlers(rig.services))
    await rig.pump(lambda: settled_sends(rig, wid))


async def reply(rig: Rig, phone: str, text: str) -> None:
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/sms", inbound_sms_params(phone, text))
    assert resp.status == 200


def sms_to(rig: Rig, phone: str) -> list[str]:
    return [r.form["Body"] for r in rig.fakes["primary"].accepted() if r.to == phone]


async def test_the_chain_calls_then_tells_supervisor_or_duty_officer_then_county(make_rig: Any) -> None:
    rig = await make_rig()
    rig.clock_offset = 0  # type: ignore[attr-defined]
    w, people, sup = await red_world(rig)
    fake = rig.fakes["primary"]
    await reply(rig, people[2].phone, "收到")  # 张三 confirms at once
    await at(rig, 299, w["id"])
    assert fake.accepted("Calls") == []
    await at(rig, 300, w["id"])
    assert fake.accepted_count_by_number("Calls") == {people[0].phone: 1, people[1].phone: 1}
    await at(rig, 360, w["id"])
    await reply(rig, people[0].phone, "1")  # 张一 confirms after the call, 6 minutes in
    await at(rig, 600, w["id"])
    assert sms_to(rig, sup.phone) == []  # 张一, 李主任's only person, has confirmed
    [duty] = sms_to(rig, "+8613900000001")
    assert "张二" in duty and "张一" not in duty and "1人尚未确认" in duty
    await at(rig, 1200, w["id"])
    [county] = sms_to(rig, "+8613900000002")
    assert "尚有1人未确认" in county and "潼川镇" in county  # the township by name, from the region tree
    # nothing fires twice, nothing is left
    await at(rig, 5000, w["id"])
    assert len(fake.accepted("Calls")) == 2 and len(sms_to(rig, "+8613900000001")) == 1
    assert await rig.services.redis.zcard("ew:due") == 0
    cov = await coverage(rig, w["id"])
    assert cov["targeted"] == 3 and cov["acked"] == 2 and cov["acked_5m"] == 1 and cov["acked_15m"] == 2
    assert cov["by_channel"]["sms"]["sent"] == 3 and cov["by_channel"]["voice"]["sent"] == 2  # notices apart
    audit = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/audit", headers=auth("viewer"))).json()
    steps = [e["detail"]["step_action"] for e in audit["items"] if e["action"] == "escalate"]
    assert steps == ["call", "notify_supervisor", "notify_county_duty"]


async def test_a_supervisor_gets_the_list_of_their_people(make_rig: Any) -> None:
    rig = await make_rig()
    rig.clock_offset = 0  # type: ignore[attr-defined]
    w, _, sup = await red_world(rig)
    await at(rig, 600, w["id"])
    [notice] = sms_to(rig, sup.phone)
    assert notice.startswith("【三台县应急管理局】三台县应急管理局7月1日8时发布的潼川镇暴雨红色预警，您负责的1人")
    assert "张一" in notice and "张二" not in notice
    [duty] = sms_to(rig, "+8613900000001")
    assert "张二" in duty and "张三" in duty and "2人" in duty


async def test_cancel_stops_the_chain(make_rig: Any) -> None:
    rig = await make_rig()
    rig.clock_offset = 0  # type: ignore[attr-defined]
    w, _, sup = await red_world(rig)
    await at(rig, 300, w["id"])
    calls = len(rig.fakes["primary"].accepted("Calls"))
    assert calls == 3
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={}, headers=auth("issuer"))
    assert resp.status == 200
    await at(rig, 2000, w["id"])
    assert len(rig.fakes["primary"].accepted("Calls")) == calls
    assert sms_to(rig, sup.phone) == [] and sms_to(rig, "+8613900000001") == []
    assert await rig.services.redis.zcard("ew:due") == 0


async def test_a_restart_neither_loses_nor_repeats_a_step(make_rig: Any) -> None:
    first = await make_rig()
    first.clock_offset = 0  # type: ignore[attr-defined]
    w, _, sup = await red_world(first)
    await at(first, 300, w["id"])
    assert len(first.fakes["primary"].accepted("Calls")) == 3
    # the process stops; a new one starts on the same Redis (its own stand-in provider)
    second = await make_rig()
    second.clock_offset = 300  # type: ignore[attr-defined]
    await at(second, 300, w["id"])  # a timer already fired does not fire again
    assert second.fakes["primary"].accepted("Calls") == []
    await at(second, 600, w["id"])
    assert len(sms_to(second, sup.phone)) == 1 and len(sms_to(second, "+8613900000001")) == 1
    await second.services.escalation.fire([w["id"], "1", "1"])  # a stray second firing does nothing
    await second.pump(lambda: settled_sends(second, w["id"]))
    assert len(sms_to(second, sup.phone)) == 1
    await at(second, 1200, w["id"])
    assert len(sms_to(second, "+8613900000002")) == 1
    assert second.fakes["primary"].accepted("Calls") == []


async def test_a_drill_escalates_only_inside_the_drill(make_rig: Any) -> None:
    rig = await make_rig()
    rig.clock_offset = 0  # type: ignore[attr-defined]
    w, _, sup = await red_world(rig, exercise=True)
    await at(rig, 1500, w["id"])
    assert len(rig.fakes["primary"].accepted("Calls")) == 3  # the drill's own people are called
    assert sms_to(rig, sup.phone) == [] and sms_to(rig, "+8613900000001") == []
    assert sms_to(rig, "+8613900000002") == []
    assert {r.msg_type for r in await rows(rig, w["id"])} == {"alert"}  # no notice planned


async def die_in_step(rig: Rig, seconds: float, kind: str, *, dies: str) -> None:
    """At `seconds`, a due loop takes the timers whose time has come and its process dies inside the `kind` handler:
    before it did anything, after the step's messages were planned and before the step was marked done (the state
    that leaves is made by undoing the mark and its audit entry), or after the handler finished, before its timer
    was released."""
    rig.clock.advance(seconds - rig.clock_offset)  # type: ignore[attr-defined]
    rig.clock_offset = seconds  # type: ignore[attr-defined]
    handlers = due_handlers(rig.services)
    redis = rig.services.redis
    entered = asyncio.Event()

    async def handler(fields: list[str]) -> None:
        if dies != "before":
            await handlers[kind](fields)
        if dies == "planned":
            wid, version, step = fields
            await redis.hdel(keys.escalation_key(wid), f"done:{version}:{step}")
            for stream in (keys.audit_key(wid), keys.AUDIT_ALL):
                for entry_id, entry in await redis.xrange(stream):
                    if entry["action"] == "escalate" and entry["warning_id"] == wid:
                        await redis.xdel(stream, entry_id)
        entered.set()
        await asyncio.Event().wait()  # killed here: nothing after this runs

    task = asyncio.create_task(rig.services.due.drain({**handlers, kind: handler}))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("dies", ["before", "planned", "done"])
async def test_a_process_killed_inside_a_step_neither_loses_nor_repeats_it(make_rig: Any, dies: str) -> None:
    first = await make_rig()
    first.clock_offset = 0  # type: ignore[attr-defined]
    w, _, sup = await red_world(first)
    await die_in_step(first, 300, "esc", dies=dies)
    # a new process on the same Redis, with its own stand-in provider; the dead one's lease runs out
    second = await make_rig()
    second.clock_offset = 300  # type: ignore[attr-defined]
    await at(second, 300 + LEASE_S - 1, w["id"])
    # the step fires again only when the lease ends; what the dead process had queued is sent meanwhile
    assert len(second.fakes["primary"].accepted("Calls")) == (0 if dies == "before" else 3)
    await at(second, 300 + LEASE_S, w["id"])
    calls = second.fakes["primary"].accepted_count_by_number("Calls")
    assert sorted(calls.values()) == [1, 1, 1] and first.fakes["primary"].accepted("Calls") == []
    await at(second, 600, w["id"])
    await at(second, 1200, w["id"])
    await at(second, 5000, w["id"])
    assert len(sms_to(second, sup.phone)) == 1 and len(sms_to(second, "+8613900000001")) == 1
    assert len(sms_to(second, "+8613900000002")) == 1
    assert second.fakes["primary"].accepted_count_by_number("Calls") == calls
    audit = await (await second.client.get(f"/api/v1/warnings/{w['id']}/audit", headers=auth("viewer"))).json()
    steps = [(e["detail"]["step_action"], e["detail"]["messages"]) for e in audit["items"] if e["action"] == "escalate"]
    assert steps == [("call", 3), ("notify_supervisor", 2), ("notify_county_duty", 1)]
    assert await second.services.redis.zcard("ew:due") == 0 and await second.services.redis.zcard("ew:due:leases") == 0
