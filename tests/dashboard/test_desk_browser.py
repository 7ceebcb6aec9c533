"""The registry and duty pages in a real headless Chromium: a sheet upload with bad rows, contact search and edit, a
viewer without actions, the duty week; and every desk page at 390 px (a phone) and 1400 px (a desk) without the page
scrolling sideways. Screenshots at both widths are kept in tests/.artifacts/desk/ (git-ignored)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from contacts.demo import demo_roster, seed_demo
from tests.conftest import auth
from tests.contacts.helpers import csv_bytes
from tests.dashboard.cdp import CHROMIUM, Page, headless
from tests.dashboard.conftest import BLUE, World
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, person
from warning.web.dashboard_session import issue_login_link
from warning.web.keys import reference_key, registry_key

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (scripts/test.sh does)"),
              pytest.mark.timeout(240)]
#: screenshots for a person to look at; git-ignored
ARTIFACTS = Path(os.environ.get("WARNING_ARTIFACTS_DIR") or Path(__file__).resolve().parent.parent / ".artifacts") / "desk"
WIDTHS = (390, 1400)
NO_SIDEWAYS = "document.scrollingElement.scrollWidth <= innerWidth"


async def _county(world: World) -> None:
    """A small demo county: people, devices, hazard sites, two weeks of duty, and one warning sent."""
    app = world.client.app
    registry, ref = app[registry_key], app[reference_key]
    await seed_demo(registry, ref.regions, 80, now=world.services.clock.now(), roles=ref.roles.keys())
    officers = [c async for c in registry.iter_contacts() if c.role == "duty_officer"]
    leaders = [c async for c in registry.iter_contacts() if c.role == "cadre"]
    towns = [t.code for t in ref.regions.children("510722")]
    await world.services.duty.put(demo_roster("510722", towns, officers, leaders, date(2026, 6, 29), 7),
                                  world.services.clock.now())
    resp = await world.client.post("/api/v1/warnings", json=BLUE, headers=auth("issuer"))
    assert resp.status == 201
    await world.drain()


async def _sign_in(page: Page, world: World, who: str, path: str = "/dashboard") -> str:
    base = str(world.client.make_url("")).rstrip("/")
    await page.goto(base + await issue_login_link(world.client.app, who, next_path=path))
    assert await page.evaluate("location.pathname") == path.split("?")[0]
    return base


async def _look(page: Page, name: str) -> None:
    """At both widths: nothing scrolls sideways, controls are large enough to touch; a screenshot of each."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport(width, 900)
        assert await page.wait_for(f"innerWidth === {width}")
        overflow = await page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        assert overflow[0] <= overflow[1], (name, width, overflow)
        small = await page.evaluate(
            "Array.from(document.querySelectorAll('.desk .btn, .desk button'))"
            ".filter(b => b.offsetParent !== null && b.getBoundingClientRect().height < 44).map(b => b.textContent)")
        assert small == [], (name, width, small)
        await page.full_screenshot(ARTIFACTS / f"{name}-{width}.png")
    await page.set_viewport(1400, 900)


async def test_every_desk_page_fits_a_phone_and_a_desk(world: World, tmp_path: Path) -> None:
    await _county(world)
    async with headless(tmp_path / "profile", width=1400, height=900) as page:
        base = await _sign_in(page, world, "admin")
        await _look(page, "home")
        assert "当前值班" in await page.evaluate("document.getElementById('duty-now').innerText")
        contact = (await world.client.app[registry_key].page(None, 1))[0][0]
        site = (await world.client.app[registry_key].all_sites())[0]
        device = (await world.client.app[registry_key].all_devices())[0]
        for name, path in (("contacts", "/dashboard/contacts"), ("search", "/dashboard/contacts?q=王"),
                           ("contact-edit", f"/dashboard/contacts/{contact.id}/edit"),
                           ("contact-new", "/dashboard/contacts/new"), ("import", "/dashboard/contacts/import"),
                           ("devices", "/dashboard/devices"), ("device-edit", f"/dashboard/devices/{device.id}/edit"),
                           ("sites", "/dashboard/sites"), ("site-edit", f"/dashboard/sites/{site.id}/edit"),
                           ("duty", "/dashboard/duty"), ("duty-upload", "/dashboard/duty/upload"),
                           ("issue-log", "/dashboard/issue-log"), ("contacts-en", "/dashboard/contacts?lang=en")):
            await page.goto(base + path)
            assert await page.evaluate("document.querySelector('.desk') !== null"), path
            await _look(page, name)


