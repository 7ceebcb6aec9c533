"""The two-person rule has no side doors: updates, the version under review, feeds as tokens, CAP follow-ups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contacts.store import RedisRegistry
from tests.conftest import TOKENS, auth, make_settings
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, World, WorldFactory, person
from warning.bootstrap import build_services
from warning.drafting import CN_TZ
from warning.errors import ConfigError
from warning.policy import load_feeds, load_policy

COUNTY = "510722"
#: feed tokens besides the test suite's own `feed`: `held` relays nothing by itself, `partial` blue and yellow
FEED_TOKENS = {"held": "test-feed-held-token-000", "partial": "test-feed-partial-token", "other": "test-feed-other-token-0"}
FEEDS = [{"name": "held", "auto_issue": []}, {"name": "partial", "auto_issue": ["blue", "yellow"]}]


def tokens() -> dict[str, Any]:
    from tests.conftest import ROLE_OF

    base = [{"name": n, "role": ROLE_OF.get(n, n), "token": t} for n, t in TOKENS.items()]
    return {"tokens": base + [{"name": n, "role": "feed", "token": t} for n, t in FEED_TOKENS.items()]}


def header(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {FEED_TOKENS[who]}"} if who in FEED_TOKENS else auth(who)


def body(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警",
                            "description": "预计未来3小时潼川镇降雨量将达100毫米以上。", "instruction": "请立即转移。",
                            "areas": [TONGCHUAN]}
    base.update(kw)
    return base


async def post(world: World, who: str, path: str, payload: Any = None) -> tuple[int, Any]:
    resp = await world.client.post(path, json=payload, headers=header(who))
    return resp.status, await resp.json()


async def versions_sent(world: World, wid: str) -> set[int]:
    return {r.delivery.version for r in await world.deliveries(wid)}


async def approved_red(world: World) -> str:
    """A red warning approved and handed to the channels."""
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1})
    assert status == 200 and ok["state"] == "dispatching"
    await world.drain()
    return str(w["id"])


# ---- manual updates ------------------------------------------------------------------------------------
async def test_test_status_updated_to_actual_at_red_waits_for_approval(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    status, w = await post(world, "issuer", "/api/v1/warnings", body(status="Test"))
    assert status == 201 and w["state"] == "active"  # a Test needs nobody: recorded, never sent
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", body(status="Actual"))
    assert status == 200 and up["state"] == "pending_approval" and up["version"] == 2
    assert await world.deliveries(w["id"]) == []
    await world.drain()
    assert world.channels["sms"].sent == []
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 2})
    assert status == 200 and ok["state"] == "dispatching" and ok["approver"] == "approver"
    assert await versions_sent(world, w["id"]) == {2}


async def test_update_changing_what_people_receive_at_red_waits(world: World) -> None:
    wid = await approved_red(world)
    before = len(world.channels["sms"].sent)
    whole_county = body(headline="全县暴雨红色预警", instruction="全县停课停工。", areas=[COUNTY])
    status, up = await post(world, "issuer", f"/api/v1/warnings/{wid}/update", whole_county)
    assert status == 200 and up["state"] == "pending_approval" and up["version"] == 2
    assert up["issued_version"] == 1 and up["drafter"] == "issuer"
    assert await versions_sent(world, wid) == {1}
    await world.drain()
    assert len(world.channels["sms"].sent) == before
    status, ok = await post(world, "approver", f"/api/v1/warnings/{wid}/approve", {"version": 2})
    assert status == 200 and ok["state"] == "dispatching" and ok["issued_version"] == 2
    assert await versions_sent(world, wid) == {1, 2}


@pytest.mark.parametrize(("change", "field"), [
    ({"event": "flash_flood"}, "event"), ({"level": "orange"}, "level"), ({"headline": "新标题"}, "headline"),
    ({"description": "新描述"}, "description"), ({"instruction": "新指引"}, "instruction"),
    ({"areas": [LUXI]}, "areas"), ({"polygon": [[31.0, 105.0], [31.0, 105.2], [31.2, 105.2]]}, "polygon"),
    ({"circle": {"lat": 31.1, "lon": 105.1, "radius_km": 5}}, "circle"), ({"roles": ["cadre"]}, "roles"),
    ({"sites": ["site-1"]}, "sites"), ({"expires": "later"}, "expires"),
])
async def test_each_field_people_receive_needs_approval_and_nothing_else_does(
        world: World, clock: Any, change: dict[str, Any], field: str) -> None:
    expires = (clock.now() + timedelta(hours=6)).astimezone(CN_TZ).replace(microsecond=0)
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body(expires=expires.isoformat()))
    assert (await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1}))[0] == 200
    changed = {**body(expires=expires.isoformat()), **change}
    if field == "expires":
        changed["expires"] = (expires + timedelta(hours=1)).isoformat()
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", changed)
    assert status == 200 and up["state"] == "pending_approval", field
    assert (await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 2}))[0] == 200
    # the same content again changes nothing people receive: it goes out without a second person
    status, again = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", changed)
    assert status == 200 and again["state"] == "dispatching" and again["version"] == 3


async def test_approve_updates_off_lets_content_changes_through_but_not_a_raise(make_world: WorldFactory) -> None:
    world = await make_world(policy={"red": {"approve_updates": False}, "orange": {"approve_updates": False}})
    wid = await approved_red(world)
    status, up = await post(world, "issuer", f"/api/v1/warnings/{wid}/update", body(headline="暴雨红色预警更新"))
    assert status == 200 and up["state"] == "dispatching" and up["version"] == 2
    assert await versions_sent(world, wid) == {1, 2}
    # raising orange → red still waits: no approved red stands behind it
    _, w = await post(world, "issuer", "/api/v1/warnings", body(level="orange"))
    await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1})
    status, up = await post(world, "issuer", f"/api/v1/warnings/{w['id']}/update", body(level="red"))
    assert status == 200 and up["state"] == "pending_approval"


async def test_approval_is_of_the_version_reviewed(world: World) -> None:
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    # the approver reads version 1; meanwhile another issuer widens it to the whole county
    status, up = await post(world, "issuer2", f"/api/v1/warnings/{w['id']}/update", body(areas=[COUNTY]))
    assert status == 200 and up["state"] == "pending_approval" and up["version"] == 2 and up["drafter"] == "issuer2"
    status, err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 1})
    assert status == 409 and err["error"] == "version changed" and "2" in err["detail"]
    status, err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {})
    assert status == 409 and err["error"] == "version changed"  # not the version first submitted
    status, err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve",
                             {"override": False, "version": 3})
    assert status == 409
    assert await world.deliveries(w["id"]) == []
    assert (await world.services.lifecycle.get(w["id"])).state.value == "pending_approval"
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 2})
    assert status == 200 and ok["version"] == 2 and ok["state"] == "dispatching"
    assert len({r.delivery.recipient_id for r in await world.deliveries(w["id"])}) == 2


async def test_whoever_updates_a_pending_draft_is_the_drafter_of_the_new_version(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    status, up = await post(world, "admin", f"/api/v1/warnings/{w['id']}/update", body(headline="改"))
    assert status == 200 and up["drafter"] == "admin"
    status, err = await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve", {"version": 2})
    assert status == 409 and err["error"] == "cannot approve own draft"
    status, ok = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": 2})
    assert status == 200 and ok["approver"] == "approver"


@pytest.mark.parametrize("version", ["1", 0, -1, True, 1.5, [1]])
async def test_a_bad_version_is_400_and_changes_nothing(world: World, version: Any) -> None:
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    status, err = await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve", {"version": version})
    assert status == 400 and err["detail"][0]["field"] == "version"
    assert (await world.services.lifecycle.get(w["id"])).state.value == "pending_approval"


async def test_break_glass_is_admin_only_with_a_reason_and_audited(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body())
    reason = "值班领导电话无法接通，情况紧急"
    assert (await post(world, "approver", f"/api/v1/warnings/{w['id']}/approve",
                       {"override": True, "reason": reason}))[0] == 403
    assert (await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve", {"override": True}))[0] == 400
    status, ok = await post(world, "admin", f"/api/v1/warnings/{w['id']}/approve",
                            {"override": True, "reason": reason, "version": 1})
    assert status == 200 and ok["override_reason"] == reason
    entries = await world.services.audit.entries(w["id"])
    override = [e for e in entries if e.action == "override"]
    assert len(override) == 1 and override[0].actor == "admin" and override[0].detail["reason"] == reason


async def test_two_approvers_at_once_one_wins_the_other_is_told_who(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    for _ in range(5):
        _, w = await post(world, "issuer", "/api/v1/warnings", body())
        path = f"/api/v1/warnings/{w['id']}/approve"
        (s1, r1), (s2, r2) = await asyncio.gather(post(world, "approver", path, {"version": 1}),
                                                  post(world, "approver2", path, {"version": 1}))
        assert sorted([s1, s2]) == [200, 409], (r1, r2)
        won, lost = (r1, r2) if s1 == 200 else (r2, r1)
        assert lost["error"] == "already approved" and won["approver"] in lost["detail"]
        actions = [e.action for e in await world.services.audit.entries(w["id"])]
        assert actions.count("approve") == 1 and actions.count("send") == 1


async def test_cancel_never_waits_and_reaches_whoever_had_the_live_version(world: World) -> None:
    wid = await approved_red(world)
    status, up = await post(world, "issuer", f"/api/v1/warnings/{wid}/update",
                            body(areas=[COUNTY], headline="全县暴雨红色预警"))
    assert status == 200 and up["state"] == "pending_approval"
    status, c = await post(world, "issuer", f"/api/v1/warnings/{wid}/cancel", {"reason": "雨停"})
    assert status == 200 and c["state"] == "cancelled" and c["version"] == 3
    cancels = [r for r in await world.deliveries(wid) if r.msg_type == "cancel"]
    assert sorted({r.delivery.recipient_id for r in cancels}) == sorted(
        {r.delivery.recipient_id for r in await world.deliveries(wid) if r.delivery.version == 1})
    cap = await (await world.client.get(f"/api/v1/warnings/{wid}/cap", headers=auth("viewer"))).text()
    # the cancellation names what people had, not the version nobody approved
    assert "潼川镇暴雨红色预警" in cap and "全县" not in cap


# ---- CAP: the feed is its token -------------------------------------------------------------------------
def cap(world: World, identifier: str, *, sender: str = "51072241600000", msg: str = "Alert",
        severity: str = "Orange", refs: str = "", area: str = TONGCHUAN, status: str = "Actual") -> bytes:
    now = world.services.clock.now().astimezone(CN_TZ).replace(microsecond=0)
    references = f"<references>{refs}</references>" if refs else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{sender}</sender><sent>{now.isoformat()}</sent>
  <status>{status}</status><msgType>{msg}</msgType><scope>Public</scope>{references}
  <info><language>zh-CN</language><category>Met</category><event>暴雨</event><urgency>Immediate</urgency>
    <severity>{severity}</severity><certainty>Likely</certainty>
    <expires>{(now + timedelta(hours=12)).isoformat()}</expires><senderName>县气象台</senderName>
    <headline>县气象台发布暴雨预警</headline>
    <area><areaDesc>潼川镇</areaDesc><geocode><valueName>GB2260</valueName><value>{area}</value></geocode></area>
  </info>
</alert>""".encode()


