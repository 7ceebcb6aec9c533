"""值班 pages over HTTP: the week by county and township, the upload (all or nothing, with its row report), the
template sheet that imports as it stands, who is on duty now on the home page, and the demo's roster."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from contacts.demo import demo_roster
from tests.conftest import AppFactory
from tests.dashboard.conftest import World
from tests.dashboard.desk import rows_of, sign_in, upload
from tests.warnings.conftest import LUXI, TONGCHUAN, person
from warning.clock import FakeClock
from warning.web.keys import services_key

#: the fake clock starts on Wednesday 2026-07-01, 08:00 Beijing time
ROSTER = ("行政区划代码,值班日期,开始时间,结束时间,手机号码,值班员,带班领导,带班领导电话\r\n"
          "510722,2026-07-01,08:00,08:00,13900000001,县值班员,县带班领导,13900000002\r\n"
          f"{TONGCHUAN},2026-06-30,20:00,08:00,13900000003,昨夜班,,\r\n"
          f"{TONGCHUAN},2026-07-01,08:00,20:00,13900000004,潼川日班,潼川镇长,13900000005\r\n"
          f"{TONGCHUAN},2026-07-01,20:00,08:00,13900000006,潼川夜班,潼川书记,\r\n"
          f"{LUXI},2026-07-05,08:00,20:00,13900000007,芦溪周日,,\r\n"
          f"{LUXI},2026-07-06,08:00,20:00,13900000008,下周一,,\r\n")


async def _roster(client: TestClient[Any, Any], text: str = ROSTER, who: str = "issuer") -> Any:
    csrf = await sign_in(client, who)
    return await upload(client, "/dashboard/duty/upload", text.encode(), "值班表.csv", csrf)


def _cell(html: str, region: str, day: str) -> str:
    row = html.split(f'data-region="{region}"', 1)[1].split("</tr>", 1)[0]
    cell = row.split(f'data-date="{day}">', 1)[1].split("</td>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()


async def test_the_week_shows_each_region_day_by_day_with_officer_and_leader(world: World) -> None:
    resp = await _roster(world.client)
    assert resp.status == 200 and 'data-k="accepted">6<' in await resp.text()
    await sign_in(world.client, "approver")
    html = await (await world.client.get("/dashboard/duty")).text()
    assert 'data-monday="2026-06-29"' in html
    regions = re.findall(r'<tr class="(?:county|township)" data-region="(\d+)"', html)
    assert regions[:2] == ["510722", TONGCHUAN] and len(regions) == 11  # the county, then its 10 townships
    county = _cell(html, "510722", "2026-07-01")
    assert "08:00–08:00" in county and "县值班员 +8613900000001" in county and "县带班领导 +8613900000002" in county
    tongchuan = _cell(html, TONGCHUAN, "2026-07-01")
    assert tongchuan.index("潼川日班") < tongchuan.index("潼川夜班") and "潼川镇长" in tongchuan
    assert "昨夜班" in _cell(html, TONGCHUAN, "2026-06-30") and "次日" in _cell(html, TONGCHUAN, "2026-06-30")
    assert "芦溪周日" in _cell(html, LUXI, "2026-07-05") and "下周一" not in html
    assert _cell(html, LUXI, "2026-07-01") == "—"
    # on duty right now (08:00 Wednesday): the county's day-long shift and 潼川's day shift, marked
    assert len(re.findall(r'<div class="shift now"', html.split('id="week-list"')[0])) == 2
    nxt = await (await world.client.get("/dashboard/duty?week=2026-07-08")).text()
    assert 'data-monday="2026-07-06"' in nxt and "下周一" in _cell(nxt, LUXI, "2026-07-06")
    assert (await world.client.get("/dashboard/duty?week=2026-13-40")).status == 400


async def test_a_viewer_sees_the_roster_masked_and_no_upload(world: World) -> None:
    await _roster(world.client)
    await sign_in(world.client, "viewer")
    html = await (await world.client.get("/dashboard/duty")).text()
    assert "139****0001" in html and "139****0002" in html and "+86139" not in html
    assert "/dashboard/duty/upload" not in html and "template.xlsx" not in html
    assert (await world.client.get("/dashboard/duty/upload")).status == 403
    assert (await world.client.get("/dashboard/duty/template.xlsx")).status == 403


async def test_a_roster_with_bad_rows_is_refused_whole_with_the_rows_listed(world: World) -> None:
    bad = ROSTER + "510799100,2026-07-01,08:00,20:00,13900000009,,,\r\n" + f"{LUXI},2026-07-01,25:00,20:00,139,,,\r\n"
    resp = await _roster(world.client, bad)
    html = await resp.text()
    assert resp.status == 400 and 'id="nothing-imported"' in html
    rows = rows_of(html, "rejected")
    assert [r[0] for r in rows] == ["8", "9"] and "不在区划表中" in rows[0][1] and "开始时间无效" in rows[1][1]
    assert await world.services.redis.keys("ew:duty:*") == []


async def test_upload_needs_the_role_and_the_csrf_token(world: World) -> None:
    for who in ("viewer", "approver"):
        assert (await _roster(world.client, who=who)).status == 403
    await sign_in(world.client, "issuer")
    assert (await upload(world.client, "/dashboard/duty/upload", ROSTER.encode(), "a.csv", "forged")).status == 403
    assert (await upload(world.client, "/dashboard/duty/upload", b"", "a.csv",
                         await sign_in(world.client, "issuer"))).status == 400
    assert await world.services.redis.keys("ew:duty:*") == []
    assert (await _roster(world.client, who="admin")).status == 200


async def test_the_duty_template_imports_as_it_stands(world: World) -> None:
    csrf = await sign_in(world.client, "issuer")
    for fmt in ("xlsx", "csv"):
        resp = await world.client.get(f"/dashboard/duty/template.{fmt}")
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        body = await resp.read()
        if fmt == "xlsx":
            from tests.dashboard.desk import workbook

            sheet = workbook(body)["值班表"]
            assert [c.value for c in sheet[1]][:4] == ["行政区划代码", "值班日期", "开始时间", "结束时间"]
            assert "带班领导" in [c.value for c in sheet[1]] and sheet["B2"].value == "2026-07-01"
        done = await upload(world.client, "/dashboard/duty/upload", body, f"t.{fmt}", csrf)
        assert done.status == 200 and 'id="all-imported"' in await done.text(), await done.text()
    [county] = await world.services.duty.on_duty("510722", world.services.clock.now())
    assert (county.name, county.leader, county.leader_phone) == ("李四", "王五", "+8613900139000")


async def test_the_home_page_says_who_is_on_duty_now(world: World, clock: FakeClock) -> None:
    await _roster(world.client)
    await sign_in(world.client, "admin")
    html = await (await world.client.get("/dashboard")).text()
    panel = html.split('id="duty-now"', 1)[1].split("</section>", 1)[0]
    assert "2026-07-01 08:00" in panel  # Beijing time
    county = panel.split('class="county"', 1)[1].split("<details", 1)[0]
    assert "县值班员" in county and "县带班领导" in county and "+8613900000002" in county
    assert "潼川日班" in panel and "潼川镇长" in panel and "昨夜班" not in panel  # last night's shift ended at 08:00
    assert "（1/10 有人值班" in panel
    clock.set(clock.now().replace(hour=13))  # 21:00 Beijing: the night shift
    await sign_in(world.client, "admin")  # the morning's session has ended
    panel = (await (await world.client.get("/dashboard")).text()).split('id="duty-now"', 1)[1]
    assert "潼川夜班" in panel and "潼川书记" in panel and "潼川日班" not in panel.split("</section>")[0]
    await sign_in(world.client, "viewer")
    panel = (await (await world.client.get("/dashboard")).text()).split('id="duty-now"', 1)[1].split("</section>")[0]
    assert "139****0001" in panel and "+86139" not in panel


async def test_a_shift_naming_a_registry_contact_shows_that_person(world: World) -> None:
    [officer] = await world.seed([replace(person(70, TONGCHUAN, "duty_officer"), name="在册值班员")])
    roster = f"区划代码,日期,开始,结束,联系人编号\r\n{TONGCHUAN},2026-07-01,08:00,20:00,{officer}\r\n"
    assert (await _roster(world.client, roster)).status == 200
    await sign_in(world.client, "viewer")
    html = await (await world.client.get("/dashboard/duty")).text()
    assert "在册值班员 138****0070" in _cell(html, TONGCHUAN, "2026-07-01")


def test_the_demo_roster_gives_every_region_two_shifts_a_day_with_a_leader() -> None:
    officers = [replace(person(i, code, "duty_officer"), id=f"c{i:012x}") for i, code in
                ((1, TONGCHUAN), (2, TONGCHUAN), (3, LUXI))]
    leaders = [replace(person(9, TONGCHUAN, "cadre"), id="c00000000000a", name="镇长"),
               replace(person(8, LUXI, "cadre"), id="c00000000000b", name="芦溪镇长")]
    entries = demo_roster("510722", [TONGCHUAN, LUXI], officers, leaders, date(2026, 6, 29), 7)
    assert len(entries) == 3 * 7 * 2
    tongchuan = [e for e in entries if e.region == TONGCHUAN]
    assert {e.contact_id for e in tongchuan} == {officers[0].id, officers[1].id, leaders[0].id}  # they take turns
    assert {(e.start, e.end) for e in tongchuan} == {(time(8), time(20)), (time(20), time(8))}
    assert all(e.leader and e.leader_phone.startswith("+86") and e.leader != e.name for e in entries)
    luxi = [e for e in entries if e.region == LUXI]
    assert {e.contact_id for e in luxi} == {officers[2].id, leaders[1].id}
    assert {e.leader for e in luxi if e.contact_id == officers[2].id} == {"芦溪镇长"}


async def test_the_demo_starts_with_a_roster_for_this_week(make_client: AppFactory, tmp_path: Path) -> None:
    client = await make_client(demo={"enabled": True, "contacts": 120})
    duty = client.app[services_key].duty
    entries = await duty.between(date(2026, 6, 29), date(2026, 7, 12))
    assert {e.day for e in entries} == {date(2026, 6, 29 + i) if i < 2 else date(2026, 7, i - 1) for i in range(14)}
    assert "510722" in {e.region for e in entries} and all(e.leader for e in entries)
    assert await duty.on_duty("510722", client.app[services_key].clock.now())
    await duty.redis.delete(*await duty.redis.keys("ew:duty:510722:2026-06-2*"))  # the county's Monday removed
    again = await make_client(demo={"enabled": True, "contacts": 120})  # a restart leaves a used roster alone
    assert len(await again.app[services_key].duty.between(date(2026, 6, 29), date(2026, 7, 12))) == len(entries) - 2
