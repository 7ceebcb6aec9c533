"""演练评估: a drill's evaluation — coverage, time to confirm (median, 90th percentile, within 5 and 15 minutes, a
histogram), who never answered by township and village — as JSON, XLSX and a printable page, on the injected clock."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from openpyxl import load_workbook

from tests.conftest import auth
from tests.dashboard.conftest import login
from tests.fakes.twilio import INVALID_NUMBER
from tests.receipts.conftest import BLUE, Rig, coverage, issue, settled_sends
from tests.receipts.test_escalation import reply
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, person
from warning.evaluation import duration_zh, histogram, median_s, percentile_s

NIUTOU = TONGCHUAN + "205"  # 牛头山村
YELLOW_DRILL = {**BLUE, "level": "yellow", "headline": "潼川镇芦溪镇暴雨黄色预警（演练）", "areas": [TONGCHUAN, LUXI],
                "status": "Exercise"}
#: who answers how many seconds after the send; None: never
ANSWERS = {"甲": 120, "乙": 240, "丙": 600, "丁": 1200, "戊": None, "己": None}


async def drill(rig: Rig, body: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Six people in two townships; four answer at 2, 4, 10 and 20 minutes; 己's number is wrong."""
    people = {"甲": replace(person(1, VILLAGE_A), name="甲"), "乙": replace(person(2, NIUTOU), name="乙"),
              "丙": replace(person(3, VILLAGE_B), name="丙"), "丁": replace(person(4, TONGCHUAN, "cadre"), name="丁"),
              "戊": replace(person(5, VILLAGE_B, "grid_informant"), name="戊"),
              "己": replace(person(6, VILLAGE_A), name="己")}
    await rig.seed(list(people.values()))
    rig.fakes["primary"].fail_number(people["己"].phone, INVALID_NUMBER)
    start = rig.clock.now()
    w = await issue(rig, body or YELLOW_DRILL)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    for name, after_s in sorted(((n, s) for n, s in ANSWERS.items() if s is not None), key=lambda x: x[1]):
        rig.clock.advance(after_s - (rig.clock.now() - start).total_seconds())
        await reply(rig, people[name].phone, "收到")
    return w, people


async def evaluation(rig: Rig, wid: str, who: str = "issuer", fmt: str = "") -> Any:
    query = f"?format={fmt}" if fmt else ""
    return await rig.client.get(f"/api/v1/warnings/{wid}/evaluation{query}", headers=auth(who))


def test_the_statistics_of_time_to_confirm() -> None:
    assert median_s([]) is None and percentile_s([], 90) is None
    assert median_s([5.0, 1.0, 3.0]) == 3.0 and median_s([1.0, 2.0, 3.0, 10.0]) == 2.5
    times = [float(t) for t in range(1, 11)]  # 1..10
    assert percentile_s(times, 90) == 9.0 and percentile_s(times, 100) == 10.0 and percentile_s([7.0], 90) == 7.0
    counts = [b["count"] for b in histogram([0.0, 60.0, 61.0, 300.0, 301.0, 900.0, 3600.0, 3601.0])]
    assert counts == [2, 1, 1, 1, 1, 0, 1, 1]
    assert (duration_zh(None), duration_zh(58), duration_zh(252), duration_zh(3780)) == ("—", "58秒", "4分12秒",
                                                                                          "1小时3分")


