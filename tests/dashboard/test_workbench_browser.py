"""The workbench in a real headless Chromium: draft with the preview, approve from the inbox, watch coverage move,
cancel; a rejection; a viewer; phone (390 px) and desk (1400 px) widths. Screenshots go to tests/.artifacts/."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth
from tests.dashboard.cdp import CHROMIUM, Page, artifacts_dir, headless
from tests.dashboard.conftest import World, delivered
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, person
from warning.clock import FakeClock
from warning.web.dashboard_session import issue_login_link

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (scripts/test.sh does)"),
              pytest.mark.timeout(180)]
WIDTHS = (390, 1400)


async def seed(world: World) -> list[str]:
    """Five people of 潼川镇 with coordinates (two cadres: red calls them too)."""
    return await world.seed([person(1, VILLAGE_A, loc=(31.09, 105.08)), person(2, VILLAGE_A, "cadre", loc=(31.10, 105.09)),
                             person(3, TONGCHUAN, loc=(31.08, 105.10)), person(4, TONGCHUAN, "cadre", loc=(31.11, 105.07)),
                             person(5, VILLAGE_A, loc=(31.095, 105.095))])


class Browser:
    """One Chromium, signed in as whoever a one-time link names."""

    def __init__(self, world: World, page: Page) -> None:
        self.world, self.page = world, page
        self.base = str(world.client.make_url("")).rstrip("/")

    async def sign_in(self, who: str, path: str) -> None:
        link = await issue_login_link(self.world.client.app, who, next_path=path)
        await self.page.goto(self.base + link)
        assert await self.page.evaluate("location.pathname") == path.split("?")[0]

    async def live(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Wait for the page to show something that arrives live; the fake clock moves so the stream may send."""
        clock = self.world.services.clock
        assert isinstance(clock, FakeClock)
        async with asyncio.timeout(timeout_s):
            while not (value := await self.page.evaluate(expression)):
                clock.advance(0.3)
                await asyncio.wait({asyncio.get_running_loop().create_future()}, timeout=0.05)
        return value

    async def both_widths(self, name: str) -> None:
        """At a phone's and a desk's width: no sideways scrolling of the page; a screenshot of each."""
        for width in WIDTHS:
            await self.page.width(width)
            scroll, inner = await self.page.overflow_x()
            assert scroll <= inner, f"{name} at {width} px scrolls sideways: {scroll} > {inner}"
            small = await self.page.evaluate(
                "[...document.querySelectorAll('main button, main .button, main summary.button')]"
                ".filter(b => b.offsetParent !== null && b.getBoundingClientRect().height < 40).length")
            assert small == 0, f"{name} at {width} px: {small} buttons too small to touch"
            await self.page.screenshot(artifacts_dir("workbench") / f"{name}-{width}.png", full=True)
        await self.page.width(1400)


@pytest.fixture
async def browser(world: World, tmp_path: Path) -> Any:
    async with headless(tmp_path / "profile", width=1400) as page:
        await page.call("Page.enable")
        await page.accept_dialogs()
        yield Browser(world, page)


async def test_issuer_drafts_second_person_approves_coverage_moves_issuer_cancels(world: World, browser: Browser
                                                                                 ) -> None:
    page = browser.page
    ids = await seed(world)
    await browser.sign_in("issuer", "/dashboard/draft")
    await page.fill("#event", "rainstorm")
    assert await page.evaluate("document.querySelector('.level-choice[data-level=blue]').hidden") is False
    await page.click("input[name=level][value=red]")
    await page.click(f"input.area-town[value='{TONGCHUAN}']")
    # headline and instruction proposed, the preview beside the form
    assert await page.wait_for("document.getElementById('headline').value === '潼川镇暴雨红色预警'")
    guide = world.services.event_types["rainstorm"].guide_zh
    assert await page.evaluate("document.getElementById('instruction').value") == guide
    assert await page.wait_for("document.getElementById('pv-people') && document.getElementById('pv-people').textContent === '5'")
    sms = await page.text("#preview-texts .msg[data-channel=sms] pre")
    assert sms is not None and sms.startswith("【三台县应急管理局】") and guide in sms
    assert await page.text("#submit") == "提交审签"
    await page.fill("#description", "预计未来3小时潼川镇降雨量将达100毫米以上。")
    await browser.both_widths("draft")
    await page.submit("#submit")
    assert await page.evaluate("location.search") == "?done=submitted"
    wid = str(await page.evaluate("document.getElementById('cov').dataset.id"))
    assert "等待审签" in (await page.text("#pending") or "")
    assert await page.evaluate("document.getElementById('regroup')") is None  # no "please reload" banner at all

    # a second person approves from the inbox, the version reviewed
    await browser.sign_in("approver", "/dashboard/approvals")
    assert await page.evaluate(f"document.getElementById('w-{wid}').dataset.version") == "1"
    assert "潼川镇暴雨红色预警" in (await page.text(f"#w-{wid}") or "")
    await browser.both_widths("approvals")
    await page.submit(f"#w-{wid} .approve-form button[type=submit]")
    assert await page.evaluate("location.pathname + location.search") == f"/dashboard/warnings/{wid}?done=approved"

    # coverage moves live: sent, then delivered and confirmed; the unconfirmed list follows, no reload
    marker = await page.evaluate("window.__same = 7")
    await world.drain()
    messages = len(await world.deliveries(wid))
    assert messages == 10  # red: an SMS and a call to each of the five (monitors and cadres are called)
    assert await browser.live(f"document.querySelector('[data-k=\"sent\"]').textContent === '{messages}'")
    assert await page.text("[data-k=targeted]") == "5"  # people and messages apart
    rows = [r for r in await world.deliveries(wid) if r.delivery.kind == "sms"]
    await delivered(world, rows)
    record = await world.services.lifecycle.get(wid)
    for rid in ids[:2]:
        await world.services.ledger.acknowledge(record, rid, via="sms")
    assert await browser.live("document.querySelector('[data-k=\"acked\"]').textContent === '2'")
    assert await browser.live("document.getElementById('unconfirmed-count').textContent === '3'")
    assert await browser.live("document.querySelectorAll('#people-map .dot.confirmed').length === 2")
    assert await page.evaluate("window.__same") == marker
    assert "刷新" not in (await page.text("main") or "")
    await browser.both_widths("warning")

    # the issuer cancels with a reason
    await browser.sign_in("issuer", f"/dashboard/warnings/{wid}")
    await page.click("#cancel-box summary")
    await page.fill("#cancel-reason", "降雨已结束，险情解除")
    await page.submit("#cancel-form button[type=submit]")
    assert await page.evaluate("location.search") == "?done=cancelled"
    assert await page.text("[data-k=state]") == "已解除"
    cancelled = await world.services.lifecycle.get(wid)
    assert cancelled.state.value == "cancelled" and cancelled.content.note == "降雨已结束，险情解除"
    await browser.sign_in("viewer", f"/dashboard/warnings/{wid}/approval-form")
    assert "approver" in (await page.text("#sheet-approver") or "") and "issuer" in (await page.text("#sheet-drafter") or "")
    await browser.both_widths("approval-form")


