"""parse_cap on real-shaped documents, malformed ones and hostile ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from warning.cap import DEFAULT_MAX_BYTES, parse_cap, region_code
from warning.errors import CapParseError
from warning.model import Circle, Level, MsgType, Reference, Scope, Status

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
CST = timezone(timedelta(hours=8))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def problems(name_or_bytes: str | bytes) -> list[tuple[str, str]]:
    data = load(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    with pytest.raises(CapParseError) as caught:
        parse_cap(data)
    return caught.value.problems


def paths(name_or_bytes: str | bytes) -> list[str]:
    return [p for p, _ in problems(name_or_bytes)]


@pytest.mark.parametrize(("name", "level", "event_type", "regions"), [
    ("cma_rainstorm_red.xml", Level.RED, "rainstorm", ("510726",)),
    ("hydro_flash_flood.xml", Level.ORANGE, "flash_flood", ("510722137205", "510722137206", "510722137")),
    ("geo_hazard_polygon.xml", Level.YELLOW, "geo_hazard_risk", ("510726", "510727", "510705")),
    ("cn_update.xml", Level.ORANGE, "rainstorm", ("510726100", "510726101", "510726104")),
    ("cn_cancel.xml", Level.BLUE, "rainstorm", ("510726",)),
    ("nws_flash_flood.xml", Level.ORANGE, "flash_flood", ()),
    ("meteoalarm_multilang.xml", Level.YELLOW, "gale", ()),
    ("cap11_fog.xml", Level.ORANGE, "fog", ("440605",)),
    ("prefixed_namespace.xml", Level.RED, "typhoon", ("330900",)),
    ("circle_reservoir.xml", Level.RED, "reservoir_danger", ()),
    ("no_namespace_gb2260_padded.xml", Level.YELLOW, "heat_wave", ("430104", "430112")),
])
def test_real_shaped_documents_parse_with_level_event_type_and_regions(
        name: str, level: Level, event_type: str, regions: tuple[str, ...]) -> None:
    w = parse_cap(load(name))
    assert (w.level, w.event_type, w.region_codes) == (level, event_type, regions)


def test_cma_red_rainstorm_in_full() -> None:
    w = parse_cap(load("cma_rainstorm_red.xml"))
    assert w.identifier == "51072241600000_20240711053000"
    assert w.sent == datetime(2024, 7, 10, 21, 30, tzinfo=UTC)
    assert (w.status, w.msg_type, w.scope, w.codes) == (Status.ACTUAL, MsgType.ALERT, Scope.PUBLIC, ("Version 1.0",))
    info = w.info
    assert info is not None
    # the Chinese profile's colour word gives the level and becomes the CAP word
    assert info.severity == "Extreme"
    assert info.event == "暴雨" and info.sender_name == "北川羌族自治县气象台"
    assert info.expires == datetime(2024, 7, 12, 5, 30, tzinfo=CST) == w.expires
    assert info.event_codes == (("预警类型", "暴雨红色预警"),)
    assert info.parameters == (("信号级别", "Ⅰ级"),)
    assert info.response_types == ("Prepare",)
    assert info.areas[0].geocodes == (("GB2260", "510726"),)
    assert info.description is not None and info.description.startswith("北川羌族自治县气象台2024年")


def test_update_and_cancel_chain_their_references() -> None:
    update, cancel = parse_cap(load("cn_update.xml")), parse_cap(load("cn_cancel.xml"))
    first = Reference("51072241600000", "51072241600000_20240711053000", datetime(2024, 7, 11, 5, 30, tzinfo=CST))
    assert update.msg_type is MsgType.UPDATE and update.references == (first,)
    second = Reference("51072241600000", update.identifier, update.sent)
    assert cancel.msg_type is MsgType.CANCEL and cancel.references == (first, second)
    assert cancel.info is not None and cancel.info.response_types == ("AllClear",)


def test_nws_alert_keeps_every_info_geocode_and_vtec_and_picks_english_when_no_chinese() -> None:
    w = parse_cap(load("nws_flash_flood.xml"))
    assert [i.language for i in w.infos] == ["en-US", "es-US"]
    assert w.info is w.infos[0]
    area = w.infos[0].areas[0]
    assert area.geocodes == (("SAME", "048201"), ("UGC", "TXC201"))
    assert area.polygons[0][0] == area.polygons[0][-1] == (29.83, -95.55)
    params = dict(w.infos[0].parameters)
    assert params["VTEC"].startswith("/O.NEW.KHGX.FF.W.0042.240806T0214Z-240806T0515Z/")
    assert w.infos[0].event_codes == (("SAME", "FFW"), ("NationalWeatherService", "FFW"))
    assert w.sent == datetime(2024, 8, 6, 2, 14, tzinfo=UTC)
    assert w.infos[1].instruction == "¡Dé la vuelta, no se ahogue!"


def test_meteoalarm_three_languages_with_awareness_parameters() -> None:
    w = parse_cap(load("meteoalarm_multilang.xml"))
    assert [i.language for i in w.infos] == ["de-DE", "en-GB", "fr-FR"]
    assert all(("awareness_level", "2; yellow; Moderate") in i.parameters for i in w.infos)
    assert w.infos[0].areas[0].geocodes == (("EMMA_ID", "DE412"), ("WARNCELLID", "901054001"))
    assert w.infos[2].areas[0].desc == "Kreis Nordfriesland - Côte"
    assert len(w.codes) == 2


def test_zh_cn_info_is_chosen_before_other_chinese_and_before_the_first() -> None:
    doc = load("cma_rainstorm_red.xml").decode()
    start, end = doc.index("<info>"), doc.index("</info>") + len("</info>")
    block = doc[start:end]
    other = block.replace("<language>zh-CN</language>", "<language>en-US</language>")
    tw = block.replace("<language>zh-CN</language>", "<language>zh-TW</language>")
    w = parse_cap((doc[:start] + other + tw + block + doc[end:]).encode())
    assert [i.language for i in w.infos] == ["en-US", "zh-TW", "zh-CN"]
    assert w.info is w.infos[2]
    w2 = parse_cap((doc[:start] + other + tw + doc[end:]).encode())
    assert w2.info is w2.infos[1]


def test_cap_1_1_very_likely_becomes_likely() -> None:
    w = parse_cap(load("cap11_fog.xml"))
    assert w.info is not None and w.info.certainty == "Likely" and w.info.categories == ("Met", "Transport")


def test_prefixed_namespace_ignores_foreign_extension_elements() -> None:
    w = parse_cap(load("prefixed_namespace.xml"))
    assert w.identifier == "33000041600000_20240915100000_7" and w.note is None


def test_circle_altitude_ceiling_and_exercise() -> None:
    w = parse_cap(load("circle_reservoir.xml"))
    area = w.areas[0]
    assert area.circles == (Circle(31.0586, 105.2413, 5.0),)
    assert (area.altitude, area.ceiling) == (380.0, 460.5)
    assert w.is_exercise and w.note == "2024年汛期水库险情应急演练"


def test_document_without_namespace_is_read_and_chinese_text_means_zh_cn() -> None:
    w = parse_cap(load("no_namespace_gb2260_padded.xml"))
    assert w.info is not None and w.info.language == "zh-CN"
    assert w.info.severity == "Moderate"
    assert w.areas[0].geocodes[0] == ("GB2260", "430104000000")


def test_gbk_encoded_document_is_read() -> None:
    text = load("cma_rainstorm_red.xml").decode().replace('encoding="UTF-8"', 'encoding="GBK"')
    w = parse_cap(text.encode("gbk"))
    assert w.info is not None and w.info.headline == "北川羌族自治县气象台发布暴雨红色预警信号"


@pytest.mark.parametrize(("value", "code"), [
    ("510722", "510722"), ("510722100", "510722100"), ("510722100203", "510722100203"),
    ("510722000000", "510722"), ("510722100000", "510722100"), ("510722000", "510722"), (" 510722 ", "510722"),
    ("5107", None), ("51072210", None), ("51072a", None), ("５１０７２２", None), ("", None),
])
def test_region_code_lengths_and_padding(value: str, code: str | None) -> None:
    assert region_code(value) == code


# --- malformed documents: every problem, each with its path ---

def test_sent_without_zone_and_bad_expiry_are_both_reported() -> None:
    found = problems("bad_sent_without_zone.xml")
    assert [p for p, _ in found] == ["alert/sent", "alert/info[1]/expires"]
    assert "time has no zone" in found[0][1] and "时区" in found[0][1]


def test_missing_required_elements_are_all_reported_with_paths() -> None:
    assert paths("bad_missing_required.xml") == [
        "alert/identifier", "alert/status", "alert/restriction",
        "alert/info[2]/category", "alert/info[2]/event", "alert/info[2]/severity",
        "alert/info[2]/area[1]/areaDesc", "alert/info[2]/area[1]/geocode[1]/value",
    ]


def test_bad_polygons_and_circles_are_each_reported() -> None:
    found = problems("bad_polygons.xml")
    assert [p for p, _ in found] == [
        "alert/info[1]/area[1]/polygon[1]", "alert/info[1]/area[2]/polygon[1]",
        "alert/info[1]/area[2]/polygon[2]", "alert/info[1]/area[2]/polygon[2]", "alert/info[1]/area[2]/circle[1]",
    ]
    assert "not closed" in found[0][1] and "at least 4 points" in found[1][1] and "outside" in found[2][1]


def test_bad_enums_and_identifier_are_all_reported() -> None:
    assert paths("bad_enums.xml") == [
        "alert/identifier", "alert/status", "alert/msgType", "alert/scope", "alert/info[1]/category",
        "alert/info[1]/responseType", "alert/info[1]/urgency", "alert/info[1]/severity", "alert/info[1]/certainty",
        "alert/info[1]/area[1]/geocode[1]/value",
    ]


def _with(old: str, new: str, name: str = "cma_rainstorm_red.xml") -> bytes:
    doc = load(name).decode()
    assert old in doc
    return doc.replace(old, new, 1).encode()


@pytest.mark.parametrize(("old", "new", "path", "words"), [
    ("<references>51072241600000,51072241600000_20240711053000,2024-07-11T05:30:00+08:00",
     "<references>51072241600000,51072241600000_20240711053000", "alert/references", "sender,identifier,sent"),
    ("2024-07-11T05:30:00+08:00</references>", "2024-07-11T05:30:00</references>", "alert/references[1]", "no zone"),
])
def test_bad_references(old: str, new: str, path: str, words: str) -> None:
    found = problems(_with(old, new, "cn_update.xml"))
    assert [p for p, _ in found] == [path] and words in found[0][1]


@pytest.mark.parametrize(("old", "new", "path"), [
    ("<sent>2024-07-11T05:30:00+08:00</sent>", "<sent>2024-02-30T05:30:00+08:00</sent>", "alert/sent"),
    ("<scope>Public</scope>", "<scope>Private</scope>", "alert/addresses"),
    ("<status>Actual</status>", "<status>Actual</status><status>Test</status>", "alert/status"),
    ("<areaDesc>北川羌族自治县</areaDesc>", "<areaDesc>北川</areaDesc><circle>31.8,104.4 -2</circle>",
     "alert/info[1]/area[1]/circle[1]"),
    ("<areaDesc>北川羌族自治县</areaDesc>", "<areaDesc>北川</areaDesc><ceiling>30</ceiling>",
     "alert/info[1]/area[1]/ceiling"),
    ("<areaDesc>北川羌族自治县</areaDesc>", "<areaDesc>北川</areaDesc><altitude>high</altitude>",
     "alert/info[1]/area[1]/altitude"),
    ("<areaDesc>北川羌族自治县</areaDesc>", "<areaDesc>北川</areaDesc><polygon>31,104 32,nan 33,105 31,104</polygon>",
     "alert/info[1]/area[1]/polygon[1]"),
    ("<web>", "<resource><resourceDesc>图</resourceDesc><size>big</size></resource><web>",
     "alert/info[1]/resource[1]/mimeType"),
    ("<sender>51072241600000</sender>", "<sender>a&amp;b</sender>", "alert/sender"),
])
def test_each_single_fault_is_reported_at_its_path(old: str, new: str, path: str) -> None:
    assert path in paths(_with(old, new))


def test_resource_is_read() -> None:
    w = parse_cap(_with("<web>", "<resource><resourceDesc>雷达图</resourceDesc><mimeType>image/png</mimeType>"
                                 "<size>2048</size><uri>http://example.org/r.png</uri></resource><web>"))
    assert w.info is not None and w.info.resources[0].size == 2048 and w.info.resources[0].mime_type == "image/png"


@pytest.mark.parametrize(("data", "words"), [
    (b"", "not well-formed"),
    (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier>", "not well-formed"),
    (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "not <alert>"),
    (b"<alert xmlns='http://www.incident.com/cap/1.0'/>", "unsupported namespace"),
    (b"<?xml version='1.0' encoding='GB2312'?><alert>\xff\xff</alert>", "not GB2312"),
])
def test_not_cap_at_all(data: bytes, words: str) -> None:
    found = problems(data)
    assert len(found) == 1 and words in found[0][1]


# --- hostile documents: refused quickly, the process unharmed ---

@pytest.mark.parametrize("name", [
    "hostile_xxe.xml", "hostile_xxe_parameter.xml", "hostile_billion_laughs.xml", "hostile_internal_dtd.xml",
    "hostile_external_dtd.xml",
])
def test_hostile_documents_are_refused_and_leak_nothing(name: str) -> None:
    found = problems(name)
    assert found[0][0] == "alert" and "refused unsafe XML" in found[0][1]
    assert "root:" not in str(found)


def test_entities_without_a_dtd_are_not_expanded() -> None:
    # an undeclared entity is simply not well-formed: nothing is fetched or expanded
    assert "not well-formed" in problems(_with("<note>", "<note>&xxe;", "circle_reservoir.xml"))[0][1]


def test_billion_laughs_is_refused_at_the_dtd_before_any_expansion() -> None:
    # 10^9 "lol"s would be 3 GB; being refused at all (with no MemoryError) shows nothing was expanded
    data = load("hostile_billion_laughs.xml")
    for _ in range(50):
        with pytest.raises(CapParseError):
            parse_cap(data)
    assert parse_cap(load("cma_rainstorm_red.xml")).level is Level.RED


def test_oversized_document_is_refused_before_parsing() -> None:
    # 2 MB of otherwise harmless, even well-formed, XML; the cap is checked on the length alone
    pad = b"<note>" + b"x" * (2 * 1024 * 1024) + b"</note>"
    data = _with("<scope>Public</scope>", "<scope>Public</scope>" + pad.decode())
    assert len(data) > DEFAULT_MAX_BYTES
    found = problems(data)
    assert found == [("alert", f"文档过大 document too large: more than {DEFAULT_MAX_BYTES} bytes")]
    # the same bytes under a larger cap are read: the refusal was the size, not the content
    assert parse_cap(data, max_bytes=len(data)).note == "x" * (2 * 1024 * 1024)
    with pytest.raises(CapParseError):
        parse_cap(b"<" * 101, max_bytes=100)


def test_event_types_can_be_supplied() -> None:
    assert parse_cap(load("cma_rainstorm_red.xml"), event_types={}).event_type is None