async def push(world: World, who: str, data: bytes, query: str = "") -> tuple[int, Any]:
    resp = await world.client.post(f"/api/v1/cap{query}", data=data,
                                   headers={**header(who), "Content-Type": "application/xml"})
    return resp.status, await resp.json()


def ref(world: World, record: Any) -> str:
    return f"{record.content.sender},{record.content.identifier},{record.content.sent.isoformat()}"


async def test_the_feed_is_the_token_and_no_query_changes_it(make_world: WorldFactory) -> None:
    world = await make_world(auth=tokens(), feeds=FEEDS)
    await world.seed([person(1, VILLAGE_A)])
    # `held` relays nothing by itself: without a query, and a query cannot make it someone else
    status, res = await push(world, "held", cap(world, "A1"))
    assert status == 202 and res["state"] == "pending_approval"
    for query in ("?feed=feed", "?feed=", "?feed=held"):
        status, err = await push(world, "held", cap(world, f"A2{query}"), query)
        assert status == 400 and err["error"] == "invalid query"
    # a feed token with no [[feeds]] entry relays every level, as the default `auto_issue` says
    status, res = await push(world, "feed", cap(world, "A3", severity="Red"))
    assert status == 202 and res["state"] == "dispatching"
    listing = await (await world.client.get("/api/v1/warnings", headers=auth("viewer"))).json()
    assert {(w["feed"], w["state"], w["drafter"]) for w in listing["items"]} == {
        ("held", "pending_approval", "feed:held"), ("feed", "dispatching", "feed:feed")}


