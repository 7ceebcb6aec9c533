"""The door-to-door list (`/api/v1/warnings/{id}/unreached`): grouped by township and village with names, what
was tried per person, CSV and XLSX exports, phones masked for viewers, 404 and roles."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any

from openpyxl import load_workbook

from contacts.model import Contact
from tests.conftest import auth
from tests.fakes.twilio import INVALID_NUMBER, inbound_sms_params, message_status_params
from tests.receipts.conftest import BASE, BLUE, Rig, issue, post_signed, rows, settled_sends
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, person

NIUTOU = TONGCHUAN + "205"  # 牛头山村
COLUMNS = ["乡镇 township", "村/社区 village", "姓名 name", "角色 role", "电话 phone", "已尝试 tried"]


async def blue_world(rig: Rig) -> tuple[dict[str, Any], dict[str, Contact]]:
    """Six people in two townships: one confirms, one has a bad number, one's SMS is reported delivered."""
    people = {
        "acked": replace(person(1, VILLAGE_A), name="甲确认"),
        "bad": replace(person(2, VILLAGE_A), name="乙空号"),
        "delivered": replace(person(3, NIUTOU), name="丙送达"),
        "town": replace(person(4, TONGCHUAN), name="丁镇上"),
        "luxi": replace(person(5, VILLAGE_B), name="戊白鹤"),
        "luxi2": replace(person(6, VILLAGE_B, "grid_informant"), name="己网格"),
    }
    await rig.seed(list(people.values()))
    rig.fakes["primary"].fail_number(people["bad"].phone, INVALID_NUMBER)
    w = await issue(rig, {**BLUE, "areas": [TONGCHUAN, LUXI]})
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/sms", inbound_sms_params(people["acked"].phone, "收到"))
    assert resp.status == 200
    sent = {r.to: r for r in rig.fakes["primary"].accepted()}
    rec = sent[people["delivered"].phone]
    resp = await post_signed(rig, rec.form["StatusCallback"], message_status_params(rec.sid or "", "delivered",
                                                                                    to=rec.to))
    assert resp.status == 204
    return w, people


async def get(rig: Rig, wid: str, who: str = "issuer", fmt: str | None = None) -> Any:
    query = f"?format={fmt}" if fmt else ""
    return await rig.client.get(f"/api/v1/warnings/{wid}/unreached{query}", headers=auth(who))


async def test_grouped_by_township_and_village_with_names_and_what_was_tried(make_rig: Any) -> None:
    rig = await make_rig()
    w, people = await blue_world(rig)
    resp = await get(rig, w["id"])
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == w["id"] and body["total"] == 5
    tongchuan, luxi = body["townships"]
    assert (tongchuan["code"], tongchuan["name"], tongchuan["count"]) == (TONGCHUAN, "潼川镇", 3)
    assert (luxi["code"], luxi["name"], luxi["count"]) == (LUXI, "芦溪镇", 2)
    villages = {v["code"]: (v["name"], [p["name"] for p in v["people"]]) for v in tongchuan["villages"]}
    assert villages == {"": ("", ["丁镇上"]), VILLAGE_A: ("东街社区", ["乙空号"]), NIUTOU: ("牛头山村", ["丙送达"])}
    [baihe] = luxi["villages"]
    assert (baihe["code"], baihe["name"]) == (VILLAGE_B, "白鹤村")
    assert sorted(p["name"] for p in baihe["people"]) == ["己网格", "戊白鹤"]
    everyone = {p["name"]: p for t in body["townships"] for v in t["villages"] for p in v["people"]}
    assert "甲确认" not in everyone  # confirmed: no door to knock on
    bad = everyone["乙空号"]
    assert bad["phone"] == people["bad"].phone and bad["role"] == "village_monitor" and bad["region"] == VILLAGE_A
    [tried] = bad["tried"]
    assert (tried["kind"], tried["state"], tried["wave"]) == ("sms", "failed", 0) and tried["error"]
    assert [(t["kind"], t["state"]) for t in everyone["丙送达"]["tried"]] == [("sms", "delivered")]
    assert [t["state"] for t in everyone["丁镇上"]["tried"]] == ["accepted"]
    assert everyone["己网格"]["role"] == "grid_informant" and everyone["己网格"]["tried"][0]["at"]


async def test_viewers_see_masked_phones_in_json_csv_and_xlsx_issuers_whole(make_rig: Any) -> None:
    rig = await make_rig()
    w, people = await blue_world(rig)
    phones = [c.phone for k, c in people.items() if k != "acked"]
    for who in ("viewer", "issuer", "admin", "approver"):
        blobs = []
        for fmt in ("json", "csv", "xlsx"):
            resp = await get(rig, w["id"], who, fmt)
            assert resp.status == 200, (who, fmt)
            data = await resp.read()
            blobs.append(_xlsx_text(data) if fmt == "xlsx" else data.decode())
        text = "\n".join(blobs)
        for phone in phones:
            national = phone.removeprefix("+86")
            if who == "viewer":
                assert national not in text and f"{national[:3]}****{national[-4:]}" in text
            else:
                assert phone in text


