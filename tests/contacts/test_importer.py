"""Contact import: formats, encodings, headers, every rejection reason with its row, re-import."""

from __future__ import annotations

import io
from typing import Any

import pytest

from contacts.importer import ImportReport, import_contacts
from contacts.store import RedisRegistry
from contacts.tabular import FileProblem, sniff_format
from tests.contacts.helpers import EN_HEADER, NOW, ZH_HEADER, csv_bytes, reference, xlsx_bytes

GOOD = [
    ["张伟", "138 0013 8000", "党政干部", "510722100", "31.09", "105.09", "", "", ""],
    ["李娜", "+86-139-0000-0001", "村监测员", "510722100001", "", "", "短信", "", "13800138000"],
    ["王强", "0816-5221234", "reservoir_keeper", "510722107205", "31.2", "105.0", "voice", "zh-CN", "13800138000"],
]


async def run(redis: Any, data: bytes, fmt: str = "csv", **kw: Any) -> ImportReport:
    return await import_contacts(io.BytesIO(data), fmt, RedisRegistry(redis), reference(), now=NOW, **kw)


def errors(report: ImportReport) -> dict[int, str]:
    return {p.row: p.message for p in report.rejected}


@pytest.mark.parametrize("header", [EN_HEADER, ZH_HEADER, [" Name ", "PHONE", "Role", "Region", "Lat", "Lon",
                                                             "Channels", "Lang", "Supervisor Phone"],
                                    ["姓名*", "手机号码（必填）", "角色", "行政区划代码", "纬度", "经度", "渠道",
                                     "语言", "上级手机号码"]])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
async def test_csv_headers_and_encodings(redis: Any, header: list[str], encoding: str) -> None:
    report = await run(redis, csv_bytes([header, *GOOD], encoding))
    assert (report.accepted, report.updated, report.rejected) == (3, 0, [])
    reg = RedisRegistry(redis)
    zhang = await reg.by_phone("+8613800138000")
    li = await reg.by_phone("+8613900000001")
    wang = await reg.by_phone("+868165221234")
    assert zhang and li and wang
    assert (zhang.name, zhang.role, zhang.region, zhang.location and zhang.location.lat) == ("张伟", "cadre",
                                                                                         "510722100", 31.09)
    assert (li.role, li.channels, li.supervisor) == ("monitor", ("sms",), zhang.id)  # 村监测员 is not a 中心户
    assert (wang.phone_kind, wang.channels, wang.supervisor) == ("landline", ("voice",), zhang.id)


async def test_tab_separated_utf16(redis: Any) -> None:
    text = "\r\n".join("\t".join(r) for r in [ZH_HEADER, *GOOD]) + "\r\n"
    report = await run(redis, text.encode("utf-16"))
    assert report.accepted == 3 and not report.rejected


async def test_xlsx_with_numbers_in_cells(redis: Any) -> None:
    rows: list[list[object]] = [ZH_HEADER, ["张伟", 13800138000, "cadre", 510722100, 31.09, 105.09, None, None, None],
                                [None] * 9,
                                ["李娜", 13900000001, "中心户", 510722100001, None, None, "短信,语音", None, 13800138000],
                                ["错号", 12345, "cadre", 510722100, None, None, None, None, None]]
    data = xlsx_bytes(rows)
    assert sniff_format(data[:8], "x.xlsx") == "xlsx"
    report = await run(redis, data, "xlsx")
    assert (report.accepted, errors(report)) == (2, {5: "手机号码无效 invalid phone number: 12345"})
    li = await RedisRegistry(redis).by_phone("+8613900000001")
    assert li and li.region == "510722100001" and li.supervisor


REJECTS = [
    (["", "13800000001", "cadre", "510722", "", "", "", "", ""], "姓名为空 missing name"),
    (["甲", "12345", "cadre", "510722", "", "", "", "", ""], "手机号码无效 invalid phone number: 12345"),
    (["乙", "13800000002", "村长", "510722", "", "", "", "", ""], "角色未知 unknown role: 村长"),
    (["丙", "13800000003", "", "510722", "", "", "", "", ""], "角色为空 missing role"),
    (["丁", "13800000004", "cadre", "51072", "", "", "", "", ""], "行政区划代码无效"),
    (["戊", "13800000005", "cadre", "", "", "", "", "", ""], "行政区划代码为空 missing region code"),
    (["己", "13800000006", "cadre", "510722", "北纬31", "105", "", "", ""], "经纬度无效"),
    (["庚", "13800000007", "cadre", "510722", "31.1", "", "", "", ""], "纬度和经度须同时填写"),
    (["辛", "13800000008", "cadre", "510722", "95", "105", "", "", ""], "经纬度超出范围"),
    (["壬", "13800000009", "cadre", "510722", "", "", "fax", "", ""], "渠道未知 unknown channel: fax"),
    (["癸", "0816-5221235", "cadre", "510722", "", "", "短信", "", ""], "座机不能接收短信"),
    (["子", "13800000010", "cadre", "510722", "", "", "", "klingon!", ""], "语言代码无效"),
    (["丑", "13800000011", "cadre", "510722", "", "", "", "", "99999"], "上级手机号码无效"),
    (["寅", "13800000012", "cadre", "510722", "", "", "", "", "13800000012"], "上级不能是本人"),
    (["卯", "13800000013", "cadre", "510722", "", "", "", "", "13999999999"], "上级手机号码未登记"),
]


