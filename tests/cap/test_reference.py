"""Levels, event types from config, matching an info to a type, and the model's helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from warning.errors import ConfigError
from warning.model import Area, EarlyWarning, Info, Level, MsgType, Scope, Status
from warning.reference import (
    default_event_types,
    default_levels,
    load_event_types,
    load_levels,
    match_event_type,
)
from warning.settings import load_settings

SIGNAL_LEVELS = {
    "typhoon": "blue yellow orange red", "rainstorm": "blue yellow orange red", "blizzard": "blue yellow orange red",
    "cold_wave": "blue yellow orange red", "gale": "blue yellow orange red", "sandstorm": "yellow orange red",
    "heat_wave": "yellow orange red", "drought": "orange red", "lightning": "yellow orange red", "hail": "orange red",
    "frost": "blue yellow orange", "fog": "yellow orange red", "haze": "yellow orange red",
    "road_icing": "yellow orange red",
}


def test_meteorological_signals_have_the_levels_of_the_standard() -> None:
    types = default_event_types()
    assert {k: " ".join(types[k].levels) for k in SIGNAL_LEVELS} == SIGNAL_LEVELS
    assert types["hail"].allows(Level.RED) and not types["hail"].allows(Level.YELLOW)


def test_every_required_event_type_is_configured_with_names_and_category() -> None:
    types = default_event_types()
    wanted = {*SIGNAL_LEVELS, "flood", "flash_flood", "landslide", "debris_flow", "collapse", "geo_hazard_risk",
              "reservoir_danger"}
    assert wanted <= set(types)
    assert types["rainstorm"].name_zh == "暴雨" and types["rainstorm"].category == "Met"
    assert types["landslide"].category == "Geo" and types["reservoir_danger"].name_zh == "水库险情"


def test_event_types_come_from_the_settings_section() -> None:
    settings = load_settings(env={}, overrides={"event_types": {"ice_jam": {
        "name_zh": "冰凌", "name_en": "Ice jam", "cap_event": "Ice Jam", "category": "Met", "levels": ["red", "blue"]}}})
    types = load_event_types(settings.section("event_types"))
    assert types["ice_jam"].levels == (Level.BLUE, Level.RED) and "rainstorm" in types


GOOD_TYPE: dict[str, Any] = {"name_zh": "暴雨", "name_en": "Rainstorm", "cap_event": "Rainstorm", "category": "Met",
                             "levels": ["red"]}


@pytest.mark.parametrize(("change", "key"), [
    ({"category": "Weather"}, "event_types.x.category"),
    ({"levels": ["purple"]}, "event_types.x.levels"),
    ({"levels": []}, "event_types.x.levels"),
    ({"name_zh": ""}, "event_types.x.name_zh"),
    ({"aliases": "暴雨"}, "event_types.x.aliases"),
])
def test_bad_event_type_config_names_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_event_types({"x": {**GOOD_TYPE, **change}})
    assert caught.value.key == key


def test_levels_reference_data() -> None:
    levels = default_levels()
    assert [levels[lv].name_zh for lv in Level] == ["蓝色", "黄色", "橙色", "红色"]
    assert levels[Level.RED].grade_zh == "特别严重" and levels[Level.RED].colour.startswith("#")


LEVEL_RAW = {"name_zh": "x", "name_en": "x", "grade_zh": "x", "roman": "I", "cap_severity": "Minor", "colour": "#000000"}


@pytest.mark.parametrize(("section", "key"), [
    ({"purple": {}}, "levels.purple"),
    ({"blue": LEVEL_RAW}, "levels"),
])
def test_bad_levels_config(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_levels(section)
    assert caught.value.key.startswith(key)


def test_level_colour_and_severity_are_checked() -> None:
    raw = {"name_zh": "蓝色", "name_en": "Blue", "grade_zh": "一般", "roman": "IV", "cap_severity": "Minor",
           "colour": "#1E6FD9"}
    with pytest.raises(ConfigError, match="RRGGBB"):
        load_levels({"blue": {**raw, "colour": "blue"}})
    with pytest.raises(ConfigError, match="Minor"):
        load_levels({"blue": {**raw, "cap_severity": "Extreme"}})


@pytest.mark.parametrize(("word", "level"), [
    ("Extreme", Level.RED), ("severe", Level.ORANGE), ("Moderate", Level.YELLOW), ("Minor", Level.BLUE),
    ("Red", Level.RED), ("ORANGE", Level.ORANGE), ("yellow", Level.YELLOW), (" Blue ", Level.BLUE),
    ("红色", Level.RED), ("橙色", Level.ORANGE), ("黄色", Level.YELLOW), ("蓝色", Level.BLUE), ("红色预警", Level.RED),
    ("Unknown", None), ("", None), (None, None), ("purple", None),
])
def test_level_from_severity_accepts_both_vocabularies(word: str | None, level: Level | None) -> None:
    assert Level.from_severity(word) == level


def test_level_properties() -> None:
    assert [(lv.rank, lv.roman, lv.zh, lv.cap_severity) for lv in Level] == [
        (1, "IV", "蓝色", "Minor"), (2, "III", "黄色", "Moderate"), (3, "II", "橙色", "Severe"), (4, "I", "红色", "Extreme")]


def info(event: str, headline: str | None = None, codes: tuple[tuple[str, str], ...] = ()) -> Info:
    return Info(language="zh-CN", categories=("Met",), event=event, urgency="Immediate", severity="Severe",
                certainty="Likely", headline=headline, event_codes=codes)


@pytest.mark.parametrize(("event", "headline", "codes", "key"), [
    ("暴雨", None, (), "rainstorm"),
    ("暴雨红色预警", None, (), "rainstorm"),
    ("暴雪", None, (), "blizzard"),
    ("预警", "XX县气象台发布道路结冰黄色预警信号", (), "road_icing"),
    ("山洪灾害预警", None, (), "flash_flood"),
    ("洪水", None, (), "flood"),
    ("地质灾害气象风险预警", None, (), "geo_hazard_risk"),
    ("Flash Flood Warning", None, (), "flash_flood"),
    ("Flood Warning", None, (), "flood"),
    ("Hurricane Warning", None, (), "typhoon"),
    ("Weather", None, (("event_type", "hail"),), "hail"),
    ("Weather", None, (("CMA", "Heavy Fog"),), "fog"),
    ("Special Weather Statement", None, (), None),
    ("Windows", None, (), None),
])
def test_match_event_type(event: str, headline: str | None, codes: tuple[tuple[str, str], ...],
                          key: str | None) -> None:
    assert match_event_type(info(event, headline, codes), default_event_types()) == key


def test_configured_codes_match() -> None:
    types = load_event_types({"rainstorm": {**GOOD_TYPE, "codes": ["11B03"]}})
    assert match_event_type(info("x", codes=(("预警事件类型", "11B03"),)), types) == "rainstorm"


def test_warning_helpers() -> None:
    sent = datetime(2024, 7, 1, tzinfo=UTC)
    zh = info("暴雨").__class__(**{**{f: getattr(info("暴雨"), f) for f in Info.__slots__},
                                  "areas": (Area.of_regions("a", ("510726", "510727")),), "expires": sent})
    en = Info(language="en-US", categories=("Met",), event="Rain", urgency="Immediate", severity="Severe",
              certainty="Likely", areas=(Area.of_regions("b", ("510727", "510705")),))
    w = EarlyWarning("id", "s", sent, Status.EXERCISE, MsgType.ALERT, Scope.PUBLIC, (en, zh))
    assert w.info is zh and w.areas == zh.areas and w.expires == sent and w.is_exercise
    assert w.region_codes == ("510727", "510705", "510726")
    assert w.with_(status=Status.ACTUAL).is_exercise is False and w.is_exercise
    empty = w.with_(infos=())
    assert empty.info is None and empty.expires is None and empty.areas == ()


def test_a_warning_needs_an_aware_sent_time() -> None:
    with pytest.raises(ValueError, match="time zone"):
        EarlyWarning("id", "s", datetime(2024, 7, 1), Status.ACTUAL, MsgType.ALERT, Scope.PUBLIC, ())