async def test_a_rejection_reaches_the_drafter_and_a_viewer_sees_no_action(world: World, browser: Browser) -> None:
    page = browser.page
    await seed(world)
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "flash_flood", "level": "orange", "headline": "潼川镇山洪橙色预警", "instruction": "远离山洪沟。",
        "areas": [TONGCHUAN]})
    wid = (await resp.json())["id"]
    # a viewer: the pages, and not one button but signing out
    for path in ("/dashboard", "/dashboard/approvals", f"/dashboard/warnings/{wid}"):
        await browser.sign_in("viewer", path)
        forms = await page.evaluate("[...document.querySelectorAll('form')].map(f => f.getAttribute('action'))")
        assert forms == ["/logout"], (path, forms)
        buttons = await page.evaluate("[...document.querySelectorAll('main button, main a.button, main summary.button')]"
                                      ".map(b => b.textContent.trim())")
        assert buttons == [], (path, buttons)
        assert await page.evaluate("!!document.querySelector('[data-nav=draft]')") is False
    await browser.both_widths("viewer-warning")
    # the approver rejects with a reason
    await browser.sign_in("approver", "/dashboard/approvals")
    await page.click(f"#w-{wid} .reject-box summary")
    await page.fill(f"#w-{wid} .reject-form textarea", "区域应包括芦溪镇，请修改后重新提交")
    await page.submit(f"#w-{wid} .reject-form button[type=submit]")
    assert await page.evaluate("location.search") == "?done=rejected"
    # the drafter sees the reason on the warning, and can start again from it
    await browser.sign_in("issuer", f"/dashboard/warnings/{wid}")
    assert await page.text("#reject-reason") == "区域应包括芦溪镇，请修改后重新提交"
    assert await page.text("[data-k=state]") == "已驳回"
    assert await page.evaluate("!!document.getElementById('cancel-form')") is False
    await browser.both_widths("rejected")
    await page.goto(browser.base + f"/dashboard/draft?from={wid}")
    assert await page.evaluate("document.getElementById('headline').value") == "潼川镇山洪橙色预警"
    assert await page.wait_for("document.getElementById('pv-people') && document.getElementById('pv-people').textContent === '5'")


async def test_the_preview_warns_of_a_long_sms_and_of_nobody_to_receive_it(world: World, browser: Browser) -> None:
    page = browser.page
    await seed(world)
    await browser.sign_in("issuer", "/dashboard/draft?lang=en")
    await page.fill("#event", "rainstorm")
    await page.click("input[name=level][value=red]")
    await page.click("input.area-village[value='510722107202']")  # 玉林村: nobody lives there in the registry
    assert await page.wait_for("!!document.querySelector('#preview-problems [data-problem=empty_audience]')")
    assert await page.text("#submit") == "Submit for approval"
    await page.click("#area-county")  # the whole county in one click
    assert await page.evaluate("[...document.querySelectorAll('.area-town')].every(b => b.checked && b.disabled)")
    await page.fill("#description", "持续强降雨，山洪、滑坡、泥石流风险极高，" * 8)
    await page.fill("#instruction", "立即停止户外活动，转移到安全地带，" * 12)  # the short form is too long too
    assert await page.wait_for("!!document.querySelector('#preview-problems [data-problem=sms_too_long]')")
    assert await page.wait_for("!!document.querySelector('#submit-summary [data-warn=sms_too_long]')")
    assert await page.evaluate("document.querySelector('#preview-problems [data-problem=empty_audience]')") is None
    await browser.both_widths("draft-warnings")
