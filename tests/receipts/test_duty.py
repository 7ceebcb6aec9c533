"""The duty roster (值班表) over HTTP: CSV and XLSX import with every bad-row reason and its row number, re-import,
who is on duty by region and date, roles, and the escalation step that reaches a township's on-duty officer."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from openpyxl import Workbook

from tests.conftest import auth
from tests.receipts.conftest import BLUE, Rig, issue, settled_sends
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, person
from warning.bootstrap import due_handlers

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GOOD = ("region,date,start,end,phone,name\r\n"
        f"{TONGCHUAN},2026-07-01,08:00,20:00,139 0000 0001,王值班\r\n"
        f"{TONGCHUAN},2026-07-01,20:00,08:00,+86-13900000003,夜班\r\n"
        "510722,2026-07-01,00:00,00:00,008613900000002,县值班\r\n")


async def post_roster(rig: Rig, data: bytes, who: str = "issuer", content_type: str = "text/csv") -> Any:
    return await rig.client.post("/api/v1/duty", data=data, headers={**auth(who), "Content-Type": content_type})


async def listing(rig: Rig, query: str = "", who: str = "issuer") -> Any:
    resp = await rig.client.get(f"/api/v1/duty{query}", headers=auth(who))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def test_csv_import_lists_by_region_and_date_and_a_reimport_adds_nothing(make_rig: Any) -> None:
    rig = await make_rig()
    resp = await post_roster(rig, GOOD.encode())
    assert resp.status == 200
    assert await resp.json() == {"accepted": 3, "updated": 0, "rejected": []}
    items = await listing(rig, "?date=2026-07-01")
    assert {(i["region"], i["start"], i["end"], i["phone"], i["name"]) for i in items} == {
        (TONGCHUAN, "08:00", "20:00", "+8613900000001", "王值班"),
        (TONGCHUAN, "20:00", "08:00", "+8613900000003", "夜班"),
        ("510722", "00:00", "00:00", "+8613900000002", "县值班")}
    assert [i["name"] for i in await listing(rig, f"?region={TONGCHUAN}")] == ["王值班", "夜班"]
    assert [i["name"] for i in await listing(rig, f"?region={LUXI}")] == []
    assert await listing(rig, "?date=2026-07-02") == []
    # the same file again: every row replaces itself
    resp = await post_roster(rig, GOOD.encode())
    assert await resp.json() == {"accepted": 0, "updated": 3, "rejected": []}
    assert len(await listing(rig)) == 3


async def test_xlsx_with_chinese_headers_and_typed_cells(make_rig: Any) -> None:
    rig = await make_rig()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["行政区划代码", "值班日期", "开始时间", "结束时间", "手机号码", "值班人员"])
    sheet.append([int(LUXI), datetime(2026, 7, 1), time(8, 0), time(17, 30), 13900000004, "赵值班"])
    sheet.append([None, None, None, None, None, None])
    sheet.append([LUXI, "2026/7/2", "8：00", "17:30:00", "139-0000-0004", "赵值班"])
    out = io.BytesIO()
    book.save(out)
    resp = await post_roster(rig, out.getvalue(), content_type=XLSX)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 2, "updated": 0, "rejected": []}
    items = await listing(rig, f"?region={LUXI}")
    assert [(i["date"], i["start"], i["end"], i["phone"]) for i in items] == [
        ("2026-07-01", "08:00", "17:30", "+8613900000004"), ("2026-07-02", "08:00", "17:30", "+8613900000004")]


async def test_every_bad_row_is_reported_by_number_and_nothing_is_written(make_rig: Any) -> None:
    rig = await make_rig()
    [officer] = await rig.seed([replace(person(70, TONGCHUAN, "duty_officer"), name="在册值班")])
    lines = [
        "region,date,start,end,phone,contact_id,name",
        f"{TONGCHUAN},2026-07-01,08:00,20:00,13900000001,,好行",  # 2: good
        "51072,2026-07-01,08:00,20:00,13900000001,,",  # 3
        "510799100,2026-07-01,08:00,20:00,13900000001,,",  # 4: not in the county's region tree
        f"{TONGCHUAN},2026-02-30,08:00,20:00,13900000001,,",  # 5
        f"{TONGCHUAN},明天,08:00,20:00,13900000001,,",  # 6
        f"{TONGCHUAN},2026-07-01,25:00,20:00,13900000001,,",  # 7
        f"{TONGCHUAN},2026-07-01,08:00,24:30,13900000001,,",  # 8
        f"{TONGCHUAN},2026-07-01,08:00,20:00,12345,,",  # 9
        f"{TONGCHUAN},2026-07-01,08:00,20:00,028-85551234,,",  # 10: a landline cannot get the SMS notice
        f"{TONGCHUAN},2026-07-01,08:00,20:00,,c-nobody,",  # 11
        f"{TONGCHUAN},2026-07-01,08:00,20:00,,,",  # 12
        f"{TONGCHUAN},2026-07-01,08:00,20:00,+8613900000001,,好行again",  # 13: row 2 again
        ",,,,,,",  # 14: blank, skipped but counted
        f"abc,2026-07-01,08:00,20:00,,{officer},",  # 15
        f"{TONGCHUAN},2026-07-01,08:00,20:00,,{officer},",  # 16: good
    ]
    resp = await post_roster(rig, "\r\n".join(lines).encode())
    assert resp.status == 400
    body = await resp.json()
    assert (body["accepted"], body["updated"]) == (0, 0)
    errors = {r["row"]: r["error"] for r in body["rejected"]}
    assert [r["row"] for r in body["rejected"]] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    expected = {3: "区划代码应为6位", 4: "不在区划表中", 5: "日期无效", 6: "日期无效", 7: "开始时间无效",
                8: "结束时间无效", 9: "手机号码无效", 10: "须为手机号码", 11: "联系人不存在", 12: "需要电话或联系人编号",
                13: "与第 2 行重复", 15: "区划代码应为6位"}
    for row, words in expected.items():
        assert words in errors[row], (row, errors[row])
    assert "invalid date" in errors[5] and "c-nobody" in errors[11] and "repeats row 2" in errors[13]
    assert await listing(rig) == []
    assert await rig.services.redis.keys("ew:duty:*") == []


async def test_a_bad_row_in_an_xlsx_is_numbered_as_the_sheet_shows_it(make_rig: Any) -> None:
    rig = await make_rig()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["区划代码", "日期", "开始", "结束", "电话"])
    sheet.append([TONGCHUAN, "2026-07-01", "08:00", "20:00", "13900000001"])
    sheet.append([])
    sheet.append([TONGCHUAN, "2026-07-01", "08:00", "20:00", "1390000"])
    out = io.BytesIO()
    book.save(out)
    resp = await post_roster(rig, out.getvalue(), content_type=XLSX)
    assert resp.status == 400
    assert [r["row"] for r in (await resp.json())["rejected"]] == [4]


async def test_unusable_files_are_refused_whole(make_rig: Any) -> None:
    rig = await make_rig()
    for data, words in ((b"", "empty body"), (b"  \r\n", "empty body"),
                        (b"region,date,start\r\n510722,2026-07-01,08:00\r\n", "missing columns"),
                        (b"region,date,start,end,name\r\n510722,2026-07-01,08:00,09:00,x\r\n", "phone|contact_id"),
                        (b"\xd0\xcf\x11\xe0" + b"\0" * 64, ".xls"), (b"PK\x03\x04broken", "xlsx")):
        resp = await post_roster(rig, data)
        assert resp.status == 400, data
        body = await resp.json()
        assert words in body["error"] + body["detail"], body
    assert await listing(rig) == []


async def test_a_shift_ending_before_it_starts_runs_past_midnight(make_rig: Any) -> None:
    rig = await make_rig()
    assert (await post_roster(rig, GOOD.encode())).status == 200
    duty = rig.services.duty

    async def on(at: datetime, region: str = TONGCHUAN) -> list[str]:
        return sorted(e.name for e in await duty.on_duty(region, at))

    assert await on(datetime(2026, 7, 1, 0, 0, tzinfo=UTC)) == ["王值班"]  # 08:00 Beijing
    assert await on(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == ["夜班"]  # 20:00 Beijing: the day shift has ended
    assert await on(datetime(2026, 7, 1, 19, 0, tzinfo=UTC)) == ["夜班"]  # 03:00 Beijing the next day
    assert await on(datetime(2026, 7, 2, 0, 0, tzinfo=UTC)) == []  # 08:00 on the 2nd: no shift that day
    assert await on(datetime(2026, 7, 1, 15, 59, tzinfo=UTC), "510722") == ["县值班"]  # 00:00–00:00: all day
    assert await on(datetime(2026, 7, 1, 16, 0, tzinfo=UTC), "510722") == []
    assert [e.day for e in await duty.day(TONGCHUAN, date(2026, 7, 1))] == [date(2026, 7, 1)] * 2


async def test_roles_and_queries(make_rig: Any) -> None:
    rig = await make_rig()
    for who, status in (("viewer", 403), ("approver", 403), ("feed", 403)):
        assert (await post_roster(rig, GOOD.encode(), who)).status == status
    resp = await rig.client.post("/api/v1/duty", data=GOOD.encode(), headers={"Content-Type": "text/csv"})
    assert resp.status == 401
    assert await listing(rig) == []
    assert (await post_roster(rig, GOOD.encode(), "admin")).status == 200
    viewer = await listing(rig, "", "viewer")
    assert {i["phone"] for i in viewer} == {"139****0001", "139****0002", "139****0003"}
    assert {i["phone"] for i in await listing(rig, "", "approver")} == {"+8613900000001", "+8613900000002",
                                                                        "+8613900000003"}
    assert (await rig.client.get("/api/v1/duty", headers=auth("feed"))).status == 403
    assert (await rig.client.get("/api/v1/duty")).status == 401
    for query in ("?date=2026-13-01", "?date=tomorrow", "?region=abc", "?region=5107*"):
        resp = await rig.client.get(f"/api/v1/duty{query}", headers=auth("viewer"))
        assert resp.status == 400 and (await resp.json())["error"] == "invalid query"


async def test_escalation_reaches_the_townships_on_duty_officer_when_nobody_is_the_supervisor(make_rig: Any) -> None:
    """Red warning, 10 minutes unconfirmed: the person without a supervisor is reported to the township's
    officer on duty now (a registry contact named by id), not to the one off shift nor another township's."""
    rig = await make_rig()
    officers = [replace(person(71, TONGCHUAN, "duty_officer"), name="镇值班员", channels=("sms",)),
                replace(person(72, TONGCHUAN, "duty_officer"), name="夜班员", channels=("sms",)),
                replace(person(73, LUXI, "duty_officer"), name="芦溪值班", channels=("sms",))]
    on_shift, night, luxi = await rig.seed(officers)
    roster = ("region,date,start,end,contact_id\r\n"
              f"{TONGCHUAN},2026-07-01,08:00,20:00,{on_shift}\r\n"
              f"{TONGCHUAN},2026-06-30,20:00,08:00,{night}\r\n"  # ended at 08:00 Beijing, the clock's start
              f"{LUXI},2026-07-01,08:00,20:00,{luxi}\r\n")
    assert (await post_roster(rig, roster.encode())).status == 200
    await rig.seed([replace(person(1, VILLAGE_A, "grid_informant"), name="无上级")])
    w = await issue(rig, {**BLUE, "level": "red", "headline": "暴雨红色预警", "areas": [VILLAGE_A]}, approve=True)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    rig.clock.advance(600)
    await rig.services.due.drain(due_handlers(rig.services))
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    sent = {r.to: r.form["Body"] for r in rig.fakes["primary"].accepted()}
    notice = sent[officers[0].phone]
    assert "无上级" in notice and "1人尚未确认" in notice
    assert officers[1].phone not in sent and officers[2].phone not in sent
    audit = await (await rig.client.get(f"/api/v1/warnings/{w['id']}/audit", headers=auth("viewer"))).json()
    steps = [(e["detail"]["step_action"], e["detail"]["messages"]) for e in audit["items"] if e["action"] == "escalate"]
    assert steps == [("call", 1), ("notify_supervisor", 1)]


