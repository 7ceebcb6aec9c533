"""POST /api/v1/warnings/{id}/reject: a refused draft is closed, a refused update leaves the live version; 409s."""

from __future__ import annotations

from typing import Any

from tests.conftest import auth
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person

RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "instruction": "请立即转移。",
       "areas": [TONGCHUAN]}


async def post(world: World, who: str, path: str, payload: Any = None) -> tuple[int, Any]:
    resp = await world.client.post(path, json=payload, headers=auth(who))
    return resp.status, await resp.json()


async def pending(world: World, body: dict[str, Any] | None = None) -> str:
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    status, w = await post(world, "issuer", "/api/v1/warnings", body or RED)
    assert status == 201 and w["state"] == "pending_approval"
    return str(w["id"])


async def audit_actions(world: World, wid: str) -> list[tuple[str, str, dict[str, Any]]]:
    entries = await world.services.audit.entries(wid)
    return [(e.action, e.actor, dict(e.detail)) for e in entries]


async def test_reject_closes_a_new_warning_with_its_reason_and_nothing_is_sent(world: World) -> None:
    wid = await pending(world)
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject",
                             {"reason": "区域有误，应为芦溪镇", "version": 1})
    assert status == 200 and doc["state"] == "rejected" and doc["version"] == 1 and doc["submitted_version"] == 0
    action, actor, detail = (await audit_actions(world, wid))[-1]
    assert (action, actor, detail["reason"], detail["state"], detail["drafter"]) == (
        "reject", "approver", "区域有误，应为芦溪镇", "rejected", "issuer")
    assert "withdrawn" not in detail
    await world.drain()
    assert await world.deliveries(wid) == [] and world.channels["sms"].sent == []
    # closed: no approval, no update, no second rejection; not among the active warnings
    for path, payload, error in (("approve", {"version": 1}, "not pending approval"),
                                 ("update", RED, "warning closed"),
                                 ("reject", {"reason": "again"}, "not pending approval")):
        status, doc = await post(world, "approver" if path != "update" else "issuer",
                                 f"/api/v1/warnings/{wid}/{path}", payload)
        assert (status, doc["error"]) == (409, error), path
    assert wid not in await world.services.warnings.active_ids()
    listed = await (await world.client.get("/api/v1/warnings?state=rejected", headers=auth("viewer"))).json()
    assert [w["id"] for w in listed["items"]] == [wid]


async def test_drafter_may_withdraw_but_no_other_issuer_rejects(world: World) -> None:
    wid = await pending(world)
    status, doc = await post(world, "issuer2", f"/api/v1/warnings/{wid}/reject", {"reason": "不是我的"})
    assert status == 403
    status, doc = await post(world, "issuer", f"/api/v1/warnings/{wid}/reject", {"reason": "写错了，撤回"})
    assert status == 200 and doc["state"] == "rejected"
    assert (await audit_actions(world, wid))[-1][2]["withdrawn"] is True


async def test_reject_roles_and_bad_bodies_change_nothing(world: World) -> None:
    wid = await pending(world)
    for who in ("viewer", "feed"):
        assert (await post(world, who, f"/api/v1/warnings/{wid}/reject", {"reason": "x"}))[0] == 403, who
    bad = [None, [], {"reason": ""}, {"reason": "   "}, {"reason": 5}, {"reason": "x" * 501},
           {"reason": "ok", "version": 0}, {"reason": "ok", "version": "1"}, {"reason": "ok", "version": True}]
    for payload in bad:
        status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject", payload)
        assert status == 400, payload
    for raw in (b"{oops", b"[" * 100_000 + b"]" * 100_000, b'{"reason": NaN}', b"\xff\xfe"):
        resp = await world.client.post(f"/api/v1/warnings/{wid}/reject", data=raw, headers=auth("approver"))
        assert resp.status == 400, raw[:20]
        resp = await world.client.post("/api/v1/warnings/preview", data=raw, headers=auth("approver"))
        assert resp.status == 400, raw[:20]
    assert (await post(world, "approver", "/api/v1/warnings/nope/reject", {"reason": "x"}))[0] == 404
    record = await world.services.lifecycle.get(wid)
    assert record.state.value == "pending_approval" and [a for a, _, _ in await audit_actions(world, wid)] == ["draft"]
    status, doc = await post(world, "admin", f"/api/v1/warnings/{wid}/reject", {"reason": "管理员驳回"})
    assert status == 200 and doc["state"] == "rejected"


async def test_reject_409_when_the_version_reviewed_is_no_longer_pending(world: World) -> None:
    wid = await pending(world)
    status, up = await post(world, "issuer", f"/api/v1/warnings/{wid}/update", {**RED, "headline": "改过的标题"})
    assert status == 200 and up["version"] == 2 and up["state"] == "pending_approval"
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject", {"reason": "不行", "version": 1})
    assert status == 409 and doc["error"] == "version changed"
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject", {"reason": "不行"})
    assert status == 409 and doc["error"] == "version changed"  # version 1 was submitted, 2 is pending
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject", {"reason": "不行", "version": 2})
    assert status == 200 and doc["state"] == "rejected"
    # approved warnings are not pending: nothing to reject
    wid2 = (await post(world, "issuer", "/api/v1/warnings", RED))[1]["id"]
    assert (await post(world, "approver", f"/api/v1/warnings/{wid2}/approve", {"version": 1}))[0] == 200
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid2}/reject", {"reason": "晚了"})
    assert (status, doc["error"]) == (409, "not pending approval")


async def test_a_rejected_update_leaves_the_live_version_live(world: World) -> None:
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    _, w = await post(world, "issuer", "/api/v1/warnings", {**RED, "roles": ["village_monitor"]})
    wid = w["id"]
    assert (await post(world, "approver", f"/api/v1/warnings/{wid}/approve", {"version": 1}))[0] == 200
    await world.drain()
    sent_before = len(world.channels["sms"].sent)
    status, up = await post(world, "issuer", f"/api/v1/warnings/{wid}/update",
                            {**RED, "areas": [TONGCHUAN, LUXI], "headline": "扩大范围", "roles": None})
    assert status == 200 and up["state"] == "pending_approval" and up["version"] == 2
    status, doc = await post(world, "approver", f"/api/v1/warnings/{wid}/reject", {"reason": "不必扩大", "version": 2})
    assert status == 200
    # the warning stands as version 1 said it: content, roles, approver; restated as version 3
    assert (doc["state"], doc["version"], doc["issued_version"], doc["headline"], doc["areas"], doc["roles"],
            doc["approver"]) == ("active", 3, 1, RED["headline"], [TONGCHUAN], ["village_monitor"], "approver")
    assert doc["identifier"] == w["identifier"]
    await world.drain()
    assert len(world.channels["sms"].sent) == sent_before  # the refused update went to nobody
    detail = (await audit_actions(world, wid))[-1][2]
    assert (detail["rejected_version"], detail["restored"], detail["reason"]) == (2, 1, "不必扩大")
    # it can still be updated and cancelled as before
    status, doc = await post(world, "issuer", f"/api/v1/warnings/{wid}/cancel", {"reason": "雨停"})
    assert status == 200 and doc["state"] == "cancelled"