async def test_a_drills_evaluation_as_json(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    resp = await evaluation(rig, w["id"])
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["drill"] is True and doc["title_zh"] == "演练评估报告"
    assert doc["warning"]["areas"] == [{"code": TONGCHUAN, "name": "潼川镇"}, {"code": LUXI, "name": "芦溪镇"}]
    assert doc["warning"]["issued_at"] == "2026-07-01T00:00:00+00:00"
    cov = doc["coverage"]
    assert (cov["targeted"], cov["acked"], cov["failed"]) == (6, 4, 1)
    times = doc["confirm_times"]
    assert (times["confirmed"], times["median_s"], times["p90_s"]) == (4, 420.0, 1200.0)
    assert (times["within_5m"], times["within_15m"], times["share_within_5m"], times["share_within_15m"]) == \
        (2, 3, 33.3, 50.0)
    assert (times["within_5m"], times["within_15m"]) == (cov["acked_5m"], cov["acked_15m"])  # as the counters say
    assert [b["count"] for b in times["histogram"]] == [0, 1, 1, 1, 0, 1, 0, 0]
    places = {p["code"]: p for p in doc["places"]}
    assert (places[TONGCHUAN]["name"], places[TONGCHUAN]["targeted"], places[TONGCHUAN]["acked"]) == ("潼川镇", 4, 3)
    assert (places[VILLAGE_B]["name"], places[VILLAGE_B]["ack_rate"]) == ("白鹤村", 50.0)
    never = doc["unconfirmed"]
    assert never["total"] == 2
    by_town = {t["name"]: {v["name"]: [p["name"] for p in v["people"]] for v in t["villages"]}
               for t in never["townships"]}
    assert by_town == {"潼川镇": {"东街社区": ["己"]}, "芦溪镇": {"白鹤村": ["戊"]}}
    ji = never["townships"][0]["villages"][0]["people"][0]
    assert ji["role_zh"] == "村社区中心户" and ji["phone"] == "+8613800000006"
    assert [(t["kind"], t["state"]) for t in ji["tried"]] == [("sms", "failed")] and "invalid_address" in ji["tried"][0]["error"]


async def test_viewers_see_masked_phones_and_every_role_may_read_it(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    doc = await (await evaluation(rig, w["id"], "viewer")).json()
    phones = [p["phone"] for t in doc["unconfirmed"]["townships"] for v in t["villages"] for p in v["people"]]
    assert phones and all("****" in p for p in phones)
    page = await (await evaluation(rig, w["id"], "viewer", "html")).text()
    assert "+8613800000006" not in page and "138****0006" in page
    assert (await evaluation(rig, w["id"], "feed")).status == 403


async def test_the_workbook_has_summary_places_times_and_people(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    resp = await evaluation(rig, w["id"], fmt="xlsx")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(await resp.read()), read_only=True)
    assert book.sheetnames == ["评估摘要", "按乡镇村", "确认用时", "未确认人员"]
    summary = {row[0]: row[1] for row in book["评估摘要"].iter_rows(values_only=True)}
    assert summary["报告 report"].startswith("演练评估报告")
    assert summary["发布时间（北京时间） issued (Beijing time)"] == "2026-07-01 08:00"
    assert summary["确认用时中位数 median time to confirm"] == "7分0秒"
    assert summary["90%确认用时 90th percentile"] == "20分0秒"
    assert (summary["目标人数 targeted"], summary["已确认 confirmed"], summary["5分钟内确认 within 5 min"]) == (6, 4, 2)
    places = list(book["按乡镇村"].iter_rows(values_only=True))
    assert places[1][:3] == ("潼川镇", TONGCHUAN, 4)
    people = list(book["未确认人员"].iter_rows(values_only=True))
    assert people[0][0] == "乡镇 township" and {r[2] for r in people[1:]} == {"己", "戊"}
    assert next(r[5] for r in people[1:] if r[2] == "己").startswith("短信：失败，号码无效（twilio 21211")


async def test_the_printable_page_chinese_first_beijing_time_place_names(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    resp = await evaluation(rig, w["id"], fmt="html")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "<title>演练评估报告" in page and "【演练】" in page and "@media print" in page and "@page" in page
    assert "2026-07-01 08:00:00" in page  # the send, in Beijing time
    assert "潼川镇、芦溪镇" in page and "白鹤村" in page and "牛头山村" in page
    assert 'id="median">7分0秒<' in page and 'id="p90">20分0秒<' in page
    assert "10日内" in page  # the archive rule of the source document
    assert page.index("演练评估报告") < page.index("Drill evaluation")


async def test_the_dashboard_serves_the_page_to_a_signed_in_browser(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    path = f"/dashboard/warnings/{w['id']}/evaluation"
    resp = await rig.client.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    assert (await login(rig.client, "viewer")).status == 303
    resp = await rig.client.get(path)
    assert resp.status == 200 and "演练评估报告" in await resp.text()
    page = await (await rig.client.get(f"/dashboard/warnings/{w['id']}")).text()
    assert f'href="{path}"' in page


async def test_any_warning_can_be_evaluated_and_says_it_was_no_drill(make_rig: Any) -> None:
    rig = await make_rig()
    body = {k: v for k, v in YELLOW_DRILL.items() if k != "status"}
    w, _ = await drill(rig, {**body, "headline": "潼川镇芦溪镇暴雨黄色预警"})
    doc = await (await evaluation(rig, w["id"])).json()
    assert doc["drill"] is False and doc["title_zh"] == "预警发布评估报告"
    assert doc["confirm_times"]["confirmed"] == 4
    assert doc["confirm_times"]["within_5m"] == (await coverage(rig, w["id"]))["acked_5m"] == 2


async def test_bad_requests_are_clear_errors(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await drill(rig)
    resp = await evaluation(rig, w["id"], fmt="pdf")
    assert resp.status == 400 and (await resp.json())["detail"] == {"format": "json, xlsx, html"}
    resp = await evaluation(rig, "w20260701deadbeef")
    assert resp.status == 404 and (await resp.json())["error"]
    resp = await rig.client.get(f"/api/v1/warnings/{w['id']}/evaluation")
    assert resp.status == 401
