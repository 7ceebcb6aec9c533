"""A real headless Chromium signs in with a one-time link, opens a warning, and watches the numbers move live."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard.cdp import CHROMIUM, artifacts_dir, headless
from tests.dashboard.conftest import World, delivered, fan_out
from tests.warnings.conftest import LUXI
from warning.clock import FakeClock
from warning.web.dashboard_session import issue_login_link

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (scripts/test.sh does)"),
              pytest.mark.timeout(120)]


def _text(key: str) -> str:
    return f"(document.querySelector('[data-k=\"{key}\"]') || {{}}).textContent"


async def test_chromium_signs_in_and_sees_coverage_move_without_a_reload(world: World, tmp_path: Path) -> None:
    w = await fan_out(world)
    base = str(world.client.make_url("")).rstrip("/")
    page_path = f"/dashboard/warnings/{w['id']}"
    link = base + await issue_login_link(world.client.app, "viewer", next_path=page_path)
    async with headless(tmp_path / "profile") as page:
        await page.call("Page.enable")
        await page.call("Page.navigate", url=link)
        assert await page.wait_for("document.getElementById('cov') && document.getElementById('cov').dataset.live")
        assert await page.evaluate("location.pathname") == page_path
        assert await page.evaluate("document.getElementById('live').textContent") == "实时"
        shown = {k: await page.evaluate(_text(k)) for k in ("targeted", "delivered", "acked", f"by_region.{LUXI}.acked")}
        assert shown == {"targeted": "7", "delivered": "4", "acked": "2", f"by_region.{LUXI}.acked": "1"}
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read the session
        html = await page.evaluate("document.documentElement.outerHTML")
        assert "潼川镇" in html and "138****0002" in html and "+8613800000002" not in html
        marker = await page.evaluate("window.__loaded = 1")
        # the deliveries move: the page updates in place
        pending = [r for r in await world.deliveries(w["id"]) if r.delivery.state.value == "accepted"]
        await delivered(world, pending)
        clock = world.services.clock
        assert isinstance(clock, FakeClock)
        clock.advance(1)
        assert await page.wait_for(f"{_text('delivered')} === '7' && {_text(f'by_region.{LUXI}.delivered')} === '3'")
        assert await page.evaluate("window.__loaded") == marker  # same document: no reload
        width = await page.evaluate("document.querySelector('[data-bar=\"\"][data-of=\"delivered\"]').style.width")
        assert width == "100%"
        channel = await page.evaluate("document.querySelector('[data-bar=\"by_channel.sms\"]').style.width")
        assert channel == "100%"  # a channel's bar: delivered of sent
        shots = artifacts_dir()
        await page.screenshot(shots / "dashboard-warning.png")
        await page.call("Page.navigate", url=base + "/dashboard")
        assert await page.wait_for("document.querySelector('#warnings tbody tr[data-id]') !== null")
        await page.screenshot(shots / "dashboard-list.png")
    assert (shots / "dashboard-warning.png").stat().st_size > 10_000