async def test_levels_not_auto_issued_wait_for_a_second_person(make_world: WorldFactory) -> None:
    world = await make_world(auth=tokens(), feeds=FEEDS)
    await world.seed([person(1, VILLAGE_A)])
    status, yellow = await push(world, "partial", cap(world, "P1", severity="Yellow"))
    assert status == 202 and yellow["state"] == "dispatching"
    status, red = await push(world, "partial", cap(world, "P2", severity="Red"))
    assert status == 202 and red["state"] == "pending_approval"
    assert await world.deliveries(red["id"]) == []
    status, ok = await post(world, "approver", f"/api/v1/warnings/{red['id']}/approve", {"version": 1})
    assert status == 200 and ok["state"] == "dispatching"
    # a follow-up obeys the same rules at its level: yellow raised to red waits, the yellow stays live
    record = await world.services.lifecycle.get(yellow["id"])
    status, up = await push(world, "partial", cap(world, "P3", msg="Update", severity="Red", refs=ref(world, record)))
    assert status == 202 and up["id"] == yellow["id"] and up["state"] == "pending_approval"
    assert await versions_sent(world, yellow["id"]) == {1}
    status, ok = await post(world, "approver", f"/api/v1/warnings/{yellow['id']}/approve", {"version": 2})
    assert status == 200 and await versions_sent(world, yellow["id"]) == {1, 2}


