"""emit_cap, make_identifier and atom_feed: the shape of what we publish, and that it reads back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from warning.cap import parse_cap
from warning.cap_emit import ATOM_NS, CAP_MIME, CAP_NS, FeedEntry, atom_feed, emit_cap, make_identifier
from warning.model import Area, EarlyWarning, Info, Level, MsgType, Reference, Scope, Status

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
GOOD = sorted(p.name for p in DATA.glob("*.xml") if not p.name.startswith(("bad_", "hostile_")))
CST = timezone(timedelta(hours=8))
CAP = f"{{{CAP_NS}}}"
ATOM = f"{{{ATOM_NS}}}"


def ours(**changes: object) -> EarlyWarning:
    """A warning as the office would issue it."""
    sent = datetime(2024, 7, 11, 0, 5, tzinfo=UTC)
    info = Info(language="zh-CN", categories=("Met",), event="暴雨", urgency="Immediate", severity="Extreme",
                certainty="Likely", expires=sent + timedelta(hours=6), sender_name="县应急管理局",
                headline="县应急管理局发布暴雨红色预警", description='未来3小时降雨量将达100毫米以上 <注意> & "防范"',
                instruction="立即转移", areas=(Area.of_regions("曲山镇", ("510726100",)),))
    w = EarlyWarning(identifier=make_identifier("510726", "00100001", sent, 1), sender="warning@example.invalid",
                     sent=sent, status=Status.ACTUAL, msg_type=MsgType.ALERT, scope=Scope.PUBLIC, infos=(info,),
                     level=Level.RED, event_type="rainstorm")
    return w.with_(**changes)


@pytest.mark.parametrize("name", GOOD)
def test_every_real_document_survives_parse_emit_parse(name: str) -> None:
    first = parse_cap((DATA / name).read_bytes())
    assert parse_cap(emit_cap(first)) == first


def test_our_warning_reads_back_unchanged() -> None:
    w = ours()
    assert parse_cap(emit_cap(w)) == w


def test_emitted_document_is_cap_1_2_in_beijing_time() -> None:
    w = ours(references=(Reference("other@example.org", "A-1", datetime(2024, 7, 10, 23, 0, tzinfo=UTC)),),
             msg_type=MsgType.UPDATE)
    data = emit_cap(w)
    root = SafeET.fromstring(data)
    assert root.tag == f"{CAP}alert"
    assert root.findtext(f"{CAP}sent") == "2024-07-11T08:05:00+08:00"
    assert root.findtext(f"{CAP}references") == "other@example.org,A-1,2024-07-11T07:00:00+08:00"
    assert root.findtext(f"{CAP}info/{CAP}language") == "zh-CN"
    assert root.findtext(f"{CAP}info/{CAP}expires") == "2024-07-11T14:05:00+08:00"
    assert [e.tag.removeprefix(CAP) for e in root][:7] == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "references"]
    times = re.findall(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", data)
    assert times and all(t.endswith(b"+08:00") for t in times)
    assert b"&lt;\xe6\xb3\xa8\xe6\x84\x8f&gt; &amp;" in data


def test_times_keep_their_own_offset_when_asked_and_utc_is_written_minus_zero() -> None:
    root = SafeET.fromstring(emit_cap(ours(), tz=None))
    assert root.findtext(f"{CAP}sent") == "2024-07-11T00:05:00-00:00"
    assert parse_cap(emit_cap(ours(), tz=None)) == ours()


def test_missing_language_is_written_zh_cn() -> None:
    w = ours()
    assert w.info is not None
    bare = w.with_(infos=(Info(**{**{f: getattr(w.info, f) for f in w.info.__slots__}, "language": ""}),))
    assert SafeET.fromstring(emit_cap(bare)).findtext(f"{CAP}info/{CAP}language") == "zh-CN"


def test_region_codes_without_geocodes_are_written_as_12_digit_gb2260() -> None:
    w = ours()
    assert w.info is not None
    info = Info(**{**{f: getattr(w.info, f) for f in w.info.__slots__},
                   "areas": (Area("曲山镇", region_codes=("510726100",)),)})
    root = SafeET.fromstring(emit_cap(w.with_(infos=(info,))))
    geocode = root.find(f"{CAP}info/{CAP}area/{CAP}geocode")
    assert geocode is not None
    assert (geocode.findtext(f"{CAP}valueName"), geocode.findtext(f"{CAP}value")) == ("GB2260", "510726100000")
    assert parse_cap(emit_cap(w.with_(infos=(info,)))).region_codes == ("510726100",)


def test_characters_xml_cannot_carry_are_dropped_and_cr_becomes_lf() -> None:
    w = ours(note="a\x00b\x1fc\r\nd\re")
    assert parse_cap(emit_cap(w)).note == "abc\nd\ne"


def test_make_identifier_has_the_gb_t_35965_shape() -> None:
    ident = make_identifier("510726", "00100001", datetime(2024, 7, 10, 21, 30, 5, tzinfo=UTC), 3)
    assert ident == "51072600100001_20240711053005_3"
    assert re.fullmatch(r"\d{14}_\d{14}_\d+", ident)


@pytest.mark.parametrize(("issuer", "unit", "when", "serial"), [
    ("51072", "00100001", datetime(2024, 1, 1, tzinfo=UTC), 1),
    ("51072a", "00100001", datetime(2024, 1, 1, tzinfo=UTC), 1),
    ("510726", "0010001", datetime(2024, 1, 1, tzinfo=UTC), 1),
    ("510726", "00100001", datetime(2024, 1, 1), 1),
    ("510726", "00100001", datetime(2024, 1, 1, tzinfo=UTC), -1),
])
def test_make_identifier_refuses_bad_parts(issuer: str, unit: str, when: datetime, serial: int) -> None:
    with pytest.raises(ValueError):
        make_identifier(issuer, unit, when, serial)


def test_atom_feed_links_each_warning_to_its_cap_document() -> None:
    red = ours()
    drill = ours(identifier="51072600100001_20240711080500_2", status=Status.EXERCISE, level=Level.YELLOW)
    updated = datetime(2024, 7, 11, 1, 0, tzinfo=UTC)
    data = atom_feed([FeedEntry(red, "https://ew.example.org/api/v1/warnings/w1/cap"),
                      FeedEntry(drill, "https://ew.example.org/api/v1/warnings/w2/cap?a=1&b=2", updated=updated)],
                     feed_url="https://ew.example.org/feeds/cap.atom", title="县应急管理局预警 <CAP>", updated=updated)
    root = SafeET.fromstring(data)
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}title") == "县应急管理局预警 <CAP>"
    assert root.findtext(f"{ATOM}updated") == "2024-07-11T09:00:00+08:00"
    self_link = root.find(f"{ATOM}link")
    assert self_link is not None and self_link.get("rel") == "self"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    links = [e.find(f"{ATOM}link") for e in entries]
    assert [(link.get("type"), link.get("href")) for link in links if link is not None] == [
        (CAP_MIME, "https://ew.example.org/api/v1/warnings/w1/cap"),
        (CAP_MIME, "https://ew.example.org/api/v1/warnings/w2/cap?a=1&b=2")]
    first = entries[0]
    assert first.findtext(f"{ATOM}title") == "县应急管理局发布暴雨红色预警"
    assert first.findtext(f"{ATOM}summary") == '未来3小时降雨量将达100毫米以上 <注意> & "防范"'
    assert first.findtext(f"{ATOM}author/{ATOM}name") == "县应急管理局"
    assert first.findtext(f"{ATOM}updated") == "2024-07-11T08:05:00+08:00"
    assert entries[1].findtext(f"{ATOM}updated") == "2024-07-11T09:00:00+08:00"
    assert [c.get("term") for c in entries[1].findall(f"{ATOM}category")] == ["yellow", "rainstorm", "Alert",
                                                                               "Exercise"]


def test_atom_feed_of_no_warnings_is_a_valid_empty_feed() -> None:
    root = SafeET.fromstring(atom_feed([], feed_url="https://x.example/feeds/cap.atom", title="t",
                                       updated=datetime(2024, 1, 1, tzinfo=CST)))
    assert root.findall(f"{ATOM}entry") == [] and root.findtext(f"{ATOM}id") == "https://x.example/feeds/cap.atom"