def _xlsx_text(data: bytes) -> str:
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    assert sheet is not None
    return "\n".join(",".join(str(c) for c in row if c is not None) for row in sheet.iter_rows(values_only=True))


async def test_csv_export_is_one_row_a_person_with_region_names(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await blue_world(rig)
    resp = await get(rig, w["id"], "viewer", "csv")
    assert resp.content_type == "text/csv" and resp.charset == "utf-8"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="unreached-{w["id"]}.csv"'
    table = list(csv.reader(io.StringIO(await resp.text())))
    assert table[0] == COLUMNS
    by_name = {r[2]: r for r in table[1:]}
    assert len(table) == 6 and set(by_name) == {"乙空号", "丙送达", "丁镇上", "戊白鹤", "己网格"}
    assert by_name["乙空号"][:2] == ["潼川镇", "东街社区"] and by_name["乙空号"][5] == "sms:failed"
    assert by_name["丁镇上"][:2] == ["潼川镇", ""]
    assert by_name["戊白鹤"][:2] == ["芦溪镇", "白鹤村"] and by_name["戊白鹤"][4] == "138****0005"
    assert by_name["丙送达"][3] == "village_monitor" and by_name["丙送达"][5] == "sms:delivered"


async def test_xlsx_export_cells(make_rig: Any) -> None:
    rig = await make_rig()
    w, people = await blue_world(rig)
    resp = await get(rig, w["id"], "issuer", "xlsx")
    assert resp.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert resp.headers["Content-Disposition"].endswith(f'unreached-{w["id"]}.xlsx"')
    book = load_workbook(io.BytesIO(await resp.read()))
    assert book.sheetnames == ["未确认人员"]
    sheet = book["未确认人员"]
    assert [c.value for c in sheet[1]] == COLUMNS
    cells = {sheet.cell(r, 3).value: [sheet.cell(r, c).value or "" for c in range(1, 7)]
             for r in range(2, sheet.max_row + 1)}
    assert sheet.max_row == 6
    # text cells starting with + are guarded against formula evaluation, as in every export
    assert cells["乙空号"] == ["潼川镇", "东街社区", "乙空号", "village_monitor", "'" + people["bad"].phone,
                            "sms:failed"]
    assert cells["己网格"] == ["芦溪镇", "白鹤村", "己网格", "grid_informant", "'" + people["luxi2"].phone,
                            "sms:accepted"]


async def test_a_formula_in_a_name_is_made_inert_in_exports(make_rig: Any) -> None:
    rig = await make_rig()
    await rig.seed([replace(person(1, VILLAGE_A), name='=HYPERLINK("http://x")')])
    w = await issue(rig, BLUE)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    table = list(csv.reader(io.StringIO(await (await get(rig, w["id"], "viewer", "csv")).text())))
    assert table[1][2] == "'=HYPERLINK(\"http://x\")"
    book = load_workbook(io.BytesIO(await (await get(rig, w["id"], "viewer", "xlsx")).read()))
    assert book.active is not None and book.active.cell(2, 3).value == "'=HYPERLINK(\"http://x\")"


async def test_calls_and_notices_red_warning(make_rig: Any) -> None:
    """A red warning: SMS and call both listed as tried; an escalation notice to a supervisor is no one's row."""
    rig = await make_rig()
    [sup_id] = await rig.seed([replace(person(90, VILLAGE_A, "cadre"), name="上级", channels=("sms",))])
    await rig.seed([replace(person(1, VILLAGE_A, "cadre"), name="村干部", supervisor=sup_id)])
    w = await issue(rig, {**BLUE, "level": "red", "headline": "暴雨红色预警"}, approve=True)
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    await rig.services.escalation.fire([w["id"], "1", "1"])  # notify_supervisor, ahead of its time
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    assert any(r.msg_type == "notice" for r in await rows(rig, w["id"]))
    body = await (await get(rig, w["id"])).json()
    everyone = [p for t in body["townships"] for v in t["villages"] for p in v["people"]]
    names = sorted(p["name"] for p in everyone)
    assert names == ["上级", "村干部"]  # both are in the warning's audience, the notice adds no row
    cadre = next(p for p in everyone if p["name"] == "村干部")
    assert [(t["kind"], t["state"]) for t in cadre["tried"]] == [("sms", "accepted"), ("voice", "accepted")]


async def test_unknown_warning_bad_format_and_roles(make_rig: Any) -> None:
    rig = await make_rig()
    w, _ = await blue_world(rig)
    resp = await get(rig, "no-such-warning")
    assert resp.status == 404 and (await resp.json())["error"]
    resp = await get(rig, w["id"], "issuer", "pdf")
    assert resp.status == 400 and "format" in (await resp.json())["detail"]
    assert (await get(rig, w["id"], "feed")).status == 403
    assert (await get(rig, w["id"], "feed", "csv")).status == 403
    resp = await rig.client.get(f"/api/v1/warnings/{w['id']}/unreached")
    assert resp.status == 401