async def test_a_feed_cannot_follow_up_a_manual_warning(make_world: WorldFactory) -> None:
    world = await make_world(auth=tokens(), feeds=FEEDS)
    await world.seed([person(1, VILLAGE_A)])
    _, w = await post(world, "issuer", "/api/v1/warnings", body(level="yellow"))
    await world.drain()
    record = await world.services.lifecycle.get(w["id"])
    for sender in ("51072241600000", record.content.sender):  # its own sender, or ours copied
        doc = cap(world, f"U-{sender}", sender=sender, msg="Update", severity="Red", refs=ref(world, record),
                  area=COUNTY)
        for _ in range(2):  # refused twice: nothing of the first attempt was kept (not even as a duplicate)
            status, err = await push(world, "feed", doc)
            assert status == 409 and err["error"] == "not the same sender"
    cancel = cap(world, "C1", msg="Cancel", refs=ref(world, record))
    assert (await push(world, "feed", cancel))[0] == 409
    after = await world.services.lifecycle.get(w["id"])
    assert (after.version, after.level.value, after.state.value) == (1, "yellow", "active")
    assert await versions_sent(world, w["id"]) == {1}
    assert [e.action for e in await world.services.audit.entries(w["id"])] == ["draft", "issue", "send", "issue"]


async def test_a_feed_cannot_follow_up_another_feeds_warning(make_world: WorldFactory) -> None:
    world = await make_world(auth=tokens(), feeds=FEEDS)
    await world.seed([person(1, VILLAGE_A)])
    _, first = await push(world, "feed", cap(world, "F1"))
    await world.drain()
    record = await world.services.lifecycle.get(first["id"])
    update = cap(world, "F2", msg="Update", severity="Red", refs=ref(world, record))
    assert (await push(world, "other", update))[0] == 409
    # the same feed with another CAP sender neither
    assert (await push(world, "feed", cap(world, "F3", sender="other-sender", msg="Update", severity="Red",
                                          refs=ref(world, record))))[0] == 409
    assert (await world.services.lifecycle.get(first["id"])).version == 1
    # the same feed and sender may
    status, up = await push(world, "feed", update)
    assert status == 202 and up["id"] == first["id"] and up["state"] == "dispatching"
    status, c = await push(world, "feed", cap(world, "F4", msg="Cancel", refs=ref(world, record)))
    assert status == 202 and c["state"] == "cancelled"