async def test_a_sheet_with_bad_rows_shows_its_row_report_and_imports_the_good_rows(world: World,
                                                                                    tmp_path: Path) -> None:
    sheet = tmp_path / "名单.csv"
    sheet.write_bytes(csv_bytes([["姓名", "手机号码", "角色", "行政区划代码"],
                                 ["张一", "13900000011", "村社区中心户", VILLAGE_A],
                                 ["张二", "139000", "村社区中心户", VILLAGE_A],
                                 ["张三", "13900000013", "网格员", LUXI],
                                 ["张四", "13900000014", "乡长", TONGCHUAN]]))
    async with headless(tmp_path / "profile", width=390, height=900) as page:
        await _sign_in(page, world, "admin", "/dashboard/contacts/import")
        await page.set_files("#file", sheet)
        await page.click_and_wait("#import-form button[type=submit]")
        report = await page.evaluate("document.getElementById('import-report').innerText")
        rows = await page.evaluate("Array.from(document.querySelectorAll('#rejected tbody tr'))"
                                   ".map(r => Array.from(r.cells).map(c => c.innerText))")
        assert [r[0] for r in rows] == ["3", "5"] and "手机号码无效" in rows[0][1] and "角色未知" in rows[1][1]
        assert await page.evaluate("document.querySelector('[data-k=accepted]').textContent") == "2", report
        assert await page.evaluate(NO_SIDEWAYS)
        await _look(page, "import-report")
        await page.goto(str(world.client.make_url("/dashboard/contacts?q=张")))
        shown = await page.evaluate("Array.from(document.querySelectorAll('#contacts td.name')).map(c => c.innerText)")
        assert shown == ["张一", "张三"]


async def test_search_then_edit_a_contact(world: World, tmp_path: Path) -> None:
    await world.seed([replace(person(1, VILLAGE_A), name="王伟"), replace(person(2, LUXI), name="李娜")])
    async with headless(tmp_path / "profile", width=1400, height=900) as page:
        await _sign_in(page, world, "admin", "/dashboard/contacts")
        await page.type_into("#q", "0001")
        await page.click_and_wait("#contact-search button[type=submit]")
        assert await page.evaluate("document.getElementById('match-count').innerText") == "找到 1 人"
        await page.click_and_wait("#contacts a.btn[href$='/edit']")
        assert await page.evaluate("document.getElementById('f-name').value") == "王伟"
        await page.type_into("#f-name", "王伟（网格长）")
        await page.evaluate("document.getElementById('f-role').value = 'grid_informant'")
        await page.click_and_wait("#contact-form button[type=submit]")
        assert "已保存" in await page.evaluate("document.getElementById('done').innerText")
        # a bad number is refused on the same form, with the reason beside the field
        await page.type_into("#f-phone", "12345")
        await page.click_and_wait("#contact-form button[type=submit]")
        assert "手机号码无效" in await page.evaluate("document.querySelector('[data-err=phone]').innerText")
    contact = await world.client.app[registry_key].by_phone("+8613800000001")
    assert contact is not None and (contact.name, contact.role) == ("王伟（网格长）", "grid_informant")


async def test_a_viewer_sees_no_action_it_cannot_use(world: World, tmp_path: Path) -> None:
    await _county(world)
    async with headless(tmp_path / "profile", width=390, height=900) as page:
        base = await _sign_in(page, world, "viewer")
        assert await page.evaluate("document.querySelector('a[href^=\"/dashboard/issue-log\"]')") is None
        for path in ("/dashboard/contacts", "/dashboard/devices", "/dashboard/sites", "/dashboard/duty"):
            await page.goto(base + path)
            actions: list[Any] = await page.evaluate(
                "Array.from(document.querySelectorAll('main form[method=post], main button, main a[href]'))"
                ".filter(e => !e.closest('#contact-search'))"
                ".filter(e => e.tagName !== 'A' || /\\/(new|edit|active|import|upload)|template/.test(e.getAttribute('href')))"
                ".map(e => e.outerHTML.slice(0, 80))")
            assert actions == [], (path, actions)
            text = await page.evaluate("document.body.innerText")
            assert "+86" not in text, path  # phone numbers masked
        await _look(page, "viewer-duty")


async def test_the_duty_week_by_county_and_township(world: World, tmp_path: Path) -> None:
    await _county(world)
    async with headless(tmp_path / "profile", width=1400, height=900) as page:
        base = await _sign_in(page, world, "issuer", "/dashboard/duty")
        regions = await page.evaluate("Array.from(document.querySelectorAll('#week tbody tr')).map(r => r.dataset.region)")
        assert regions[0] == "510722" and TONGCHUAN in regions and len(regions) == 11
        days = await page.evaluate("Array.from(document.querySelectorAll('#week thead th[data-date]'))"
                                   ".map(th => th.dataset.date)")
        assert days == [f"2026-06-{d}" for d in (29, 30)] + [f"2026-07-0{d}" for d in range(1, 6)]
        county_today = await page.evaluate("document.querySelector('#week tr[data-region=\"510722\"] "
                                           "td[data-date=\"2026-07-01\"]').innerText")
        assert "08:00–20:00" in county_today and "值班员" in county_today and "带班领导" in county_today
        assert await page.evaluate("document.querySelectorAll('#week .shift.now').length") >= 2
        await page.click_and_wait("#next-week")
        assert await page.evaluate("document.getElementById('duty-page').dataset.monday") == "2026-07-06"
        assert await page.evaluate("document.querySelectorAll('#week .shift').length") == 0  # the roster ends
        await page.goto(base + "/dashboard/duty")
        await page.set_viewport(390, 900)
        assert await page.wait_for("getComputedStyle(document.getElementById('week-list')).display === 'block'")
        first = await page.evaluate("document.querySelector('#week-list section').dataset.date")
        assert first == "2026-07-01"  # a phone shows today first
        assert await page.evaluate(NO_SIDEWAYS)