async def test_every_rejection_reason_with_its_row(redis: Any) -> None:
    data = csv_bytes([EN_HEADER, *GOOD, *(row for row, _ in REJECTS)])
    report = await run(redis, data)
    got = errors(report)
    assert report.accepted == 3
    assert sorted(got) == list(range(5, 5 + len(REJECTS)))
    for row, (_, reason) in enumerate(REJECTS, start=5):
        assert reason in got[row], (row, got[row])
    assert await RedisRegistry(redis).count() == 3  # refused rows change nothing
    assert report.as_dict()["rejected"][0] == {"row": 5, "error": "姓名为空 missing name"}


async def test_a_repeated_phone_is_refused_naming_the_earlier_row(redis: Any) -> None:
    data = csv_bytes([EN_HEADER, *GOOD, ["张伟2", "+8613800138000", "cadre", "510722", "", "", "", "", ""]])
    report = await run(redis, data)
    assert errors(report) == {5: "手机号码与第 2 行重复 phone number repeats row 2: 138****8000"}
    assert (await RedisRegistry(redis).by_phone("+8613800138000")).name == "张伟"  # type: ignore[union-attr]


async def test_supervisor_later_in_the_file_and_refusals_down_the_chain(redis: Any) -> None:
    data = csv_bytes([EN_HEADER,
                      ["村民甲", "13800000021", "village_monitor", "510722100001", "", "", "", "", "13800000022"],
                      ["村干部", "13800000022", "cadre", "510722100", "", "", "", "", ""],
                      ["村民乙", "13800000023", "village_monitor", "510722100001", "", "", "", "", "13800000024"],
                      ["坏组长", "13800000024", "grid_informant", "bad", "", "", "", "", "13800000025"],
                      ["村民丙", "13800000025", "village_monitor", "510722100001", "", "", "", "", "13800000023"]])
    report = await run(redis, data)
    got = errors(report)
    assert set(got) == {4, 5, 6} and "行政区划代码无效" in got[5]
    assert got[4] == "上级（第 5 行）未导入 the supervisor's row 5 was refused"
    assert "上级（第 4 行）未导入" in got[6]
    reg = RedisRegistry(redis)
    cadre, villager = await reg.by_phone("+8613800000022"), await reg.by_phone("+8613800000021")
    assert cadre and villager and villager.supervisor == cadre.id


async def test_reimport_adds_no_one(redis: Any) -> None:
    data = csv_bytes([ZH_HEADER, *GOOD])
    first = await run(redis, data)
    second = await run(redis, data)
    assert (first.accepted, first.updated) == (3, 0)
    assert (second.accepted, second.updated, second.unchanged, second.rejected) == (0, 3, 3, [])
    changed = [list(GOOD[0]), GOOD[1], GOOD[2]]
    changed[0][3] = "510722101"
    third = await run(redis, csv_bytes([ZH_HEADER, *changed]))
    assert (third.accepted, third.updated, third.unchanged) == (0, 3, 2)
    reg = RedisRegistry(redis)
    assert await reg.count() == 3
    zhang = await reg.by_phone("+8613800138000")
    assert zhang and await reg.ids_in_regions(["510722100"], roles=["cadre"]) == set()
    assert await reg.ids_in_regions(["510722101"], roles=["cadre"]) == {zhang.id}


async def test_a_file_without_supervisor_column_keeps_supervisors(redis: Any) -> None:
    await run(redis, csv_bytes([ZH_HEADER, *GOOD]))
    report = await run(redis, csv_bytes([ZH_HEADER[:4], *(r[:4] for r in GOOD[1:2])]))
    assert report.updated == 1
    li = await RedisRegistry(redis).by_phone("+8613900000001")
    assert li and li.supervisor and li.channels == ("sms", "voice")


async def test_warnings_do_not_refuse(redis: Any) -> None:
    data = csv_bytes([[*EN_HEADER, "remark"], ["某", "0816-5221299", "cadre", "510722199", "", "", "sms,voice", "",
                                                "", "x"]])
    report = await run(redis, data)
    assert report.accepted == 1
    texts = {p.row: p.message for p in report.warnings}
    assert "remark" in texts[1]
    assert [p.message for p in report.warnings if p.row == 2] == [
        "行政区划代码不在区划表中（已接受） region code not in the region tree (accepted): 510722199",
        "座机只能接收语音，已去掉短信 landline takes voice only; sms dropped"]


@pytest.mark.parametrize(("data", "message"), [
    (csv_bytes([["name", "phone"], ["a", "13800138000"]]), "缺少必填列"),
    (csv_bytes([["name", "phone", "role", "region", "姓名"]]), "重复的列"),
    (b"", "缺少必填列"),
])
async def test_unusable_files(redis: Any, data: bytes, message: str) -> None:
    with pytest.raises(FileProblem, match=message):
        await run(redis, data)
    assert await RedisRegistry(redis).count() == 0


def test_legacy_xls_and_broken_xlsx() -> None:
    with pytest.raises(FileProblem, match="xls"):
        sniff_format(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a.xls")
    with pytest.raises(FileProblem, match="xlsx"):
        sniff_format(b"name,pho", "a.xlsx")


async def test_broken_xlsx_body(redis: Any) -> None:
    with pytest.raises(FileProblem, match="xlsx"):
        await run(redis, b"PK\x03\x04not really a zip", "xlsx")


async def test_batches_and_progress(redis: Any) -> None:
    rows = [EN_HEADER] + [[f"人{i}", f"1380000{i:04d}", "cadre", "510722100001", "", "", "", "", ""]
                          for i in range(2500)]
    seen: list[tuple[str, int, int | None]] = []
    report = await run(redis, csv_bytes(rows), batch_rows=1000, progress=lambda *a: seen.append(a))
    assert report.accepted == 2500 and await RedisRegistry(redis).count() == 2500
    assert [s for s in seen if s[0] == "write"] == [("write", 1000, 2500), ("write", 2000, 2500),
                                                    ("write", 2500, 2500)]
