"""Fan-out through HTTP to a Twilio-protocol stand-in: exactly once per channel, cancellations, drills,
expiry, exact coverage, and provider faults."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import auth
from tests.dispatch.conftest import Rig, twilio_channel
from tests.fakes.twilio import HANG, INVALID_NUMBER, OPTED_OUT, UNAVAILABLE, rate_limited
from tests.warnings.conftest import OUTSIDE, TONGCHUAN, VILLAGE_A, VILLAGE_B, person

BLUE = {"event": "rainstorm", "level": "blue", "headline": "潼川镇暴雨蓝色预警", "instruction": "注意防范。",
        "areas": [TONGCHUAN]}


async def issue(rig: Rig, body: dict[str, Any], who: str = "issuer") -> dict[str, Any]:
    resp = await rig.client.post("/api/v1/warnings", json=body, headers=auth(who))
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def coverage(rig: Rig, wid: str) -> dict[str, Any]:
    resp = await rig.client.get(f"/api/v1/warnings/{wid}/coverage", headers=auth("viewer"))
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def test_area_warning_reaches_everyone_once_and_no_one_outside(make_rig: Any) -> None:
    rig = await make_rig()
    inside = [person(i, VILLAGE_A if i % 2 else TONGCHUAN + "205") for i in range(1, 41)]
    await rig.seed(inside + [person(100, VILLAGE_B), person(101, OUTSIDE)])
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    fake = rig.fakes["primary"]
    assert fake.accepted_count_by_number() == {c.phone: 1 for c in inside}
    assert fake.accepted("Calls") == []  # blue: no voice
    body = fake.accepted()[0].form["Body"]
    assert body.startswith("【三台县应急管理局】") and "暴雨蓝色预警" in body
    assert fake.accepted()[0].form["StatusCallback"].startswith("http://testserver.example/hooks/twilio/status")
    cov = await coverage(rig, w["id"])
    assert (cov["targeted"], cov["queued"], cov["sent"], cov["failed"]) == (40, 0, 40, 0)
    assert cov["by_channel"]["sms"]["sent"] == 40
    assert cov["by_region"][TONGCHUAN]["sent"] == 40 and cov["by_region"][TONGCHUAN]["targeted"] == 40
    assert cov["by_region"][VILLAGE_A]["sent"] == 20
    assert cov["by_role"]["village_monitor"]["sent"] == 40
    assert (await rig.services.lifecycle.get(w["id"])).state.value == "active"


async def test_red_calls_the_responsible_and_cancel_reaches_everyone_sent(make_rig: Any) -> None:
    rig = await make_rig()
    people = [person(1, VILLAGE_A, "cadre"), person(2, VILLAGE_A, "grid_informant")]
    await rig.seed(people)
    w = await issue(rig, {**BLUE, "level": "red", "headline": "潼川镇暴雨红色预警"})
    await (await rig.client.post(f"/api/v1/warnings/{w['id']}/approve", json={}, headers=auth("approver"))).json()
    await rig.pump(lambda: rig.settled(w["id"]))
    fake = rig.fakes["primary"]
    assert fake.accepted_count_by_number() == {people[0].phone: 1, people[1].phone: 1}
    assert fake.accepted_count_by_number("Calls") == {people[0].phone: 1}  # voice for cadres, not informants
    assert "<Say" in fake.accepted("Calls")[0].form["Twiml"] and 'language="cmn-CN"' in fake.accepted("Calls")[0].form[
        "Twiml"]
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={"reason": "降雨减弱"},
                                 headers=auth("issuer"))
    assert resp.status == 200
    await rig.pump(lambda: rig.settled(w["id"]))
    assert fake.accepted_count_by_number() == {people[0].phone: 2, people[1].phone: 2}
    cancel = [r.form["Body"] for r in fake.accepted()][-1]
    assert "解除" in cancel and "暴雨红色预警" in cancel
    assert fake.accepted_count_by_number("Calls") == {people[0].phone: 1}  # one cancellation per person


async def test_exercise_messages_are_marked(make_rig: Any) -> None:
    rig = await make_rig()
    await rig.seed([person(1, VILLAGE_A)])
    w = await issue(rig, {**BLUE, "status": "Exercise"})
    await rig.pump(lambda: rig.settled(w["id"]))
    body = rig.fakes["primary"].accepted()[0].form["Body"]
    assert body.startswith("【三台县应急管理局】（演练）") and body.count("【") == 1
    cov = await coverage(rig, w["id"])
    assert cov["exercise"] is True and cov["sent"] == 1


async def test_expired_warning_sends_nothing_more(make_rig: Any) -> None:
    rig = await make_rig()
    await rig.seed([person(i, VILLAGE_A) for i in range(1, 6)])
    w = await issue(rig, {**BLUE, "expires": (rig.clock.now() + timedelta(minutes=30)).isoformat()})
    rig.clock.advance(31 * 60)
    await rig.pump(lambda: rig.settled(w["id"]))
    assert rig.fakes["primary"].requests == []
    cov = await coverage(rig, w["id"])
    assert (cov["sent"], cov["failed"], cov["queued"]) == (0, 5, 0)
    await rig.services.lifecycle.expire_due()
    assert (await rig.services.lifecycle.get(w["id"])).state.value == "expired"


async def test_transient_faults_are_retried_permanent_ones_fail_none_twice(make_rig: Any) -> None:
    rig = await make_rig()
    people = [person(i, VILLAGE_A) for i in range(1, 13)]
    await rig.seed(people)
    fake = rig.fakes["primary"]
    fake.script(people[0].phone, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    fake.script(people[1].phone, rate_limited(2), rate_limited(2))
    fake.script(people[2].phone, HANG)
    fake.script(people[3].phone, UNAVAILABLE, rate_limited(0.5), HANG)
    fake.fail_number(people[4].phone, INVALID_NUMBER)
    fake.fail_number(people[5].phone, OPTED_OUT)
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    counts = fake.accepted_count_by_number()
    assert counts == {p.phone: 1 for i, p in enumerate(people) if i not in (4, 5)}
    rows = {r.delivery.address: r.delivery for r in await rig.services.deliveries.rows(
        w["id"], await rig.services.deliveries.ids(w["id"]))}
    assert rows[people[4].phone].state.value == "failed" and "invalid_address" in (rows[people[4].phone].error or "")
    assert rows[people[5].phone].state.value == "failed" and "opted_out" in (rows[people[5].phone].error or "")
    assert rows[people[0].phone].attempts >= 2
    cov = await coverage(rig, w["id"])
    assert (cov["sent"], cov["failed"], cov["queued"]) == (10, 2, 0)
    metrics = await (await rig.client.get("/metrics")).text()
    assert 'ew_retries_total{channel="sms",reason="server_error"}' in metrics
    assert 'ew_messages_total{channel="sms",outcome="accepted",provider="twilio"} 10.0' in metrics


async def test_a_provider_that_stays_down_fails_over(make_rig: Any) -> None:
    def channels(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [twilio_channel("sms", "sms", urls["primary"], failover="sms-backup", failover_after=2),
                twilio_channel("sms-backup", "sms", urls["backup"])]

    rig = await make_rig(fakes=("primary", "backup"), channels=channels)
    people = [person(i, VILLAGE_A) for i in range(1, 6)]
    await rig.seed(people)
    primary, backup = rig.fakes["primary"], rig.fakes["backup"]
    for p in people:
        primary.fail_number(p.phone, UNAVAILABLE)
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    assert primary.accepted() == []
    assert backup.accepted_count_by_number() == {p.phone: 1 for p in people}
    cov = await coverage(rig, w["id"])
    assert cov["sent"] == 5 and cov["by_channel"]["sms"]["sent"] == 5


async def test_viewer_sees_masked_deliveries_and_export(make_rig: Any) -> None:
    rig = await make_rig()
    await rig.seed([person(1, VILLAGE_A)])
    w = await issue(rig, BLUE)
    await rig.pump(lambda: rig.settled(w["id"]))
    items = (await (await rig.client.get(f"/api/v1/warnings/{w['id']}/deliveries",
                                         headers=auth("viewer"))).json())["items"]
    assert items[0]["address"] == "138****0001" and items[0]["state"] == "accepted"
    full = (await (await rig.client.get(f"/api/v1/warnings/{w['id']}/deliveries?state=accepted",
                                        headers=auth("issuer"))).json())["items"]
    assert full[0]["address"] == "+8613800000001"
    csv_text = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/deliveries?format=csv",
                                           headers=auth("viewer"))).text()
    assert "138****0001" in csv_text and "13800000001" not in csv_text.replace("138****0001", "")
    xlsx = await rig.client.get(f"/api/v1/warnings/{w['id']}/deliveries?format=xlsx", headers=auth("viewer"))
    assert xlsx.status == 200 and (await xlsx.read())[:2] == b"PK"
    assert (await rig.client.get(f"/api/v1/warnings/{w['id']}/deliveries?state=bogus",
                                 headers=auth("viewer"))).status == 400