LEADERS = ("行政区划代码,值班日期,开始时间,结束时间,手机号码,值班员,带班领导,带班领导电话\r\n"
           f"{TONGCHUAN},2026-07-01,08:00,20:00,13900000001,王值班,李镇长,13900000009\r\n"
           f"{LUXI},2026-07-01,08:00,20:00,13900000004,赵值班,周书记,\r\n"
           f"{TONGCHUAN},2026-07-01,20:00,08:00,13900000003,夜班,,\r\n")


async def test_each_shift_carries_its_leader_masked_for_viewers(make_rig: Any) -> None:
    rig = await make_rig()
    resp = await post_roster(rig, LEADERS.encode())
    assert await resp.json() == {"accepted": 3, "updated": 0, "rejected": []}
    shown = {(i["name"], i["leader"], i["leader_phone"]) for i in await listing(rig, "", "approver")}
    assert shown == {("王值班", "李镇长", "+8613900000009"), ("赵值班", "周书记", ""), ("夜班", "", "")}
    viewer = {(i["name"], i["leader_phone"]) for i in await listing(rig, "", "viewer")}
    assert viewer == {("王值班", "139****0009"), ("赵值班", ""), ("夜班", "")}
    [day] = [e for e in await rig.services.duty.day(TONGCHUAN, date(2026, 7, 1)) if e.name == "王值班"]
    assert (day.leader, day.leader_phone) == ("李镇长", "+8613900000009")
    # a new leader for the same shift replaces the row, it does not add a second one
    again = LEADERS.replace("李镇长,13900000009", "陈副镇长,")
    assert await (await post_roster(rig, again.encode())).json() == {"accepted": 0, "updated": 3, "rejected": []}
    assert {i["leader"] for i in await listing(rig, f"?region={TONGCHUAN}")} == {"陈副镇长", ""}


async def test_a_bad_leader_phone_refuses_the_row_and_names_the_column(make_rig: Any) -> None:
    rig = await make_rig()
    lines = ["region,date,start,end,phone,name,leader,leader_phone",
             f"{TONGCHUAN},2026-07-01,08:00,20:00,13900000001,王值班,李镇长,12345",
             f"{TONGCHUAN},2026-07-01,20:00,08:00,13900000003,夜班,李镇长,028-85551234",
             f"{LUXI},2026-07-01,08:00,20:00,13900000004,赵值班,,13900000009"]
    resp = await post_roster(rig, "\r\n".join(lines).encode())
    assert resp.status == 400
    errors = {r["row"]: r["error"] for r in (await resp.json())["rejected"]}
    assert errors[2].startswith("带班领导电话：手机号码无效") and "须为手机号码" in errors[3]
    assert "带班领导电话" in errors[3] and "没有带班领导姓名" in errors[4]
    assert await listing(rig) == []
