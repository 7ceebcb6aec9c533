"""Idempotency-Key on the create endpoints, and creates that fail midway answer with what was stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import auth
from tests.warnings.conftest import VILLAGE_A, World, person
from tests.warnings.test_two_person_rule import cap
from tests.warnings.test_unfinished import FailingPlanning
from warning import keys
from warning.housekeeping import PLANNING_GRACE_S, reconcile
from warning.idempotency import LEASE_S, IdempotencyStore, digest
from warning.lifecycle import Actor
from warning.web.idempotent import fingerprint

DRAFT = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A]}


async def create(world: World, key: str | None, payload: Any = None, who: str = "issuer") -> tuple[int, Any, Any]:
    headers = {**auth(who), **({"Idempotency-Key": key} if key is not None else {})}
    resp = await world.client.post("/api/v1/warnings", json=DRAFT if payload is None else payload, headers=headers)
    return resp.status, await resp.json(), resp.headers


async def warning_ids(world: World) -> list[str]:
    listing = await (await world.client.get("/api/v1/warnings", headers=auth("viewer"))).json()
    return [w["id"] for w in listing["items"]]


async def test_a_repeat_gets_the_first_answer_and_creates_nothing(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    status, first, _ = await create(world, "k-1")
    assert status == 201 and first["state"] == "dispatching"
    # the same body written differently is the same request
    resp = await world.client.post("/api/v1/warnings", data=json.dumps(DRAFT, indent=2, sort_keys=True),
                                   headers={**auth("issuer"), "Idempotency-Key": "k-1"})
    assert resp.status == 201 and await resp.json() == first and resp.headers["Idempotent-Replayed"] == "true"
    assert await warning_ids(world) == [first["id"]]
    assert len(await world.deliveries(first["id"])) == 1
    ttl = await world.services.redis.ttl(keys.idempotency_key("issuer", digest("k-1")))
    assert 86000 < ttl <= 86400  # remembered for 24 h, then forgotten
    # keys are the caller's own: another issuer's same key is another request
    status, other, _ = await create(world, "k-1", who="issuer2")
    assert status == 201 and other["id"] != first["id"]


async def test_the_same_key_with_another_body_is_refused(world: World) -> None:
    status, first, _ = await create(world, "k-2")
    status, err, _ = await create(world, "k-2", {**DRAFT, "headline": "另一个预警"})
    assert status == 422 and err["error"] == "Idempotency-Key reused"
    assert await warning_ids(world) == [first["id"]]


async def test_concurrent_repeats_create_once(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    answers = await asyncio.gather(*(create(world, "k-3") for _ in range(6)))
    created = [b for s, b, h in answers if s == 201 and "Idempotent-Replayed" not in h]
    assert len(created) == 1
    for status, b, _ in answers:
        assert (status, b) == (201, created[0]) or (status, b["error"]) == (409, "request in progress")
    assert await warning_ids(world) == [created[0]["id"]]
    assert len(await world.deliveries(created[0]["id"])) == 1


async def test_a_refused_create_frees_its_key_and_bad_keys_are_400(world: World) -> None:
    status, _, _ = await create(world, "k-4", {**DRAFT, "level": "purple"})
    assert status == 400
    status, ok, headers = await create(world, "k-4")
    assert status == 201 and "Idempotent-Replayed" not in headers
    for bad in ("x" * 256, "ключ"):
        resp = await world.client.post("/api/v1/warnings", json=DRAFT,
                                       headers={**auth("issuer"), "Idempotency-Key": bad})
        assert resp.status == 400 and (await resp.json())["error"] == "invalid Idempotency-Key"
    assert await warning_ids(world) == [ok["id"]]


async def test_a_cap_repeat_gets_the_first_answer(world: World) -> None:
    data = cap(world, "I-1")
    headers = {**auth("feed"), "Content-Type": "application/xml", "Idempotency-Key": "cap-1"}
    first = await world.client.post("/api/v1/cap", data=data, headers=headers)
    again = await world.client.post("/api/v1/cap", data=data, headers=headers)
    body = await first.json()
    assert first.status == again.status == 202 and body["duplicate"] is False
    assert await again.json() == body and again.headers["Idempotent-Replayed"] == "true"
    other = await world.client.post("/api/v1/cap", data=cap(world, "I-2"), headers=headers)
    assert other.status == 422


async def test_a_create_that_fails_midway_answers_with_what_was_stored(world: World, clock: Any) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(3)])
    world.services.lifecycle.dispatch = FailingPlanning(world.services.dispatcher)
    status, first, _ = await create(world, "k-5")
    assert status == 201 and first["state"] == "dispatching" and "自动补全" in first["note"]
    assert await world.deliveries(first["id"]) == []
    status, again, headers = await create(world, "k-5")  # the client was unsure and asked again: nothing new
    assert (status, again) == (201, first) and headers["Idempotent-Replayed"] == "true"
    assert await warning_ids(world) == [first["id"]]
    clock.advance(PLANNING_GRACE_S + 1)
    assert await reconcile(world.services) == [first["id"]]  # the housekeeping finishes the planning
    await world.drain()
    assert sorted(world.channels["sms"].addresses()) == [person(i, VILLAGE_A).phone for i in range(3)]
    assert await reconcile(world.services) == []


@pytest.mark.parametrize("stored", [True, False])
async def test_a_repeat_after_a_crash_finds_what_the_first_attempt_stored(world: World, clock: Any,
                                                                         stored: bool) -> None:
    # the first attempt claimed the key and reserved its warning id, then the process died
    wid = world.services.lifecycle.new_id()
    store = IdempotencyStore(world.services.redis, clock=clock)
    raw = json.dumps(DRAFT).encode()
    assert await store.claim("issuer", "k-6", fingerprint("/api/v1/warnings", raw), wid) is None
    if stored:
        await world.services.lifecycle.draft(DRAFT, Actor("issuer", "issuer"), warning_id=wid)
    status, err, _ = await create(world, "k-6")
    assert status == 409 and err["error"] == "request in progress"  # within its lease it may still be running
    clock.advance(LEASE_S)
    status, res, _ = await create(world, "k-6")
    assert status == 201 and res["id"] == wid
    assert await warning_ids(world) == [wid]
    status, again, _ = await create(world, "k-6")
    assert (status, again) == (201, res)
