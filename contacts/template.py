"""Template sheets a clerk downloads, fills in and uploads: contacts and the duty roster, Chinese headers, an example.

Each example row imports as it stands (a test imports the downloaded template), so a clerk who overwrites it
cannot be misled by a sample the importer would refuse.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date

from contacts.reference import Reference

#: the contact import's columns, Chinese headers; "（必填）" marks the required ones (the importer ignores brackets)
CONTACT_HEADER = ("姓名（必填）", "手机号码（必填）", "角色（必填）", "行政区划代码（必填）", "纬度", "经度", "渠道", "语言",
                  "上级手机号码", "状态")
CONTACT_NOTES = (
    ("姓名", "必填", "联系人姓名，最多 64 个字"),
    ("手机号码", "必填", "手机或座机均可，如 138 0013 8000、028-85551234；座机只接收语音电话。同一号码再次导入即更新该联系人"),
    ("角色", "必填", "见“角色”页，填中文名称即可"),
    ("行政区划代码", "必填", "12 位村（社区）代码或 9 位乡镇代码，如 510722101001"),
    ("纬度、经度", "选填", "两项同时填写，如 31.09、105.09；用于按范围（多边形、圆）发送"),
    ("渠道", "选填", "短信、语音，可填多个（用逗号分开）；不填：手机为短信和语音，座机为语音"),
    ("语言", "选填", "zh-CN（默认）或 en"),
    ("上级手机号码", "选填", "其上级（如包村干部）的手机号码；须已登记，或在本表中"),
    ("状态", "选填", "是（默认，启用）或 否（停用）"),
)
#: the duty roster's columns, as its importer reads them
DUTY_HEADER = ("行政区划代码", "值班日期", "开始时间", "结束时间", "手机号码", "联系人编号", "值班员", "带班领导", "带班领导电话")
DUTY_NOTES = (
    ("行政区划代码", "必填", "6 位县代码（县值班）或 9 位乡镇代码（乡镇值班）"),
    ("值班日期", "必填", "YYYY-MM-DD，如 2026-07-01"),
    ("开始时间、结束时间", "必填", "HH:MM（北京时间）；结束不晚于开始表示跨过午夜，如 20:00 至 08:00；00:00 至 00:00 为全天"),
    ("手机号码、联系人编号", "二选一", "值班员的手机号码（未确认名单以短信通知），或名录中的联系人编号"),
    ("值班员", "选填", "值班员姓名"),
    ("带班领导、带班领导电话", "选填", "带班领导姓名及其手机号码"),
    ("说明", "", "有任何一行有误时整表不导入，并逐行列出原因；同一地区、日期、时段、人员再次导入即更新该行"),
)
#: a valid mobile number for the examples (the usual sample number of Chinese forms)
EXAMPLE_PHONE = "13800138000"
EXAMPLE_LEADER_PHONE = "13900139000"
_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def contact_example(ref: Reference, county: str) -> list[str]:
    """One row that imports as it stands: a village of the county's tree, a village role, the sample number."""
    villages = [code for code in ref.regions.leaves(county) if len(code) == 12] if len(ref.regions) else []
    region = villages[0] if villages else (county if len(county) in (6, 9, 12) else "510722101001")
    keys = ref.roles.keys()
    role = "village_monitor" if "village_monitor" in keys else keys[0]
    return ["张三", EXAMPLE_PHONE, ref.roles.label(role, "zh"), region, "31.09", "105.09", "短信,语音", "zh-CN", "", "是"]


def duty_examples(ref: Reference, county: str, day: date) -> list[list[str]]:
    """The county's day-long shift and, when the tree has one, a township's day shift, on `day`."""
    rows = [[county, day.isoformat(), "08:00", "08:00", EXAMPLE_PHONE, "", "李四", "王五", EXAMPLE_LEADER_PHONE]]
    towns = [r.code for r in ref.regions.children(county) if len(r.code) == 9] if len(ref.regions) else []
    if towns:
        rows.append([towns[0], day.isoformat(), "08:00", "20:00", EXAMPLE_LEADER_PHONE, "", "赵六", "", ""])
    return rows


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """CSV with a BOM, so that Excel opens it as UTF-8."""
    out = io.StringIO()
    csv.writer(out).writerows([list(header), *rows])
    return ("\ufeff" + out.getvalue()).encode()


def xlsx_bytes(title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
               notes: Sequence[tuple[str, str, str]], roles: Sequence[tuple[str, str]] = ()) -> bytes:
    """A workbook: the sheet to fill in first (every cell text, so numbers keep their leading zeros), then 填写说明,
    and, given roles, 角色 (the role column offers them as a list)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for r, row in enumerate([header, *rows], start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            cell.data_type = "s"  # never a formula, never a number
            cell.number_format = "@"
            if r == 1:
                cell.font = Font(bold=True)
    for c, name in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=c).column_letter].width = max(10, 2 * len(name) + 2)
    sheet.freeze_panes = "A2"
    guide = book.create_sheet("填写说明")
    for row in (("列", "是否必填", "说明"), *notes):
        guide.append(list(row))
    guide.column_dimensions["A"].width, guide.column_dimensions["C"].width = 22, 90
    if roles:
        listing = book.create_sheet("角色")
        for row in (("角色", "英文 English"), *roles):
            listing.append(list(row))
        listing.column_dimensions["A"].width = 24
        check = DataValidation(type="list", formula1=f"'角色'!$A$2:$A${len(roles) + 1}", allow_blank=True,
                               showErrorMessage=False)
        sheet.add_data_validation(check)
        check.add("C2:C5000")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def contact_template(ref: Reference, county: str, fmt: str) -> tuple[bytes, str]:
    """The contact sheet template as (body, content type); `fmt` is xlsx or csv."""
    rows = [contact_example(ref, county)]
    if fmt == "csv":
        return csv_bytes(CONTACT_HEADER, rows), "text/csv; charset=utf-8"
    roles = [(info.label_zh, info.label_en) for info in ref.roles.roles.values()]
    return xlsx_bytes("联系人", CONTACT_HEADER, rows, CONTACT_NOTES, roles), _XLSX_TYPE


def duty_template(ref: Reference, county: str, day: date, fmt: str) -> tuple[bytes, str]:
    """The duty roster template as (body, content type); `fmt` is xlsx or csv."""
    rows = duty_examples(ref, county, day)
    if fmt == "csv":
        return csv_bytes(DUTY_HEADER, rows), "text/csv; charset=utf-8"
    return xlsx_bytes("值班表", DUTY_HEADER, rows, DUTY_NOTES), _XLSX_TYPE
