"""Levels, event types from config, matching an info to a type, and the model's helpers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from warning.errors import ConfigError
from warning.model import CATEGORIES, Area, EarlyWarning, Info, Level, MsgType, Scope, Status
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


# Types beyond the national signal set: flood control, forest fire and provincial signals (issue 9).
OTHER_LEVELS = {
    "thunderstorm_gale": "blue yellow orange red", "low_temperature": "blue yellow orange red",
    "persistent_low_temperature": "blue yellow orange red", "freezing": "blue yellow orange red",
    "wire_icing": "blue yellow orange red", "dry_hot_wind": "blue yellow orange red",
    "forest_fire_danger": "yellow orange red", "forest_grassland_fire_danger": "blue yellow orange red",
    "urban_waterlogging": "blue yellow orange red", "small_river_flood": "blue yellow orange red",
    "flood": "blue yellow orange red", "flash_flood": "blue yellow orange red",
    "geo_hazard_risk": "blue yellow orange red", "reservoir_danger": "blue yellow orange red",
}


def test_flood_control_and_provincial_types_have_their_levels() -> None:
    types = default_event_types()
    assert {k: " ".join(types[k].levels) for k in OTHER_LEVELS} == OTHER_LEVELS
    assert not types["forest_fire_danger"].allows(Level.BLUE)  # 一、二级森林火险只作预报，不发信号
    assert types["forest_fire_danger"].category == types["forest_grassland_fire_danger"].category == "Fire"
    assert types["small_river_flood"].name_zh == "中小河流洪水" and types["urban_waterlogging"].name_zh == "城市内涝"


def test_every_configured_type_has_names_levels_and_a_cap_category() -> None:
    for key, t in default_event_types().items():
        assert t.name_zh and t.name_en and t.cap_event, key
        assert t.category in CATEGORIES, key
        assert t.levels and list(t.levels) == sorted(t.levels, key=lambda lv: lv.rank), key


def test_every_configured_type_has_a_short_defence_guide() -> None:
    types = default_event_types()
    for key, t in types.items():
        assert 10 <= len(t.guide_zh) <= 60 and t.guide_zh.endswith("。"), key  # an instruction that fits an SMS
    assert "转移" in types["rainstorm"].guide_zh and "山洪沟" in types["flash_flood"].guide_zh
    assert load_event_types({"x": GOOD_TYPE})["x"].guide_zh == ""  # optional


def test_national_event_codes_are_of_the_national_form_and_unique() -> None:
    types = default_event_types()
    codes = [c for t in types.values() for c in t.codes]
    assert codes and len(codes) == len(set(codes))
    assert all(re.fullmatch(r"11[A-K]\d{2}", c) for c in codes), codes
    assert types["rainstorm"].codes == ("11B03",) and types["gale"].codes == ("11B06",)
    assert types["thunderstorm_gale"].codes == ("11B20",) and types["geo_hazard_risk"].codes == ("11B37",)
    # a code that could not be confirmed from a public source stays empty
    assert types["wire_icing"].codes == () and types["urban_waterlogging"].codes == ()


def test_a_name_or_code_claimed_by_two_types_is_refused() -> None:
    other = {**GOOD_TYPE, "name_zh": "暴雨洪涝", "name_en": "Rain flood", "cap_event": "Rain Flood"}
    with pytest.raises(ConfigError, match="already a name or code of event_types.a") as caught:
        load_event_types({"a": {**GOOD_TYPE, "codes": ["11B03"]}, "b": {**other, "codes": ["11B03"]}})
    assert caught.value.key == "event_types.b"
    with pytest.raises(ConfigError, match="'暴雨'"):
        load_event_types({"a": GOOD_TYPE, "b": {**other, "aliases": ["暴雨"]}})


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
    ({"guide_zh": ["转移"]}, "event_types.x.guide_zh"),
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
    ("预警", "三台县气象台发布雷雨大风黄色预警信号", (), "thunderstorm_gale"),
    ("雷暴大风", None, (), "thunderstorm_gale"),
    ("Weather", None, (("预警事件类型", "11B20"),), "thunderstorm_gale"),
    ("Weather", None, (("eventType", "11B06"),), "gale"),
    ("中小河流洪水气象风险预警", None, (), "small_river_flood"),
    ("涪江洪水蓝色预警", None, (), "flood"),
    ("城市内涝气象风险预警", None, (), "urban_waterlogging"),
    ("森林火险黄色预警信号", None, (), "forest_fire_danger"),
    ("高森林火险橙色预警", None, (), "forest_grassland_fire_danger"),
    ("森林（草原）火险", None, (), "forest_grassland_fire_danger"),
    ("持续低温蓝色预警", None, (), "persistent_low_temperature"),
    ("低温黄色预警", None, (), "low_temperature"),
    ("电线积冰橙色预警", None, (), "wire_icing"),
    ("干热风", None, (), "dry_hot_wind"),
    ("冰冻", None, (), "freezing"),
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
