"""Status callbacks through HTTP, signed as Twilio signs them: every order, duplicates, receipt-before-id, forgeries."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import auth
from tests.fakes.twilio import call_status_params, message_status_params, sign
from tests.receipts.conftest import BLUE, Rig, coverage, issue, post_signed, rows
from tests.warnings.conftest import VILLAGE_A, person
from warning import keys

ORDERS = [list(p) for p in itertools.permutations(["sent", "delivered", "queued"])]


async def sent_warning(make_rig: Any, n: int) -> tuple[Rig, dict[str, Any], list[Any]]:
    rig = await make_rig()
    people = [person(i, VILLAGE_A) for i in range(1, n + 1)]
    await rig.seed(people)
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    return rig, w, people


async def test_receipts_in_every_order_with_duplicates_count_once(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, len(ORDERS))
    fake = rig.fakes["primary"]
    for rec, order in zip(fake.accepted(), ORDERS, strict=True):
        url = rec.form["StatusCallback"]
        for status in [*order, order[0], "delivered"]:  # a duplicate of the first, and of the delivery
            resp = await post_signed(rig, url, message_status_params(rec.sid or "", status, to=rec.to))
            assert resp.status == 204
    assert {r.delivery.state.value for r in await rows(rig, w["id"])} == {"delivered"}
    cov = await coverage(rig, w["id"])
    n = len(ORDERS)
    assert (cov["sent"], cov["delivered"], cov["failed"], cov["queued"]) == (n, n, 0, 0)
    assert cov["by_channel"]["sms"]["delivered"] == n and cov["by_region"][VILLAGE_A]["delivered"] == n


async def test_a_late_failure_wins_over_delivered_and_counts_once(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 2)
    for rec in rig.fakes["primary"].accepted():
        for status in ("delivered", "undelivered", "undelivered", "sent"):
            await post_signed(rig, rec.form["StatusCallback"], message_status_params(rec.sid or "", status))
    cov = await coverage(rig, w["id"])
    assert (cov["sent"], cov["delivered"], cov["failed"]) == (2, 0, 2)


async def test_receipt_before_the_provider_id_is_recorded_is_held_then_applied(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 1)
    rec = rig.fakes["primary"].accepted()[0]
    row = (await rows(rig, w["id"]))[0]
    ref = keys.ref_key("sms", rec.sid or "")
    # as if the callback overtook the worker: the provider id is not known yet
    await rig.services.redis.delete(ref)
    resp = await post_signed(rig, rec.form["StatusCallback"], message_status_params(rec.sid or "", "delivered"))
    assert resp.status == 204
    held = keys.held_receipts_key("sms", rec.sid or "")
    assert await rig.services.redis.llen(held) == 1 and await rig.services.redis.ttl(held) > 0
    assert (await rows(rig, w["id"]))[0].delivery.state.value == "accepted"
    # the worker records the id, then its on_accepted hook releases what was held
    await rig.services.redis.set(ref, f"{w['id']}:{row.delivery.id}")
    await rig.services.receipts.release_held(w["id"], [row])
    assert (await rows(rig, w["id"]))[0].delivery.state.value == "delivered"
    assert await rig.services.redis.exists(held) == 0
    assert (await coverage(rig, w["id"]))["delivered"] == 1


async def test_forged_and_unsigned_callbacks_are_refused_and_change_nothing(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 1)
    rec = rig.fakes["primary"].accepted()[0]
    url = rec.form["StatusCallback"]
    params = message_status_params(rec.sid or "", "delivered")
    before = await coverage(rig, w["id"])
    assert (await rig.client.post(url[len("http://testserver.example"):], data=params)).status == 403
    assert (await post_signed(rig, url, params, token="not-the-auth-token")).status == 403
    assert (await post_signed(rig, url, params, signature="AAAA")).status == 403
    # signed for another address, for another delivery, or for another status
    assert (await post_signed(rig, url, params, signature=sign(url.replace("testserver", "elsewhere"), params))
            ).status == 403
    assert (await post_signed(rig, url, params, signature=sign(url.replace("d=", "d=0"), params))).status == 403
    assert (await post_signed(rig, url, params, signature=sign(url, message_status_params(rec.sid or "", "sent")))
            ).status == 403
    body = await (await rig.client.post(url[len("http://testserver.example"):], data=params)).json()
    assert body["error"] == "invalid signature"
    assert await coverage(rig, w["id"]) == before
    assert (await rows(rig, w["id"]))[0].delivery.state.value == "accepted"


async def test_unknown_statuses_and_new_parameters_are_tolerated(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 1)
    rec = rig.fakes["primary"].accepted()[0]
    url = rec.form["StatusCallback"]
    odd = message_status_params(rec.sid or "", "teleported")
    assert (await post_signed(rig, url, odd)).status == 204
    assert (await rows(rig, w["id"]))[0].delivery.state.value == "accepted"
    extra = {**message_status_params(rec.sid or "", "delivered"), "RawDlrDoneDate": "2607010801", "NewField": "x"}
    assert (await post_signed(rig, url, extra)).status == 204
    assert (await rows(rig, w["id"]))[0].delivery.state.value == "delivered"


async def test_undelivered_sms_calls_the_person_instead(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 2)
    fake = rig.fakes["primary"]
    first = fake.accepted()[0]
    await post_signed(rig, first.form["StatusCallback"], message_status_params(first.sid or "", "undelivered",
                                                                               error_code="30003"))
    await rig.pump(lambda: rig.settled(w["id"]))
    assert fake.accepted_count_by_number("Calls") == {first.to: 1}
    # a second report of the same failure places no second call
    await post_signed(rig, first.form["StatusCallback"], message_status_params(first.sid or "", "undelivered"))
    await rig.pump(lambda: rig.settled(w["id"]))
    assert fake.accepted_count_by_number("Calls") == {first.to: 1}
    call = fake.accepted("Calls")[0]
    await post_signed(rig, call.form["StatusCallback"], call_status_params(call.sid or "", "completed"))
    cov = await coverage(rig, w["id"])
    assert cov["by_channel"]["voice"]["delivered"] == 1 and cov["by_channel"]["sms"]["failed"] == 1
    assert cov["targeted"] == 2


async def test_no_fallback_once_the_warning_is_cancelled(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 1)
    fake = rig.fakes["primary"]
    first = fake.accepted()[0]
    assert (await rig.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={}, headers=auth("issuer"))).status == 200
    await post_signed(rig, first.form["StatusCallback"], message_status_params(first.sid or "", "failed"))
    await rig.pump(lambda: rig.settled(w["id"]))
    assert fake.accepted("Calls") == []
