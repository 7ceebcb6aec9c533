"""The 发布记录台账: the warnings of a period with issuer, approver, Beijing times, audience, coverage and confirmation
rates, on a page and as XLSX cells; for admins, issuers and approvers only."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.conftest import auth
from tests.dashboard.conftest import BLUE, World, fan_out
from tests.dashboard.desk import rows_of, sign_in, workbook
from tests.warnings.conftest import TONGCHUAN
from warning.clock import FakeClock
from warning.issue_log import COLUMNS

RED = {**BLUE, "level": "red", "headline": "=潼川镇暴雨红色预警", "areas": [TONGCHUAN], "roles": ["cadre"]}


async def _warnings(world: World, clock: FakeClock) -> tuple[dict[str, Any], dict[str, Any]]:
    """A blue warning sent at 08:00 Beijing (fan_out); a red one drafted at 08:10, approved at 08:15, cancelled at
    09:00; and one drafted the next day."""
    blue = await fan_out(world)
    clock.advance(600)
    red = await (await world.client.post("/api/v1/warnings", json=RED, headers=auth("issuer2"))).json()
    clock.advance(300)
    resp = await world.client.post(f"/api/v1/warnings/{red['id']}/approve", json={"version": 1},
                                   headers=auth("approver"))
    assert resp.status == 200, await resp.text()
    await world.drain()
    clock.advance(2700)
    resp = await world.client.post(f"/api/v1/warnings/{red['id']}/cancel", json={"reason": "雨停"},
                                   headers=auth("issuer"))
    assert resp.status == 200, await resp.text()
    clock.advance(86400)
    resp = await world.client.post("/api/v1/warnings", json={**BLUE, "headline": "次日蓝色预警"}, headers=auth("issuer"))
    assert resp.status == 201
    return blue, red


async def test_the_page_lists_the_periods_warnings_with_who_and_when(world: World, clock: FakeClock) -> None:
    blue, red = await _warnings(world, clock)
    await sign_in(world.client, "approver")
    resp = await world.client.get("/dashboard/issue-log?from=2026-07-01&to=2026-07-01")
    html = await resp.text()
    assert resp.status == 200
    rows = rows_of(html, "issue-log")
    assert len(rows) == 2 and "次日蓝色预警" not in html  # the next day's is outside the period
    first, second = rows
    assert first[1].startswith("全县暴雨蓝色预警") and first[3] == "issuer 审签：无需审签"
    assert first[4] == "起草 2026-07-01 08:00:00 发布 2026-07-01 08:00:00"  # drafted and issued at once, Beijing time
    assert first[6] == "7" and first[7] == "57.1% 4/7" and first[8] == "28.6% 2/7"  # 4 of 7 messages, 2 of 7 people
    assert second[1].startswith("=潼川镇暴雨红色预警") and second[2] == "已解除"
    assert second[3] == "issuer2 审签：approver"
    assert second[4] == ("起草 2026-07-01 08:10:00 审签 2026-07-01 08:15:00 发布 2026-07-01 08:15:00 "
                         "解除/失效 2026-07-01 09:00:00")
    assert "潼川镇" in second[5] and "党政干部" in second[5]
    assert 'href="/dashboard/issue-log.xlsx?from=2026-07-01&amp;to=2026-07-01"' in html
    assert blue["id"] in html and red["id"] in html


async def test_the_xlsx_has_a_row_per_warning_with_numbers_and_rates(world: World, clock: FakeClock) -> None:
    await _warnings(world, clock)
    await sign_in(world.client, "issuer")
    resp = await world.client.get("/dashboard/issue-log.xlsx?from=2026-07-01&to=2026-07-02")
    assert resp.status == 200 and "issue-log-20260701-20260702.xlsx" in resp.headers["Content-Disposition"]
    book = workbook(await resp.read())
    assert book.sheetnames == ["发布记录台账", "说明"]
    sheet = book["发布记录台账"]
    header = [c.value for c in sheet[1]]
    assert header == [zh for zh, _, _, _ in COLUMNS]
    assert sheet.max_row == 4  # the header and three warnings, oldest first
    col = {name: i for i, name in enumerate(header)}

    def cells(row: int) -> dict[str, Any]:
        return {name: sheet.cell(row=row, column=i + 1) for name, i in col.items()}

    blue, red, nxt = cells(2), cells(3), cells(4)
    assert [blue["序号"].value, red["序号"].value, nxt["序号"].value] == [1, 2, 3]
    assert blue["级别"].value == "蓝色" and blue["发布人"].value == "issuer" and blue["审签人"].value == "无需审签"
    assert blue["发布时间"].value == "2026-07-01 08:00:00" and blue["发布范围"].value == "三台县"
    assert (blue["目标人数（人）"].value, blue["发送（条）"].value, blue["送达（条）"].value, blue["确认人数（人）"].value) == (
        7, 7, 4, 2)
    assert blue["送达率"].value == pytest.approx(4 / 7) and blue["送达率"].number_format == "0.0%"
    assert blue["确认率"].value == pytest.approx(2 / 7) and blue["5分钟内确认率"].value == pytest.approx(2 / 7)
    assert red["标题"].value == "=潼川镇暴雨红色预警" and red["标题"].data_type == "s"  # text, never a formula
    assert (red["审签人"].value, red["审签时间"].value, red["解除/失效时间"].value) == (
        "approver", "2026-07-01 08:15:00", "2026-07-01 09:00:00")
    assert red["状态"].value == "已解除" and red["接收角色"].value == "党政干部" and red["版本数"].value == 2
    assert red["预警编号"].value.startswith("510722")
    assert nxt["标题"].value == "次日蓝色预警" and nxt["送达率"].value is None  # nothing sent yet: no rate
    about = {r[0].value: r[1].value for r in book["说明"].iter_rows()}
    assert about["台账期间（北京时间）"] == "2026-07-01 至 2026-07-02" and about["预警数"] == "3"


async def test_a_viewer_has_no_issue_log(world: World, clock: FakeClock) -> None:
    await sign_in(world.client, "viewer")
    assert "/dashboard/issue-log" not in await (await world.client.get("/dashboard")).text()
    assert (await world.client.get("/dashboard/issue-log")).status == 403
    assert (await world.client.get("/dashboard/issue-log.xlsx")).status == 403


@pytest.mark.parametrize("query", ["from=2026-07-02&to=2026-07-01", "from=2025-01-01&to=2026-07-01",
                                   "from=yesterday", "to=2026-02-30"])
async def test_a_bad_period_is_refused_with_the_reason(world: World, query: str) -> None:
    await sign_in(world.client, "admin")
    page = await world.client.get(f"/dashboard/issue-log?{query}")
    assert page.status == 400 and 'id="period-problem"' in await page.text()
    assert (await world.client.get(f"/dashboard/issue-log.xlsx?{query}")).status == 400


async def test_without_dates_the_period_is_this_month_to_today(world: World, clock: FakeClock) -> None:
    await fan_out(world)
    await sign_in(world.client, "admin")
    html = await (await world.client.get("/dashboard/issue-log")).text()
    assert 'value="2026-07-01"' in html and len(rows_of(html, "issue-log")) == 1
    assert "from=2026-06-01&amp;to=2026-06-30" in html  # the previous month, one click away
    assert date(2026, 7, 1).isoformat() in html
