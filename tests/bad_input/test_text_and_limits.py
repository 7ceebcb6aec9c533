"""What people read holds no invisible or reordering characters; drafts and CAP share their size limits; times that
cannot be a warning's (year 9999) and XML in an encoding we cannot read are a 400, not a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contacts.fields import FieldErrors, parse_contact
from contacts.safe_text import unsafe_char
from tests.bad_input.conftest import World, answered_while_healthy
from tests.conftest import auth
from tests.contacts.helpers import EN_HEADER, csv_bytes, reference
from warning.cap import MAX_AREAS, MAX_POLYGON_POINTS, parse_cap
from warning.drafting import parse_draft
from warning.errors import BadRequest, CapParseError
from warning.reference import default_event_types

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 7, 1, tzinfo=UTC)
DRAFT = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722"],
         "description": "第一段。\n第二段。", "instruction": "注意防范。"}
CAP = (Path(__file__).resolve().parent.parent / "data" / "cap" / "cma_rainstorm_red.xml").read_text(encoding="utf-8")
#: a bidi override, an isolate, zero-width characters, a BOM, a word joiner, C0 and C1 controls, a line separator
UNSAFE = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\x07", "\x1b",
          "\x85", "\u2028"]


def _draft(**changes: Any) -> Any:
    return parse_draft({**DRAFT, **changes}, event_types=default_event_types(), roles={"cadre": {}}, now=NOW)


def _problems(**changes: Any) -> list[dict[str, str]]:
    with pytest.raises(BadRequest) as err:
        _draft(**changes)
    detail: list[dict[str, str]] = err.value.detail
    return detail


@pytest.mark.parametrize("ch", UNSAFE)
@pytest.mark.parametrize("field", ["headline", "instruction", "description"])
def test_drafts_refuse_invisible_and_bidi_characters(field: str, ch: str) -> None:
    problems = _problems(**{field: f"红色{ch}预警"})
    assert [p["field"] for p in problems] == [field]
    assert f"U+{ord(ch):04X}" in problems[0]["error"]


def test_line_breaks_are_for_descriptions_and_instructions_not_headlines() -> None:
    draft = _draft(description="一\n二\r\n三\t四", instruction="1. 转移\n2. 避险")
    assert draft.description == "一\n二\r\n三\t四"
    assert [p["field"] for p in _problems(headline="暴雨\n红色预警")] == ["headline"]
    assert _draft(headline="暴雨\u3000红色\u00a0预警").headline == "暴雨\u3000红色\u00a0预警"  # spaces print


@pytest.mark.parametrize(("changes", "field"), [
    ({"polygon": [[30.0 + i / 1e5, 105.0 + (i % 2) / 1e3] for i in range(MAX_POLYGON_POINTS + 1)]}, "polygon"),
    ({"areas": [f"510722{i:03d}" for i in range(100, 100 + MAX_AREAS + 1)]}, "areas"),
    ({"expires": "9999-12-31T23:59:59+00:00"}, "expires"),
    ({"expires": "9999-12-31T23:59:59-12:00"}, "expires"),
    ({"expires": "2100-01-01T00:00:00+00:00"}, "expires"),
])
def test_draft_limits(changes: dict[str, Any], field: str) -> None:
    assert [p["field"] for p in _problems(**changes)] == [field]


def test_limits_themselves_are_allowed() -> None:
    ring = [[30.0 + i / 1e5, 105.0 + (i % 2) / 1e3] for i in range(MAX_POLYGON_POINTS)]
    assert _draft(polygon=ring).polygon is not None
    assert len(_draft(areas=[f"510722{i:03d}" for i in range(100, 100 + MAX_AREAS)]).areas) == MAX_AREAS
    assert _draft(expires="2099-01-01T00:00:00+08:00").expires is not None


def _cap(old: str, new: str) -> bytes:
    assert old in CAP
    return CAP.replace(old, new, 1).encode("utf-8")


def _cap_paths(data: bytes) -> list[str]:
    with pytest.raises(CapParseError) as err:
        parse_cap(data)
    return [path for path, _ in err.value.problems]


@pytest.mark.parametrize("ch", UNSAFE)
@pytest.mark.parametrize(("element", "text"), [("headline", "北川羌族自治县气象台发布暴雨红色预警信号"),
                                               ("event", "暴雨"), ("senderName", "北川羌族自治县气象台"),
                                               ("areaDesc", "北川羌族自治县"), ("instruction", "1.政府及相关部门"),
                                               ("description", "北川羌族自治县气象台2024年")])
def test_cap_fields_people_read_refuse_invisible_and_bidi(element: str, text: str, ch: str) -> None:
    bad = _cap(f"<{element}>{text}", f"<{element}>{text[:1]}{ch}{text[1:]}")
    # XML 1.0 cannot carry most C0 controls at all: the parser refuses those for the whole document
    where = "alert" if ch in "\x07\x1b" else f"/{element}"
    assert any(p.endswith(where) for p in _cap_paths(bad))


def test_cap_descriptions_and_instructions_keep_line_breaks() -> None:
    warning = parse_cap(_cap("<instruction>1.政府", "<instruction>0.注意\n1.政府"))
    assert "\n" in (warning.infos[0].instruction or "")
    assert any(p.endswith("/headline") for p in _cap_paths(_cap("<headline>北川", "<headline>北\n川")))


def test_cap_limits_are_the_drafts() -> None:
    ring = " ".join(f"{30 + i / 1e5:.5f},105.0" for i in range(MAX_POLYGON_POINTS)) + " 30.00000,105.0"
    assert any(p.endswith("/polygon[1]") for p in _cap_paths(_cap("</areaDesc>", f"</areaDesc><polygon>{ring}</polygon>")))
    area = "<area><areaDesc>某地</areaDesc></area>"
    assert any(p.endswith("/area") for p in _cap_paths(_cap("</info>", area * MAX_AREAS + "</info>")))
    assert parse_cap(_cap("</info>", area * (MAX_AREAS - 1) + "</info>"))


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                                  "2100-01-01T00:00:00+00:00", "1969-12-31T23:59:59+00:00"])
def test_cap_times_out_of_range_are_refused(when: str) -> None:
    assert _cap_paths(_cap("<expires>2024-07-12T05:30:00+08:00", f"<expires>{when}")) == ["alert/info[1]/expires"]


@pytest.mark.parametrize("encoding", ["foo-bar", "shift_jis", "utf-32", "rot13", "hex", "idna", "punycode"])
def test_an_xml_encoding_we_cannot_read_is_a_clear_refusal(encoding: str) -> None:
    data = _cap('encoding="UTF-8"', f'encoding="{encoding}"')
    with pytest.raises(CapParseError) as err:
        parse_cap(data)
    assert "encoding" in str(err.value)


@pytest.mark.parametrize("ch", ["\u202e", "\u200b", "\x07", "\n"])
def test_contact_names_refuse_invisible_bidi_and_control_characters(ch: str) -> None:
    with pytest.raises(FieldErrors) as err:
        parse_contact({"name": f"张{ch}伟", "phone": "13800138000", "role": "cadre", "region": "510722"}, reference())
    assert list(err.value.errors) == ["name"]
    assert unsafe_char("张伟") is None


# -- over HTTP: a 400 with the reason, nothing created, the service answering ------------------------------------

async def test_over_http_each_is_a_400_and_changes_nothing(world: World) -> None:
    client = world.client
    bad = [("POST", "/api/v1/warnings", {"json": {**DRAFT, "headline": "暴雨\u202e预警"}, "headers": auth("issuer")}),
           ("POST", "/api/v1/warnings", {"json": {**DRAFT, "expires": "9999-12-31T23:59:59+00:00"},
                                         "headers": auth("issuer")}),
           ("POST", "/api/v1/cap", {"data": _cap('encoding="UTF-8"', 'encoding="foo-bar"'),
                                    "headers": {**auth("feed"), "Content-Type": "application/xml"}}),
           ("POST", "/api/v1/cap", {"data": _cap("<expires>2024-07-12T05:30:00+08:00",
                                                 "<expires>9999-12-31T23:59:59+00:00"),
                                    "headers": {**auth("feed"), "Content-Type": "application/xml"}}),
           ("POST", "/api/v1/cap", {"data": _cap("<headline>北川", "<headline>北\u200b川"),
                                    "headers": {**auth("feed"), "Content-Type": "application/xml"}}),
           ("POST", "/api/v1/contacts", {"json": {"name": "张\u202e伟", "phone": "13800138000", "role": "cadre",
                                                  "region": "510722"}, "headers": auth("admin")})]
    for method, path, kw in bad:
        resp = await answered_while_healthy(client, method, path, **kw)
        assert resp.status == 400, (path, await resp.text())
        body = await resp.json()
        assert body["error"] and body["detail"]
    assert (await (await client.get("/api/v1/warnings", headers=auth("admin"))).json())["items"] == []
    assert (await (await client.get("/api/v1/contacts", headers=auth("admin"))).json())["items"] == []


async def test_an_import_row_with_a_bidi_name_is_refused_and_the_others_taken(world: World) -> None:
    rows = [EN_HEADER, ["张伟", "13800138000", "cadre", "510722100", "", "", "", "", ""],
            ["李\u202e娜", "13900000001", "cadre", "510722100", "", "", "", "", ""]]
    resp = await world.client.post("/api/v1/contacts/import", data=csv_bytes(rows),
                                   headers={**auth("admin"), "Content-Type": "text/csv"})
    report = await resp.json()
    assert report["accepted"] == 1 and [r["row"] for r in report["rejected"]] == [3]
    assert "U+202E" in report["rejected"][0]["error"]
