"""汛前核查 (registry check): the verification SMS through the normal workers, answers credited to the check, silence
and permanent failures flagged `needs_check` at the end (and on any send), the check kept out of the warnings; every
bad input a clear error that changes nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from contacts.model import Contact
from tests.conftest import auth
from tests.fakes.twilio import INVALID_NUMBER, inbound_sms_params, message_status_params
from tests.receipts.conftest import BASE, BLUE, Rig, issue, post_signed, settled_sends
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, person
from warning import keys
from warning.bootstrap import due_handlers
from warning.registry_check import OPEN_INDEX, permanent

NIUTOU = TONGCHUAN + "205"  # 牛头山村
TEXT = "【三台县应急管理局】请回复1确认本号码有效。"
CONFIRMED = "【三台县应急管理局】本号码已核实，谢谢。"


async def county(rig: Rig) -> dict[str, Contact]:
    """People of 潼川镇 (mobiles, a landline, someone inactive) and of 芦溪镇."""
    people = {"甲": replace(person(1, VILLAGE_A), name="甲"), "乙": replace(person(2, VILLAGE_A), name="乙"),
              "丙": replace(person(3, NIUTOU, "grid_informant"), name="丙"),
              "丁": replace(person(4, TONGCHUAN, "cadre"), name="丁"),
              "座机": replace(person(5, NIUTOU, phone_kind="landline"), name="座机"),
              "停用": replace(person(6, VILLAGE_A), name="停用", active=False),
              "芦溪": replace(person(7, VILLAGE_B), name="芦溪")}
    ids = await rig.seed(list(people.values()))
    return {name: replace(c, id=cid) for (name, c), cid in zip(people.items(), ids, strict=True)}


async def start(rig: Rig, body: dict[str, Any], who: str = "issuer") -> Any:
    return await rig.client.post("/api/v1/registry/checks", json=body, headers=auth(who))


async def check(rig: Rig, cid: str, who: str = "issuer") -> dict[str, Any]:
    resp = await rig.client.get(f"/api/v1/registry/checks/{cid}", headers=auth(who))
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def sent_out(rig: Rig, cid: str) -> bool:
    counts = await rig.services.deliveries.counts(cid)
    return counts.get("queued", 0) == 0


async def answer(rig: Rig, phone: str, text: str = "1") -> str:
    """An SMS reply; the text we answered it with."""
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/sms", inbound_sms_params(phone, text))
    assert resp.status == 200
    return await resp.text()


async def flag(rig: Rig, contact: Contact) -> dict[str, Any] | None:
    got = await (await rig.client.get(f"/api/v1/contacts/{contact.id}", headers=auth("admin"))).json()
    return got["needs_check_reason"] if got["needs_check"] else None


async def run_to_end(rig: Rig, seconds: float) -> None:
    rig.clock.advance(seconds)
    await rig.services.due.drain(due_handlers(rig.services))


async def test_a_check_goes_to_the_regions_mobiles_through_the_workers_and_is_no_warning(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    resp = await start(rig, {"region": TONGCHUAN, "reply_within_s": 3600})
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    cid = made["id"]
    assert cid.startswith("chk20260701") and made["state"] == "open" and made["region_name"] == "潼川镇"
    assert made["figures"]["targeted"] == 4 and made["without_mobile"] == [people["座机"].id]
    assert made["closes_at"] == "2026-07-01T01:00:00+00:00" and made["text"] == TEXT
    # after every live warning: on the drills' queue
    assert await rig.services.redis.xlen(keys.queue_key("sms", 4)) == 1
    await rig.pump(lambda: sent_out(rig, cid))
    sent = {r.to: r.form["Body"] for r in rig.fakes["primary"].accepted()}
    assert sent == {people[n].phone: TEXT for n in ("甲", "乙", "丙", "丁")}
    status = await check(rig, cid)
    assert status["figures"]["sent"] == 4 and {p["result"] for p in status["people"]} == {"waiting"}
    names = {p["name"]: (p["region_name"], p["role_zh"]) for p in status["people"]}
    assert names["甲"] == ("四川省绵阳市三台县潼川镇东街社区", "村社区中心户")
    # not a warning: not listed, not readable or changeable as one, in no coverage
    listed = await (await rig.client.get("/api/v1/warnings", headers=auth("viewer"))).json()
    assert cid not in [w["id"] for w in listed["items"]]
    for path in ("", "/coverage", "/evaluation"):
        assert (await rig.client.get(f"/api/v1/warnings/{cid}{path}", headers=auth("viewer"))).status == 404
    resp = await rig.client.post(f"/api/v1/warnings/{cid}/cancel", json={}, headers=auth("issuer"))
    assert resp.status == 404
    assert cid not in await rig.services.warnings.active_ids()


async def test_answers_confirm_and_silence_and_failures_are_flagged_at_the_end(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    rig.fakes["primary"].fail_number(people["丁"].phone, INVALID_NUMBER)
    resp = await rig.client.patch(f"/api/v1/contacts/{people['甲'].id}", json={"needs_check": True},
                                  headers=auth("admin"))
    assert resp.status == 200
    cid = (await (await start(rig, {"region": TONGCHUAN, "reply_within_s": 3600})).json())["id"]
    await rig.pump(lambda: sent_out(rig, cid))
    # 丁's number is refused by the provider at once: flagged now
    assert (await flag(rig, people["丁"]) or {}).get("reason") == "failed"
    # 乙's SMS is reported undelivered: unknown destination handset (Twilio 30005), a permanent reason
    sms = {r.to: r for r in rig.fakes["primary"].accepted()}
    yi = sms[people["乙"].phone]
    resp = await post_signed(rig, yi.form["StatusCallback"],
                             message_status_params(yi.sid or "", "undelivered", to=yi.to, error_code="30005"))
    assert resp.status == 204
    assert (await flag(rig, people["乙"]) or {}).get("reason") == "failed"
    # 甲 answers: confirmed, and the flag a person set earlier is taken off
    rig.clock.advance(120)
    assert CONFIRMED in await answer(rig, people["甲"].phone, "1")
    assert await flag(rig, people["甲"]) is None
    status = await check(rig, cid)
    results = {p["name"]: p["result"] for p in status["people"]}
    assert results == {"甲": "confirmed", "乙": "failed", "丙": "waiting", "丁": "failed"}
    assert status["figures"]["confirmed"] == 1
    # the end: 丙 never answered
    await run_to_end(rig, 3600)
    status = await check(rig, cid)
    assert status["state"] == "closed" and status["closed_at"]
    assert {p["name"]: p["result"] for p in status["people"]} == {"甲": "confirmed", "乙": "failed",
                                                                  "丙": "no_reply", "丁": "failed"}
    assert sorted(p["name"] for p in status["follow_up"]) == ["丁", "丙", "乙"]
    bing = await flag(rig, people["丙"])
    assert bing == {"reason": "no_reply", "at": "2026-07-01T01:02:00+00:00", "detail": cid}
    listed = await (await rig.client.get("/api/v1/contacts?needs_check=true", headers=auth("viewer"))).json()
    assert sorted(c["name"] for c in listed["items"]) == ["丁", "丙", "乙"]
    # once closed, an answer is not credited to it
    assert CONFIRMED not in await answer(rig, people["丙"].phone, "1")
    assert await flag(rig, people["丙"]) is not None
    assert await rig.services.redis.zcard(OPEN_INDEX) == 0


async def test_a_live_warning_waiting_for_a_confirmation_takes_the_reply_first(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    cid = (await (await start(rig, {"region": TONGCHUAN, "roles": ["村社区中心户"]})).json())["id"]
    await rig.pump(lambda: sent_out(rig, cid))
    w = await issue(rig, {**BLUE, "level": "yellow", "headline": "东街社区暴雨黄色预警", "areas": [VILLAGE_A]})
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    jia = people["甲"]
    assert CONFIRMED not in await answer(rig, jia.phone, "收到")  # the yellow warning asked and waits: it is its
    assert jia.id in await rig.services.deliveries.acked(w["id"])
    assert jia.id not in await rig.services.deliveries.acked(cid)
    assert CONFIRMED in await answer(rig, jia.phone, "1")  # the warning has its confirmation: now the check's
    assert jia.id in await rig.services.deliveries.acked(cid)
    # a warning that asks nothing (blue) never stands in the way; a reply that is no confirmation is no answer
    assert CONFIRMED not in await answer(rig, people["乙"].phone, "收到")  # 乙 confirms the yellow one
    await issue(rig, {**BLUE, "areas": [VILLAGE_A]})
    assert CONFIRMED not in await answer(rig, people["乙"].phone, "村口积水")
    assert CONFIRMED in await answer(rig, people["乙"].phone, "好的收到")
    status = await check(rig, cid)
    assert {p["name"]: p["result"] for p in status["people"]} == {"甲": "confirmed", "乙": "confirmed"}


async def test_any_send_that_fails_for_good_flags_the_number(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    rig.fakes["primary"].fail_number(people["丁"].phone, INVALID_NUMBER)
    w = await issue(rig, BLUE)  # 潼川镇
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    ding = await flag(rig, people["丁"])
    assert ding is not None and (ding["reason"], ding["at"]) == ("failed", "2026-07-01T00:00:00+00:00")
    assert ding["detail"].startswith(f"{w['id']} sms: invalid_address: twilio 21211")
    sms = {r.to: r for r in rig.fakes["primary"].accepted()}
    for name, code in (("甲", "30003"), ("乙", "30006")):  # unreachable for now (not flagged) / landline (flagged)
        rec = sms[people[name].phone]
        resp = await post_signed(rig, rec.form["StatusCallback"],
                                 message_status_params(rec.sid or "", "undelivered", to=rec.to, error_code=code))
        assert resp.status == 204
    assert await flag(rig, people["甲"]) is None
    assert (await flag(rig, people["乙"]) or {})["detail"] == f"{w['id']} sms: 30006"


def test_which_errors_say_the_number_is_wrong() -> None:
    codes = frozenset({"30005", "30006"})
    assert permanent("invalid_address: twilio 21211 (HTTP 400)", codes) and permanent("30005", codes)
    assert not permanent("30003", codes) and not permanent(None, codes) and not permanent("timeout", codes)
    assert not permanent("gave up after 6 attempts: server_error", codes)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "region"), ({"region": ""}, "region"), ({"region": "5107221"}, "region"), ({"region": 510722101}, "region"),
    ({"region": TONGCHUAN, "roles": ["司令"]}, "roles"), ({"region": TONGCHUAN, "roles": "cadre"}, "roles"),
    ({"region": TONGCHUAN, "roles": []}, "roles"), ({"region": TONGCHUAN, "reply_within_s": 0}, "reply_within_s"),
    ({"region": TONGCHUAN, "reply_within_s": True}, "reply_within_s"),
    ({"region": TONGCHUAN, "reply_within_s": "3600"}, "reply_within_s"),
    ({"region": TONGCHUAN, "reply_within_s": 31 * 86400}, "reply_within_s"),
    ({"region": TONGCHUAN, "when": "now"}, "when"),
])
async def test_bad_bodies_are_clear_errors_that_change_nothing(make_rig: Any, body: dict[str, Any],
                                                               field: str) -> None:
    rig = await make_rig()
    await county(rig)
    before = sorted([k async for k in rig.services.redis.scan_iter()])
    resp = await start(rig, body)
    assert resp.status == 400
    err = await resp.json()
    assert field in err["detail"] and err["request_id"]
    assert sorted([k async for k in rig.services.redis.scan_iter() if not k.startswith("ew:throttle")]) == before


async def test_conflicts_and_refusals(make_rig: Any) -> None:
    rig = await make_rig()
    await county(rig)
    resp = await rig.client.post("/api/v1/registry/checks", data=b"[1]", headers={**auth("issuer"),
                                                                                  "Content-Type": "application/json"})
    assert resp.status == 400
    resp = await start(rig, {"region": "510722199"})  # nobody there
    assert resp.status == 400 and "region" in (await resp.json())["detail"]
    for who in ("viewer", "approver", "feed"):
        assert (await start(rig, {"region": TONGCHUAN}, who)).status == 403
    first = await start(rig, {"region": TONGCHUAN})
    assert first.status == 201
    for region in (VILLAGE_A, "510722"):  # inside it, or around it: one open check per place
        resp = await start(rig, {"region": region})
        assert resp.status == 409 and (await resp.json())["detail"]["region"]
    assert (await start(rig, {"region": LUXI})).status == 201
    assert (await rig.client.get("/api/v1/registry/checks/chk20260701ffffffff", headers=auth("viewer"))).status == 404
    assert (await rig.client.get("/api/v1/registry/checks/w1", headers=auth("viewer"))).status == 404
    w = await issue(rig, BLUE)
    assert (await rig.client.get(f"/api/v1/registry/checks/{w['id']}", headers=auth("viewer"))).status == 404
    # once the first has ended, the place is free again
    await run_to_end(rig, 86400)
    assert (await start(rig, {"region": VILLAGE_A})).status == 201


async def test_no_sms_channel_no_check(make_rig: Any) -> None:
    from tests.dispatch.conftest import twilio_channel

    rig = await make_rig(channels=lambda urls: [twilio_channel("voice", "voice", urls["primary"])])
    await county(rig)
    resp = await start(rig, {"region": TONGCHUAN})
    assert resp.status == 409 and "短信" in (await resp.json())["error"]
    assert await rig.services.redis.zcard(OPEN_INDEX) == 0


async def test_viewers_see_masked_numbers(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    cid = (await (await start(rig, {"region": TONGCHUAN})).json())["id"]
    status = await check(rig, cid, "viewer")
    assert people["甲"].phone not in str(status) and all("****" in p["phone"] for p in status["people"])


async def test_a_check_that_ends_before_its_sms_went_out_flags_nobody(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    cid = (await (await start(rig, {"region": TONGCHUAN, "reply_within_s": 60})).json())["id"]
    await run_to_end(rig, 60)  # the workers never ran
    await rig.pump(lambda: sent_out(rig, cid))
    assert rig.fakes["primary"].accepted() == []
    status = await check(rig, cid)
    assert {p["result"] for p in status["people"]} == {"not_sent"} and status["follow_up"] == []
    assert [await flag(rig, people[n]) for n in ("甲", "乙", "丙", "丁")] == [None] * 4


async def test_closing_twice_changes_nothing(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)
    cid = (await (await start(rig, {"region": TONGCHUAN, "reply_within_s": 600})).json())["id"]
    await rig.pump(lambda: sent_out(rig, cid))
    await run_to_end(rig, 600)
    first = (await check(rig, cid), await flag(rig, people["丙"]))
    rig.clock.advance(30)
    await rig.services.checks.close([cid])  # the timer fired again (its process died before it finished)
    assert (await check(rig, cid), await flag(rig, people["丙"])) == first
    audit = await rig.services.audit.entries(cid)
    assert [e.action for e in audit if e.action.startswith("check")] == ["check", "check_closed"]


async def test_every_key_of_a_check_expires_at_its_end_plus_retention(make_rig: Any) -> None:
    from tests.warnings.test_retention import every_key, of_warning, without_expiry

    rig = await make_rig(retention={"days": 30})
    people = await county(rig)
    cid = (await (await start(rig, {"region": TONGCHUAN, "reply_within_s": 3600})).json())["id"]
    await rig.pump(lambda: sent_out(rig, cid))
    sms = {r.to: r for r in rig.fakes["primary"].accepted()}
    rec = sms[people["乙"].phone]
    await post_signed(rig, rec.form["StatusCallback"], message_status_params(rec.sid or "", "delivered", to=rec.to))
    await answer(rig, people["甲"].phone, "1")
    await run_to_end(rig, 3600)
    redis = rig.services.redis
    ttls = await every_key(redis)
    assert without_expiry(ttls) == [] and await redis.exists(keys.CHECKS_OPEN) == 0  # closed: the index is empty
    mine = await of_warning(redis, cid, ttls)
    kinds = {k.split("}:")[1].split(":")[0] if keys.tag(cid) in k else k.split(":")[1] for k in mine}
    assert {"warning", "d", "deliveries", "recipients", "counts", "acked", "esc", "audit", "ref"} <= kinds
    # each key was given its time until the end + 30 days when written (Redis counts real seconds, the test's clock
    # moved the hour of the check): from 30 days (written at the end) to 30 days and an hour (at the start)
    assert all(30 * 86400 - 60 <= ttl <= 30 * 86400 + 3600 for ttl in mine.values()), mine
    assert await redis.ttl(keys.warning_key(cid)) <= 30 * 86400 + 3600
    # the flags are registry data: kept until someone changes them
    flagged = await (await rig.client.get("/api/v1/contacts?needs_check=true", headers=auth("admin"))).json()
    assert sorted(c["name"] for c in flagged["items"]) == ["丁", "丙", "乙"]  # all but 甲, who answered


@pytest.mark.parametrize(("table", "key"), [
    ({"default_reply_within_s": 10}, "registry_checks.default_reply_within_s"),
    ({"default_reply_within_s": "1d"}, "registry_checks.default_reply_within_s"),
    ({"permanent_failure_codes": "30005"}, "registry_checks.permanent_failure_codes"),
    ({"permanent_failure_codes": [30005]}, "registry_checks.permanent_failure_codes"),
    ({"reply_within": 60}, "registry_checks.reply_within"),
])
def test_a_bad_registry_checks_table_stops_the_service_at_start(tmp_path: Any, table: dict[str, Any],
                                                                key: str) -> None:
    from tests.conftest import make_settings
    from warning.errors import ConfigError
    from warning.web.app import create_app

    with pytest.raises(ConfigError) as err:
        create_app(make_settings(tmp_path, registry_checks=table))
    assert err.value.key == key


async def test_the_default_time_to_answer_and_the_failure_codes_come_from_the_configuration(make_rig: Any) -> None:
    rig = await make_rig(registry_checks={"default_reply_within_s": 7200, "permanent_failure_codes": ["30003"]})
    people = await county(rig)
    made = await (await start(rig, {"region": TONGCHUAN})).json()
    assert made["reply_within_s"] == 7200 and made["closes_at"] == "2026-07-01T02:00:00+00:00"
    await rig.pump(lambda: sent_out(rig, made["id"]))
    rec = {r.to: r for r in rig.fakes["primary"].accepted()}[people["甲"].phone]
    await post_signed(rig, rec.form["StatusCallback"],
                      message_status_params(rec.sid or "", "undelivered", to=rec.to, error_code="30003"))
    assert (await flag(rig, people["甲"]) or {}).get("reason") == "failed"


async def test_numbers_to_check_are_sent_to_but_counted_apart_in_a_warnings_coverage(make_rig: Any) -> None:
    rig = await make_rig()
    people = await county(rig)  # 潼川镇: 甲 乙 丙 丁 and a landline (座机)
    for name in ("乙", "丙"):
        resp = await rig.client.patch(f"/api/v1/contacts/{people[name].id}", json={"needs_check": True},
                                      headers=auth("admin"))
        assert resp.status == 200
    yellow = {**BLUE, "level": "yellow", "headline": "潼川镇暴雨黄色预警"}
    w = await issue(rig, yellow)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    sent = {r.to for r in rig.fakes["primary"].accepted()}
    assert {people["乙"].phone, people["丙"].phone} <= sent  # still sent to
    await answer(rig, people["甲"].phone, "收到")
    await answer(rig, people["乙"].phone, "收到")
    cov = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/coverage", headers=auth("viewer"))).json()
    assert (cov["targeted"], cov["acked"], cov["sent"]) == (3, 1, 3)  # 甲 丁 座机 (the landline by a call)
    assert cov["by_region"][TONGCHUAN]["targeted"] == 3 and cov["by_channel"]["sms"]["sent"] == 2
    nc = cov["needs_check"]
    assert (nc["targeted"], nc["sent"], nc["acked"], nc["acked_5m"]) == (2, 2, 1, 1)
    # flagged while the warning runs: 丁 stays where the warning counted him, through an update too
    resp = await rig.client.patch(f"/api/v1/contacts/{people['丁'].id}", json={"needs_check": True},
                                  headers=auth("admin"))
    assert resp.status == 200
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/update", json={**yellow, "instruction": "注意山洪。"},
                                 headers=auth("issuer"))
    assert resp.status == 200, await resp.text()
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    cov = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/coverage", headers=auth("viewer"))).json()
    assert (cov["targeted"], cov["needs_check"]["targeted"]) == (3, 2)
    assert cov["sent"] == 6 and cov["needs_check"]["sent"] == 4  # two versions each
    # the evaluation times only those counted; the list of the unconfirmed says whose number is in doubt
    doc = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/evaluation", headers=auth("viewer"))).json()
    assert doc["confirm_times"]["confirmed"] == 1 and doc["coverage"]["needs_check"]["acked"] == 1
    never = {p["name"]: p["needs_check"] for t in doc["unconfirmed"]["townships"] for v in t["villages"]
             for p in v["people"]}
    assert never == {"丙": True, "丁": False, "座机": False}
