"""GB/T 35965.1 without a server: identifiers, the national form read by our parser, the region geocode names
feeds use, and the `[issuer]` / `[cap]` settings checked at start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A
from warning.cap import parse_cap
from warning.cap_emit import identifier_parts, make_identifier
from warning.errors import CapParseError, ConfigError
from warning.issuer import load_issuer


def test_identifiers_have_31_characters_and_a_one_digit_serial() -> None:
    when = datetime(2020, 2, 5, 2, 51, 19, tzinfo=UTC)
    ident = make_identifier("410000", "41600000", when, 9)
    assert ident == "41000041600000_20200205105119_9" and len(ident) == 31
    with pytest.raises(ValueError, match="0-9"):
        make_identifier("410000", "41600000", when, 10)
    # the national system's own messages often leave out _N: both forms are read
    assert identifier_parts("41000041600000_20200205105119") == ("410000", "41600000", "20200205105119", None)
    assert identifier_parts(ident) == ("410000", "41600000", "20200205105119", 9)
    assert identifier_parts("urn:oid:2.49.0.1.156.0.2024.7.11") is None


NATIONAL = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>51072241600000_20261201121000</identifier><sender>三台县气象台</sender>
  <senderCode>51072241600000</senderCode><sent>2026-12-01T12:10:00+08:00</sent><status>Actual</status>
  <msgType>Alert</msgType><scope>Public</scope>
  <info><language>zh-CN</language><category>Met</category><eventType>11B06</eventType><urgency>Immediate</urgency>
    <severity>Yellow</severity><certainty>Likely</certainty><expires>2026-12-01T22:00:00+08:00</expires>
    <senderName>三台县气象台</senderName><headline>三台县气象台发布大风黄色预警</headline>
    <area><areaDesc>潼川镇、芦溪镇</areaDesc><geocode>510722101000,510722137000</geocode></area></info>
</alert>"""


def test_a_national_document_is_read() -> None:
    w = parse_cap(NATIONAL.encode())
    assert w.identifier == "51072241600000_20261201121000"  # 29 characters, no serial
    assert w.event_type == "gale" and w.level is not None and w.level.value == "yellow"
    assert w.region_codes == (TONGCHUAN, LUXI)


@pytest.mark.parametrize("name", ["GB2260", "gb2260", "GB/T 2260", "GB/T2260", "ADCODE", "adcode", "行政区划代码",
                                  "areaCode", "AREACODE"])
@pytest.mark.parametrize(("value", "code"), [("510722", "510722"), ("510722101", TONGCHUAN),
                                             ("510722101000", TONGCHUAN), ("510722101001", VILLAGE_A)])
def test_region_geocodes_under_every_name_feeds_use(name: str, value: str, code: str) -> None:
    doc = NATIONAL.replace("<geocode>510722101000,510722137000</geocode>",
                           f"<geocode><valueName>{name}</valueName><value>{value}</value></geocode>")
    assert parse_cap(doc.encode()).region_codes == (code,)


def test_a_bad_code_in_a_national_list_is_a_clear_error() -> None:
    with pytest.raises(CapParseError, match=r"geocode\[2\]/value"):
        parse_cap(NATIONAL.replace("510722101000,510722137000", "510722101000,51072").encode())


@pytest.mark.parametrize(("section", "key", "value", "words"), [
    ("issuer", "unit", "0001", "8 digits"), ("issuer", "unit", "4160000a", "8 digits"),
    ("issuer", "code", "51072", "6-digit"), ("issuer", "signature", "三台县应急管理局", "【】"),
    ("issuer", "signature", "【三台县】【应急】", "【】"), ("issuer", "signature", "", "【】"),
    ("issuer", "name", "", "name"), ("cap", "profile", "national", "cap12, gbt35965"),
])
def test_bad_issuer_and_cap_settings_stop_the_start(tmp_path: Path, section: str, key: str, value: str,
                                                    words: str) -> None:
    settings = make_settings(tmp_path, **{section: {key: value}})
    with pytest.raises(ConfigError, match=words) as err:
        load_issuer(settings)
    assert err.value.key == f"{section}.{key}"


def test_the_issuer_settings_as_read(tmp_path: Path) -> None:
    issuer = load_issuer(make_settings(tmp_path, cap={"profile": "gbt35965"}))
    assert (issuer.sender_code, issuer.signature, issuer.cap_profile) == ("51072200010001", "【三台县应急管理局】",
                                                                          "gbt35965")
