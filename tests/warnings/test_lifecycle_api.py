"""The warning lifecycle through HTTP on a real Redis: draft, approval, update, cancel, expiry, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import auth
from tests.warnings.conftest import LUXI, OUTSIDE, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person
from warning.delivery import DeliveryState
from warning.dispatcher import priority_of

S = DeliveryState


def body(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event": "rainstorm", "level": "blue", "headline": "潼川镇暴雨蓝色预警",
                            "description": "预计未来12小时潼川镇降雨量将达50毫米以上。", "instruction": "注意防范。",
                            "areas": [TONGCHUAN]}
    base.update(kw)
    return base


async def post(world: World, who: str, path: str, payload: Any = None) -> Any:
    resp = await world.client.post(path, json=payload, headers=auth(who))
    return resp.status, await resp.json()


async def test_blue_goes_out_at_once_to_everyone_in_the_area(world: World) -> None:
    inside = await world.seed([person(1, VILLAGE_A), person(2, TONGCHUAN + "002", "cadre"), person(3, TONGCHUAN)])
    await world.seed([person(4, VILLAGE_B), person(5, OUTSIDE)])
    status, w = await post(world, "issuer", "/api/v1/warnings", body())
    assert status == 201, w
    assert w["state"] == "dispatching"
    assert w["level"] == "blue" and w["level_zh"] == "蓝色"
    rows = await world.deliveries(w["id"])
    assert sorted(r.delivery.recipient_id for r in rows) == sorted(inside)
    assert {r.delivery.kind for r in rows} == {"sms"}  # blue: SMS only, for every role
    counts = await world.services.deliveries.counts(w["id"])
    assert counts["targeted"] == 3 and counts["queued"] == 3


async def test_planning_twice_creates_nothing_new(world: World) -> None:
    await world.seed([person(i, VILLAGE_A) for i in range(5)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    record = await world.services.lifecycle.get(w["id"])
    before = await world.services.deliveries.counts(w["id"])
    await world.services.dispatcher.issue(record, None)
    assert await world.services.deliveries.counts(w["id"]) == before
    assert len(await world.deliveries(w["id"])) == 5


async def test_red_waits_for_a_second_person(world: World) -> None:
    await world.seed([person(1, VILLAGE_A, "cadre"), person(2, VILLAGE_A)])
    status, w = await post(world, "issuer", "/api/v1/warnings", body(level="red"))
    assert status == 201 and w["state"] == "pending_approval"
    assert await world.deliveries(w["id"]) == []
    # an issuer may not approve; a viewer neither
    assert (await post(world, "issuer2", f"/api/v1/warnings/{w['id']}/approve", {}))[0] == 403
    assert (await post(world, "viewer", f"/api/v1/warnings/{w['id']}/approve", {}))[0] == 403
    assert await world.deliveries(w["id"]) == []
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {})
    assert status == 200 and ok["state"] == "dispatching" and ok["approver"] == "approver"
    rows = await world.deliveries(w["id"])
    kinds = {(r.role, r.delivery.kind) for r in rows}
    assert kinds == {("cadre", "sms"), ("cadre", "voice"), ("village_monitor", "sms"), ("village_monitor", "voice")}
    # approving again is a conflict
    assert (await post(world, "approver2", f"/api/v1/warnings/{w['id']}/approve", {}))[0] == 409


async def test_drafter_cannot_approve_own_draft(world: World) -> None:
    status, w = await post(world, "admin", "/api/v1/warnings", body(level="orange"))
    assert w["state"] == "pending_approval"
    status, err = await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve", {})
    assert status == 409 and err["error"] == "cannot approve own draft"
    assert (await world.services.lifecycle.get(w["id"])).state.value == "pending_approval"


async def test_admin_override_needs_a_reason_and_is_audited(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "admin", "/api/v1/warnings", body(level="red"))
    status, _ = await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve", {"override": True})
    assert status == 400
    status, _err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve",
                             {"override": True, "reason": "值班领导电话无法接通，情况紧急"})
    assert status == 403  # only an admin may break glass
    status, ok = await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve",
                            {"override": True, "reason": "值班领导电话无法接通，情况紧急"})
    assert status == 200 and ok["override_reason"] == "值班领导电话无法接通，情况紧急"
    resp = await world.client.get(f"/api/v1/warnings/{w['id']}/audit", headers=auth("viewer"))
    actions = [e["action"] for e in (await resp.json())["items"]]
    assert actions[:3] == ["draft", "override", "issue"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"event": "nonsense"}, "event"),
        ({"level": "purple"}, "level"),
        ({"event": "hail", "level": "blue"}, "level"),  # 冰雹 has no blue signal
        ({"areas": ["51072"]}, "areas"),
        ({"areas": [], "polygon": None}, "areas"),
        ({"polygon": [[30.0, 105.0], [31.0], [31.0, 106.0]]}, "polygon[1]"),
        ({"roles": ["king"]}, "roles"),
        ({"status": "Live"}, "status"),
        ({"expires": "2020-01-01T00:00:00+08:00"}, "expires"),
        ({"expires": "2030-01-01T00:00:00"}, "expires"),
        ({"headline": ""}, "headline"),
    ],
)
async def test_bad_drafts_are_refused_with_the_field(world: World, patch: dict[str, Any], field: str) -> None:
    status, err = await post(world, "issuer", "/api/v1/warnings", body(**patch))
    assert status == 400, err
    assert field in [p["field"] for p in err["detail"]]
    listing = await world.client.get("/api/v1/warnings", headers=auth("viewer"))
    assert (await listing.json())["items"] == []


async def test_bad_json_and_auth(world: World) -> None:
    resp = await world.client.post("/api/v1/warnings", data=b"{not json", headers=auth("issuer"))
    assert resp.status == 400
    assert (await world.client.post("/api/v1/warnings", json=body())).status == 401
    assert (await world.client.post("/api/v1/warnings", json=body(), headers=auth("viewer"))).status == 403
    assert (await world.client.get("/api/v1/warnings/nope", headers=auth("viewer"))).status == 404


async def _accept_all(world: World, wid: str) -> None:
    """Hand every queued delivery to the recording channels."""
    await world.drain()
    rows = await world.deliveries(wid)
    assert all(r.delivery.state is S.ACCEPTED for r in rows if r.delivery.version == 1)


async def test_update_reaches_old_and_new_audience(world: World) -> None:
    a = await world.seed([person(1, VILLAGE_A)])
    b = await world.seed([person(2, VILLAGE_B)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    await _accept_all(world, w["id"])
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update",
                            body(areas=[LUXI], headline="暴雨范围调整至芦溪镇"))
    assert status == 200 and up["version"] == 2 and up["msg_type"] == "Update"
    v2 = [r for r in await world.deliveries(w["id"]) if r.delivery.version == 2]
    assert sorted(r.delivery.recipient_id for r in v2) == sorted(a + b)
    assert all(r.msg_type == "update" for r in v2)
    record = await world.services.lifecycle.get(w["id"])
    assert len(record.identifiers) == 2
    cap = await (await world.client.get(f"/api/v1/warnings/{w['id']}/cap", headers=auth("viewer"))).text()
    assert record.identifiers[0] in cap and "<msgType>Update</msgType>" in cap


async def test_raising_to_red_by_update_needs_approval(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", body(level="red"))
    assert up["state"] == "pending_approval"
    assert [r for r in await world.deliveries(w["id"]) if r.delivery.version == 2] == []
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {})
    assert status == 200 and ok["state"] == "dispatching" and ok["version"] == 2
    assert [r for r in await world.deliveries(w["id"]) if r.delivery.version == 2]


async def test_cancel_tells_everyone_who_was_sent_it_and_stops_the_rest(world: World) -> None:
    sent_to = await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    await _accept_all(world, w["id"])
    late = await world.seed([person(3, VILLAGE_A)])
    # a later update queues a delivery for the newcomer, which the cancel must stop
    await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", body(headline="更新"))
    status, c = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/cancel", {"reason": "降雨减弱"})
    assert status == 200 and c["state"] == "cancelled" and c["msg_type"] == "Cancel"
    rows = await world.deliveries(w["id"])
    v2 = [r for r in rows if r.delivery.version == 2]
    assert v2 and all(r.delivery.state is S.CANCELLED for r in v2)
    cancels = [r for r in rows if r.msg_type == "cancel"]
    assert sorted(r.delivery.recipient_id for r in cancels) == sorted(sent_to)
    assert late[0] not in [r.delivery.recipient_id for r in cancels]
    await world.drain()
    assert sorted(o.address for o in world.channels["sms"].sent[-2:]) == ["+8613800000001", "+8613800000002"]
    # a cancelled warning can be neither updated nor cancelled again
    assert (await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", body()))[0] == 409
    assert (await post(world, "issuer", f"/api/v1/warnings/{w['id']}/cancel", {}))[0] == 409


async def test_cancelling_an_unapproved_draft_sends_nothing(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body(level="red"))
    _, c = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/cancel", {})
    assert c["state"] == "cancelled"
    assert await world.deliveries(w["id"]) == []


async def test_expiry_stops_pending_sends(world: World, clock: Any) -> None:
    await world.seed([person(1, VILLAGE_A)])
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    _, w = await post(world, "issuer", "/api/v1/warnings", body(expires=expires))
    clock.advance(3601)
    assert await world.services.lifecycle.expire_due() == [w["id"]]
    record = await world.services.lifecycle.get(w["id"])
    assert record.state.value == "expired"
    rows = await world.deliveries(w["id"])
    assert [r.delivery.state for r in rows] == [S.EXPIRED]
    await world.drain()
    assert world.channels["sms"].sent == []
    counts = await world.services.deliveries.counts(w["id"])
    assert counts["queued"] == 0 and counts["failed"] == 1


async def test_exercise_is_marked_and_queued_last(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body(status="Exercise"))
    record = await world.services.lifecycle.get(w["id"])
    assert w["exercise"] is True and priority_of(record) == 4


async def test_test_status_never_reaches_a_provider(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body(status="Test"))
    assert await world.deliveries(w["id"]) == []
    await world.drain()
    assert world.channels["sms"].sent == []


async def test_roles_filter_and_polygon(world: World) -> None:
    inside = await world.seed([person(1, OUTSIDE, "reservoir_keeper", loc=(31.10, 105.10))])
    await world.seed([person(2, OUTSIDE, "cadre", loc=(31.10, 105.10)), person(3, OUTSIDE, "reservoir_keeper",
                                                                            loc=(32.5, 106.5))])
    polygon = [[31.0, 105.0], [31.0, 105.2], [31.2, 105.2], [31.2, 105.0]]
    _, w = await post(world, "issuer", "/api/v1/warnings", body(areas=[], polygon=polygon, roles=["reservoir_keeper"]))
    rows = await world.deliveries(w["id"])
    assert [r.delivery.recipient_id for r in rows] == inside


async def test_record_export(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    resp = await world.client.get(f"/api/v1/warnings/{w['id']}/record", headers=auth("approver"))
    data = await resp.json()
    assert data["warning"]["id"] == w["id"] and data["versions"][0]["version"] == 1
    assert [e["action"] for e in data["audit"]][:2] == ["draft", "issue"]
    csv_resp = await world.client.get(f"/api/v1/warnings/{w['id']}/record?format=csv", headers=auth("approver"))
    text = await csv_resp.text()
    assert "draft" in text and csv_resp.headers["Content-Type"].startswith("text/csv")
    assert (await world.client.get(f"/api/v1/warnings/{w['id']}/record", headers=auth("viewer"))).status == 403
