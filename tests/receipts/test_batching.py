"""Concurrent receipts share their Redis round trips; the status hook signs the form it parsed, repeats and all."""

from __future__ import annotations

from typing import Any

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from tests.fakes.twilio import AUTH_TOKEN, message_status_params
from tests.receipts.conftest import BASE, coverage, rows
from tests.receipts.test_status import sent_warning
from warning import keys
from warning.channel import ReceiptEvent
from warning.delivery import DeliveryState


def delivered(sid: str | None, delivery: str | None = None) -> ReceiptEvent:
    return ReceiptEvent(channel="sms", provider_ref=sid, delivery_id=delivery, state=DeliveryState.DELIVERED, at=None,
                        error_code=None, raw_status="delivered")


async def calls(redis: Any) -> dict[str, int]:
    """Commands Redis ran, scripts' own included (less a first EVALSHA refused for a script not loaded yet)."""
    stats = await redis.info("commandstats")
    out = {}
    for name in ("evalsha", "hgetall", "mget"):
        s = stats.get(f"cmdstat_{name}", {})
        out[name] = int(s.get("calls", 0)) - int(s.get("failed_calls", 0)) - int(s.get("rejected_calls", 0))
    return out


async def test_a_batch_takes_three_script_calls_whatever_its_size(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 12)
    recs = rig.fakes["primary"].accepted()
    early = recs[:4]  # callbacks that overtook the worker: their provider ids are not recorded yet
    for rec in early:
        await rig.services.redis.delete(keys.ref_key("sms", rec.sid or ""))
    events = [delivered(rec.sid) for rec in recs] + [delivered(recs[5].sid), delivered(None)]
    before = await calls(rig.services.redis)
    outcomes = await rig.services.receipts.apply(events)
    after = await calls(rig.services.redis)
    assert outcomes == ["held"] * 4 + ["applied"] * 8 + ["stale", "ignored"]
    # find and read, hold the early ones, one compare-and-set; the warning itself is not read
    assert after["evalsha"] - before["evalsha"] == 3
    assert after["hgetall"] - before["hgetall"] == 8 and after["mget"] == before["mget"]
    assert (await coverage(rig, w["id"]))["delivered"] == 8
    by_sid = {r.delivery.provider_ref: r for r in await rows(rig, w["id"])}
    for rec in early:  # the worker records the ids; what was held is applied
        row = by_sid[rec.sid]
        await rig.services.redis.set(keys.ref_key("sms", rec.sid or ""), f"{w['id']}:{row.delivery.id}")
        await rig.services.receipts.release_held(w["id"], [row])
    assert (await coverage(rig, w["id"]))["delivered"] == 12
    assert {r.delivery.state.value for r in await rows(rig, w["id"])} == {"delivered"}


async def test_repeated_and_chinese_form_fields_are_signed_as_twilio_signs_them(make_rig: Any) -> None:
    rig, w, _ = await sent_warning(make_rig, 1)
    rec = rig.fakes["primary"].accepted()[0]
    url = rec.form["StatusCallback"]
    form = MultiDict(message_status_params(rec.sid or "", "delivered"))
    form.add("Tag", "乙")
    form.add("Tag", "甲")
    form.add("Note", "暴雨 预警")
    forged = form.copy()
    forged.popall("Tag")
    forged.add("Tag", "乙")
    forged.add("Tag", "丙")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    before = await coverage(rig, w["id"])
    resp = await rig.client.post(url[len(BASE):], data=list(forged.items()), headers={"X-Twilio-Signature": signature})
    assert resp.status == 403
    assert await coverage(rig, w["id"]) == before
    resp = await rig.client.post(url[len(BASE):], data=list(form.items()), headers={"X-Twilio-Signature": signature})
    assert resp.status == 204
    assert (await coverage(rig, w["id"]))["delivered"] == 1
