"""The workbench's forms over HTTP: CSRF, roles per action, what each role is shown, the forms' effects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth, make_settings
from tests.dashboard.conftest import World, delivered, login
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, person
from warning.bootstrap import due_handlers
from warning.clock import FakeClock
from warning.errors import ConfigError
from warning.web.app import create_app

RED = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "instruction": "请立即转移。",
       "areas": [TONGCHUAN]}
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def csrf(world: World) -> str:
    """The signed-in session's CSRF token, from any page's meta tag."""
    found = _META.search(await (await world.client.get("/dashboard")).text())
    assert found is not None
    return found.group(1)


async def as_(world: World, who: str) -> str:
    world.client.session.cookie_jar.clear()
    assert (await login(world.client, who)).status == 303
    return await csrf(world)


async def pending(world: World, who: str = "issuer") -> str:
    await world.seed([person(1, VILLAGE_A, loc=(31.09, 105.09)), person(2, VILLAGE_A, "cadre", loc=(31.10, 105.10)),
                      person(3, VILLAGE_B)])
    resp = await world.client.post("/api/v1/warnings", json=RED, headers=auth(who))
    assert resp.status == 201
    return str((await resp.json())["id"])


def form(**kw: Any) -> dict[str, Any]:
    base = {"event": "rainstorm", "level": "red", "headline": "潼川镇暴雨红色预警", "description": "雨很大",
            "instruction": "请立即转移。", "areas": TONGCHUAN, "once": "form-once-0000000000001"}
    base.update(kw)
    return base


async def post(world: World, path: str, data: Any) -> Any:
    return await world.client.post(path, data=data, allow_redirects=False)


async def state(world: World, wid: str) -> tuple[str, int, list[str]]:
    record = await world.services.lifecycle.get(wid)
    return record.state.value, record.version, [e.action for e in await world.services.audit.entries(wid)]


async def test_every_form_action_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing(world: World) -> None:
    wid = await pending(world)
    before = await state(world, wid)
    count = len((await world.services.warnings.list())[0])
    await as_(world, "admin")  # may do everything: only the token is missing
    actions = [("/dashboard/draft", form()), (f"/dashboard/warnings/{wid}/update", form()),
               (f"/dashboard/warnings/{wid}/cancel", {"reason": "雨停"}),
               (f"/dashboard/warnings/{wid}/approve", {"version": "1"}),
               (f"/dashboard/warnings/{wid}/reject", {"version": "1", "reason": "不行"}),
               ("/dashboard/preview", form()), (f"/dashboard/warnings/{wid}/preview", form())]
    for path, data in actions:
        for token in (None, "forged-token", await csrf(world) + "x"):
            body = {**data, **({"csrf": token} if token is not None else {})}
            resp = await post(world, path, body)
            assert resp.status == 403, (path, token)
            assert "bad CSRF token" in await resp.text()
    # a malformed body is the sender's mistake: 400, never a 500
    for path in ("/dashboard/draft", "/dashboard/preview", f"/dashboard/warnings/{wid}/approve"):
        resp = await world.client.post(path, data=b"--x\r\nbroken", allow_redirects=False,
                                       headers={"Content-Type": "multipart/form-data"})  # no boundary
        assert resp.status == 400, path
    # a token of another session is no good either
    other = await as_(world, "issuer")
    await as_(world, "admin")
    assert (await post(world, f"/dashboard/warnings/{wid}/cancel", {"reason": "x", "csrf": other})).status == 403
    assert await state(world, wid) == before
    assert len((await world.services.warnings.list())[0]) == count


@pytest.mark.parametrize(("who", "allowed"), [
    ("viewer", set()),
    ("issuer", {"draft", "update", "cancel", "preview"}),
    ("approver", {"approve", "reject", "preview"}),
])
async def test_each_action_is_checked_by_role_on_the_server(world: World, who: str, allowed: set[str]) -> None:
    await pending(world, "issuer2")
    # one warning per action, drafted by someone else (no withdrawal of one's own), each waiting for approval
    ids = []
    for _ in range(4):
        resp = await world.client.post("/api/v1/warnings", json=RED, headers=auth("issuer2"))
        ids.append((await resp.json())["id"])
    wid = ids[0]
    token = await as_(world, who)
    actions = {"draft": ("/dashboard/draft", form(csrf=token)),
               "update": (f"/dashboard/warnings/{ids[0]}/update", form(csrf=token, headline="改")),
               "preview": ("/dashboard/preview", form(csrf=token)),
               "reject": (f"/dashboard/warnings/{ids[1]}/reject", {"csrf": token, "version": "1", "reason": "不行"}),
               "approve": (f"/dashboard/warnings/{ids[2]}/approve", {"csrf": token, "version": "1"}),
               "cancel": (f"/dashboard/warnings/{ids[3]}/cancel", {"csrf": token, "reason": "雨停"})}
    for action, (path, data) in actions.items():
        resp = await post(world, path, data)
        if action in allowed:
            assert resp.status in (200, 303), (action, resp.status, await resp.text())
        else:
            assert resp.status == 403, (action, resp.status)
            assert "不能进行此操作" in await resp.text() or (await resp.json())["error"] == "forbidden"
    for page in ("/dashboard/draft", f"/dashboard/warnings/{wid}/update"):
        status = (await world.client.get(page, allow_redirects=False)).status
        assert status == (200 if "draft" in allowed else 403), (page, status)


async def test_an_issuer_withdraws_only_their_own_draft_and_admin_break_glass_needs_a_reason(world: World) -> None:
    wid = await pending(world)
    token = await as_(world, "issuer2")
    resp = await post(world, f"/dashboard/warnings/{wid}/reject", {"csrf": token, "version": "1", "reason": "x"})
    assert resp.status == 403
    token = await as_(world, "admin")
    resp = await post(world, f"/dashboard/warnings/{wid}/approve",
                      {"csrf": token, "version": "1", "override": "1", "reason": "太短"})
    assert resp.status == 400 and "at least 10 characters" in await resp.text()
    token = await as_(world, "issuer")
    resp = await post(world, f"/dashboard/warnings/{wid}/reject", {"csrf": token, "version": "1", "reason": "写错了"})
    assert resp.status == 303 and resp.headers["Location"] == f"/dashboard/warnings/{wid}?done=withdrawn"
    assert (await state(world, wid))[0] == "rejected"


async def test_a_viewer_is_shown_no_action(world: World) -> None:
    wid = await pending(world)
    await as_(world, "viewer")
    pages = {"/dashboard": None, f"/dashboard/warnings/{wid}": None, "/dashboard/approvals": None}
    for path in pages:
        html = await (await world.client.get(path)).text()
        assert "<form" in html  # the sign-out form is there...
        assert re.findall(r'<form[^>]*action="([^"]+)"', html) == ["/logout"], path  # ...and no other
        for marker in ('href="/dashboard/draft', "/update", 'data-nav="draft"', "approve-form", "reject-form"):
            assert marker not in html, (path, marker)
    # the approver is shown approve and reject, not draft; the issuer the opposite
    await as_(world, "approver")
    html = await (await world.client.get("/dashboard/approvals")).text()
    assert "approve-form" in html and "reject-form" in html and 'data-nav="draft"' not in html
    assert "override-form" not in html
    await as_(world, "issuer")
    html = await (await world.client.get("/dashboard/approvals")).text()
    assert "approve-form" not in html and "reject-form" in html and "撤回" in html  # their own: withdraw
    html = await (await world.client.get(f"/dashboard/warnings/{wid}")).text()
    assert 'id="update-link"' in html and 'id="cancel-form"' in html
    await as_(world, "admin")
    html = await (await world.client.get("/dashboard/approvals")).text()
    assert "override-form" in html and "approve-form" in html


async def test_the_draft_form_creates_the_warning_once_with_its_fields(world: World, clock: FakeClock) -> None:
    await world.seed([person(1, VILLAGE_A), person(2, LUXI, "cadre")])
    token = await as_(world, "issuer")
    page = await (await world.client.get("/dashboard/draft")).text()
    assert json.dumps(world.services.event_types["rainstorm"].guide_zh) in page  # the guides, for the instruction
    data = form(csrf=token, level="yellow", areas=[TONGCHUAN, LUXI], roles=["cadre"], exercise="1",
                expires="2030-07-01T18:30")
    resp = await post(world, "/dashboard/draft", data)
    assert resp.status == 303
    wid = resp.headers["Location"].split("/")[-1].split("?")[0]
    assert resp.headers["Location"].endswith("?done=issued")  # yellow: no approval
    record = await world.services.lifecycle.get(wid)
    assert record.content.region_codes == (TONGCHUAN, LUXI) and record.roles == ("cadre",)
    assert record.is_exercise and record.drafter == "issuer"
    assert record.expires_at.isoformat() == "2030-07-01T18:30:00+08:00"  # typed in Beijing time
    # the same form sent again (a double tap, a retry): the same warning, nothing new
    again = await post(world, "/dashboard/draft", data)
    assert again.status == 303 and again.headers["Location"] == f"/dashboard/warnings/{wid}"
    assert len((await world.services.warnings.list())[0]) == 1


async def test_a_wrong_draft_comes_back_with_its_problems_and_its_values(world: World) -> None:
    token = await as_(world, "issuer")
    resp = await post(world, "/dashboard/draft", form(csrf=token, event="hail", level="blue", headline="冰雹测试标题"))
    assert resp.status == 400
    html = await resp.text()
    assert 'id="form-problems"' in html and "level" in html and 'value="冰雹测试标题"' in html
    assert (await world.services.warnings.list())[0] == []
    resp = await post(world, "/dashboard/draft", form(csrf=token, once="short"))
    assert resp.status == 400 and (await world.services.warnings.list())[0] == []


async def test_approve_from_the_inbox_sends_the_version_reviewed_and_a_stale_one_is_409(world: World) -> None:
    wid = await pending(world)
    token = await as_(world, "issuer")
    resp = await post(world, f"/dashboard/warnings/{wid}/update", form(csrf=token, headline="潼川镇暴雨红色预警（更正）"))
    assert resp.status == 303 and resp.headers["Location"].endswith("?done=update_pending")
    token = await as_(world, "approver")
    html = await (await world.client.get("/dashboard/approvals")).text()
    assert f'data-id="{wid}" data-version="2"' in html and "与第1版相比的改动" in html
    assert "潼川镇暴雨红色预警（更正）" in html and "<del>潼川镇暴雨红色预警</del>" in html  # the diff
    assert "【三台县应急管理局】" in html  # the preview's SMS text
    resp = await post(world, f"/dashboard/warnings/{wid}/approve", {"csrf": token, "version": "1"})
    assert resp.status == 409 and "version changed" in await resp.text()
    assert (await state(world, wid))[0] == "pending_approval"
    resp = await post(world, f"/dashboard/warnings/{wid}/approve", {"csrf": token, "version": "2"})
    assert resp.status == 303 and resp.headers["Location"] == f"/dashboard/warnings/{wid}?done=approved"
    record = await world.services.lifecycle.get(wid)
    assert record.state.value == "dispatching" and record.approver == "approver" and record.issued_version == 2


async def test_reject_from_the_inbox_shows_the_reason_to_the_drafter(world: World) -> None:
    wid = await pending(world)
    token = await as_(world, "approver")
    resp = await post(world, f"/dashboard/warnings/{wid}/reject", {"csrf": token, "version": "1", "reason": ""})
    assert resp.status == 400
    resp = await post(world, f"/dashboard/warnings/{wid}/reject", {"csrf": token, "version": "1",
                                                                  "reason": "区域应为芦溪镇"})
    assert resp.status == 303
    await as_(world, "issuer")
    html = await (await world.client.get(f"/dashboard/warnings/{wid}")).text()
    assert 'id="rejection"' in html and "区域应为芦溪镇" in html and "已驳回" in html
    assert f'href="/dashboard/draft?from={wid}"' in html and 'id="cancel-form"' not in html
    inbox = await (await world.client.get("/dashboard/approvals")).text()
    rejected = inbox.split('id="rejected"')[1]
    assert wid in rejected and "区域应为芦溪镇" in rejected
    redraft = await (await world.client.get(f"/dashboard/draft?from={wid}")).text()
    assert 'value="潼川镇暴雨红色预警"' in redraft


async def test_cancel_needs_a_reason_and_tells_who_had_it(world: World) -> None:
    await world.seed([person(1, VILLAGE_A)])
    resp = await world.client.post("/api/v1/warnings", json={**RED, "level": "blue"}, headers=auth("issuer"))
    wid = (await resp.json())["id"]
    await world.drain()
    token = await as_(world, "issuer")
    assert (await post(world, f"/dashboard/warnings/{wid}/cancel", {"csrf": token, "reason": " "})).status == 400
    page = await (await world.client.get(f"/dashboard/warnings/{wid}/update")).text()
    assert 'value="潼川镇暴雨红色预警"' in page and "第1版 → 第2版" in page  # prefilled with the current version
    resp = await post(world, f"/dashboard/warnings/{wid}/cancel", {"csrf": token, "reason": "雨已停"})
    assert resp.status == 303
    await world.drain()
    record = await world.services.lifecycle.get(wid)
    assert record.state.value == "cancelled" and record.content.note == "雨已停"
    assert any(r.msg_type == "cancel" for r in await world.deliveries(wid))
    assert (await world.client.get(f"/dashboard/warnings/{wid}/update")).status == 400  # closed


async def test_approval_sheet_names_drafter_approver_and_times_in_beijing_time(world: World,
                                                                                clock: FakeClock) -> None:
    wid = await pending(world)
    clock.advance(125)
    resp = await world.client.post(f"/api/v1/warnings/{wid}/approve", json={"version": 1}, headers=auth("approver"))
    assert resp.status == 200
    await as_(world, "viewer")
    html = await (await world.client.get(f"/dashboard/warnings/{wid}/approval-form")).text()
    assert "预警信息发布审批单" in html and "三台县应急管理局" in html and "@media print" in html
    entries = await world.services.audit.entries(wid)
    drafted, approved = entries[0].at, next(e.at for e in entries if e.action == "approve")
    from warning.web.dashboard import local_time

    drafter = html.split('id="sheet-drafter">')[1].split("</td>")[0]
    approver = html.split('id="sheet-approver">')[1].split("</td>")[0]
    assert "issuer" in drafter and local_time(drafted) in drafter
    assert "approver" in approver and local_time(approved) in approver and local_time(drafted) != local_time(approved)
    assert "潼川镇" in html and 'id="sheet-people">2<' in html  # planned for the two people of 潼川镇


async def test_panels_show_calls_due_and_taken_reports_needing_action_chart_and_map(world: World,
                                                                                 clock: FakeClock) -> None:
    wid = await pending(world)
    resp = await world.client.post(f"/api/v1/warnings/{wid}/approve", json={"version": 1}, headers=auth("approver"))
    assert resp.status == 200
    await world.drain()
    record = await world.services.lifecycle.get(wid)
    people = {r.name: r.delivery.recipient_id for r in await world.deliveries(wid)}
    await world.services.ledger.acknowledge(record, people["联系人1"], via="sms")
    await delivered(world, [r for r in await world.deliveries(wid) if r.name == "联系人2" and r.delivery.kind == "sms"])
    from warning.channel import InboundMessage

    await world.services.replies.handle(InboundMessage(channel="sms", sender="+8613800000002", to="1", text="桥被冲断了，有人被困"))
    await world.services.replies.handle(InboundMessage(channel="sms", sender="+8613800000002", to="1", text="雨小了"))
    clock.advance(301)
    await world.services.due.drain(due_handlers(world.services))  # the first step: call whoever has not confirmed
    await world.drain()
    await as_(world, "viewer")
    body = await (await world.client.get(f"/dashboard/warnings/{wid}/panels")).json()
    html = body["html"]
    assert set(html) == {"unconfirmed", "calls", "reports", "chart", "map", "tables"} and body["unconfirmed"] == 1
    calls = html["calls"]
    assert calls.count('class="done"') == 1 and calls.count('class="due"') == 2  # call done; supervisor, county due
    assert "电话叫应" in calls and "第1轮" in calls and "联系人2" in calls
    urgent = html["reports"].split('id="reports-urgent"')[1].split("</div>")[0]
    assert "冲断、被困" in urgent and "联系人2" in urgent and "潼川镇东街社区" in urgent and "雨小了" not in urgent
    assert "5分钟: 1" in html["chart"] and "15分钟: 1" in html["chart"]  # one confirmation, within five minutes
    dots = re.findall(r'class="dot (\w+)"', html["map"])
    assert sorted(dots) == ["confirmed", "delivered"]  # the two people with coordinates: one confirmed
    assert 'data-map="confirmed">1<' in html["map"]
    assert "138****0002" in html["unconfirmed"] and "+8613800000002" not in html["unconfirmed"]


async def test_bad_report_keywords_stop_the_start(tmp_path: Path) -> None:
    for bad in ("冲断", ["冲断", ""], ["x" * 21], [3]):
        with pytest.raises(ConfigError) as caught:
            create_app(make_settings(tmp_path, reports={"action_keywords": bad}))
        assert caught.value.key == "reports.action_keywords"


async def test_pages_in_english(world: World) -> None:
    wid = await pending(world)
    await as_(world, "approver")
    html = await (await world.client.get("/dashboard/approvals?lang=en")).text()
    assert '<html lang="en">' in html and "Waiting for approval" in html and "approver" in html
    html = await (await world.client.get(f"/dashboard/warnings/{wid}?lang=en")).text()
    assert "Call and confirm" in html and "People not yet confirmed" in html
    resp = await post(world, f"/dashboard/warnings/{wid}/approve?lang=en", {"csrf": await csrf(world), "version": "1"})
    assert resp.headers["Location"] == f"/dashboard/warnings/{wid}?done=approved&lang=en"  # the reader's language
    html = await (await world.client.get(resp.headers["Location"])).text()
    assert "approved: sending now" in html.split('id="done"')[1].split("</div>")[0]


async def test_map_draws_the_warning_polygon(world: World) -> None:
    await world.seed([person(1, VILLAGE_A, loc=(31.1, 105.1))])
    body = {**RED, "level": "blue", "areas": [], "polygon": [[31.0, 105.0], [31.2, 105.0], [31.2, 105.2]]}
    resp = await world.client.post("/api/v1/warnings", json=body, headers=auth("issuer"))
    wid = (await resp.json())["id"]
    await world.drain()
    await as_(world, "viewer")
    html = (await (await world.client.get(f"/dashboard/warnings/{wid}/panels")).json())["html"]["map"]
    assert html.count('class="outline"') == 1 and html.count('class="dot ') == 1