async def test_a_feed_cancellation_never_waits(make_world: WorldFactory) -> None:
    world = await make_world(auth=tokens(), feeds=FEEDS)
    await world.seed([person(1, VILLAGE_A)])
    _, first = await push(world, "held", cap(world, "H1", severity="Red"))
    await post(world, "approver", f"/api/v1/warnings/{first['id']}/approve", {"version": 1})
    await world.drain()
    record = await world.services.lifecycle.get(first["id"])
    status, c = await push(world, "held", cap(world, "H2", msg="Cancel", refs=ref(world, record)))
    assert status == 202 and c["state"] == "cancelled"
    assert [r.delivery.recipient_id for r in await world.deliveries(first["id"]) if r.msg_type == "cancel"]


async def test_an_admin_pushing_cap_is_held_to_the_level_policy(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    status, res = await push(world, "admin", cap(world, "AD1", severity="Red"))
    assert status == 202 and res["state"] == "pending_approval"
    status, res = await push(world, "admin", cap(world, "AD2", severity="Blue"))
    assert status == 202 and res["state"] == "dispatching"


# ---- configuration --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("feeds", "key"), [
    ([{"name": "a", "auto_issue": ["purple"]}], "feeds[0].auto_issue"),
    ([{"name": "a", "auto_issue": "red"}], "feeds[0].auto_issue"),
    ([{"auto_issue": []}], "feeds[0].name"),
    ([{"name": "a"}, {"name": "a"}], "feeds[1].name"),
    ([{"name": "a", "uri": "http://x"}], "feeds[0].uri"),  # an unknown key (url is a polled feed's)
    (["a"], "feeds[0]"),
    ({"name": "a"}, "feeds"),
])
def test_feeds_are_checked_at_start(feeds: Any, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_feeds(feeds, "my.toml")
    assert err.value.file == "my.toml" and err.value.key == key


def test_approve_updates_defaults_to_approval_and_is_checked() -> None:
    policy = load_policy({"yellow": {"approval": True}}, roles=set())
    assert [policy.for_level(lv).approve_updates for lv in ("blue", "yellow", "orange", "red")] == [
        False, True, True, True]
    assert load_policy({"red": {"approve_updates": False}}, roles=set()).for_level("red").approve_updates is False
    with pytest.raises(ConfigError) as err:
        load_policy({"red": {"approve_updates": "yes"}}, roles=set(), source="my.toml")
    assert err.value.key == "policy.red.approve_updates"
    assert load_feeds([{"name": "a"}])["a"].auto_issue == frozenset({"blue", "yellow", "orange", "red"})


async def test_a_bad_feeds_entry_stops_the_service_at_start(redis: Any, clock: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, feeds=[{"name": "cma", "auto_issue": ["red", "crimson"]}])
    with pytest.raises(ConfigError) as err:  # the services every command builds at start
        build_services(settings, redis=redis, clock=clock, directory=RedisRegistry(redis), channels={})
    assert err.value.key == "feeds[0].auto_issue" and "crimson" in err.value.reason
