"""Places by name from the region tree, areaDesc names back to codes, and the wording helpers: Beijing time, what
an update changed, a description trimmed for SMS."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contacts.regions import RegionTree
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B
from warning.model import Area, Circle, EarlyWarning, Info, Level, MsgType, Scope, Status
from warning.places import Places
from warning.wording import CHANGE_PARAM, Change, compare, mark_change, param, trimmed, zh_time

TREE = RegionTree.from_csv(Path(__file__).resolve().parent.parent.parent / "config" / "demo_regions.csv")
PLACES = Places({r.code: r.name for r in TREE}, home="510722")
TOWNSHIPS = [r.code for r in TREE if len(r.code) == 9]


@pytest.mark.parametrize(("codes", "named"), [
    ([TONGCHUAN, LUXI], "潼川镇、芦溪镇"),
    (["510722"], "三台县"),
    (["510722000000", TONGCHUAN], "三台县"),  # the county covers its townships
    ([TONGCHUAN, VILLAGE_A], "潼川镇"),  # a township covers its villages
    ([VILLAGE_A, "510722101002"], "潼川镇东街社区、西街社区"),
    ([VILLAGE_A, VILLAGE_B], "潼川镇东街社区、芦溪镇白鹤村"),
    (["510722101999"], "潼川镇部分地区"),  # a village the tree does not list
    (["510799"], "绵阳市部分地区"),  # a county the tree does not list, in a city it does
    (["440106"], ""),  # nothing known: never the code
    (["51072210"], ""),  # not a code at all
])
def test_codes_are_named(codes: list[str], named: str) -> None:
    assert PLACES.describe(codes, max_chars=None) == named


def test_a_long_list_is_summed_up_by_its_first_name_and_the_kind_of_place() -> None:
    assert PLACES.describe(TOWNSHIPS) == "潼川镇等10个镇"
    assert PLACES.describe(TOWNSHIPS, max_chars=None).count("、") == 9
    villages = [r.code for r in TREE if r.code.startswith(TONGCHUAN) and len(r.code) == 12]
    assert PLACES.describe(villages) == f"潼川镇东街社区等{len(villages)}个村（社区）"
    assert PLACES.describe([*TOWNSHIPS[:4], VILLAGE_B]) == "潼川镇等5地"  # townships and a village
    assert PLACES.describe([TONGCHUAN, LUXI]) == "潼川镇、芦溪镇"  # short enough: in full


@pytest.mark.parametrize(("desc", "codes"), [
    ("潼川镇", (TONGCHUAN,)),
    ("三台县潼川镇、芦溪镇", (TONGCHUAN, LUXI)),
    ("四川省绵阳市三台县", ("510722",)),
    ("三台县全境", ("510722",)),
    ("三台县北部", ("510722",)),
    ("潼川镇东街社区；芦溪镇白鹤村", (VILLAGE_A, VILLAGE_B)),
    ("潼川镇和芦溪镇等地", (TONGCHUAN, LUXI)),
    ("潼川镇、涪江沿岸", ()),  # one part unknown: nothing resolved, a person decides
    ("东街", ()),  # not a whole name
    ("", ()),
])
def test_area_descriptions_are_resolved_by_name(desc: str, codes: tuple[str, ...]) -> None:
    assert PLACES.resolve(desc) == codes


def test_a_name_two_places_share_is_taken_at_home_or_not_at_all() -> None:
    names = {"510722": "三台县", "510722101": "新华镇", "510723": "盐亭县", "510723101": "新华镇",
             "510724": "安州区", "510724101": "太平镇", "510724102": "太平镇"}
    assert Places(names, home="510722").resolve("新华镇") == ("510722101",)
    assert Places(names, home="510722").resolve("盐亭县新华镇") == ("510723101",)
    assert Places(names, home="510724").resolve("太平镇") == ()


def test_beijing_time_as_a_notice_writes_it() -> None:
    assert zh_time(datetime(2026, 12, 1, 4, 35, 20, tzinfo=UTC)) == "12月1日12时35分"
    assert zh_time(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)) == "12月1日18时"
    assert zh_time(datetime(2026, 12, 31, 16, 5, tzinfo=UTC)) == "1月1日0时5分"


def warning(level: Level, codes: tuple[str, ...] = (), *, area: Area | None = None) -> EarlyWarning:
    info = Info(language="zh-CN", categories=("Met",), event="暴雨", urgency="Immediate", severity=level.cap_severity,
                certainty="Likely", areas=(area or Area.of_regions("x", codes),))
    return EarlyWarning(identifier="i", sender="s", sent=datetime(2026, 12, 1, tzinfo=UTC), status=Status.ACTUAL,
                        msg_type=MsgType.UPDATE, scope=Scope.PUBLIC, infos=(info,), level=level)


SQUARE = ((31.0, 105.0), (31.0, 105.2), (31.2, 105.2), (31.2, 105.0), (31.0, 105.0))
SMALL = ((31.05, 105.05), (31.05, 105.1), (31.1, 105.1), (31.1, 105.05), (31.05, 105.05))
ELSEWHERE = ((30.0, 104.0), (30.0, 104.1), (30.1, 104.1), (30.1, 104.0), (30.0, 104.0))


@pytest.mark.parametrize(("before", "after", "change"), [
    (warning(Level.ORANGE, (TONGCHUAN,)), warning(Level.RED, (TONGCHUAN,)), Change("up", "orange", "")),
    (warning(Level.RED, (TONGCHUAN,)), warning(Level.YELLOW, (TONGCHUAN,)), Change("down", "red", "")),
    (warning(Level.RED, (TONGCHUAN,)), warning(Level.RED, (TONGCHUAN, LUXI)), Change("", "", "wider")),
    (warning(Level.RED, (VILLAGE_A,)), warning(Level.RED, (TONGCHUAN,)), Change("", "", "wider")),
    (warning(Level.RED, (TONGCHUAN, LUXI)), warning(Level.RED, (LUXI,)), Change("", "", "narrower")),
    (warning(Level.RED, (TONGCHUAN,)), warning(Level.RED, (LUXI,)), Change("", "", "moved")),
    (warning(Level.RED, (TONGCHUAN,)), warning(Level.RED, (TONGCHUAN,)), Change()),
    (warning(Level.RED, area=Area("a", polygons=(SMALL,))), warning(Level.RED, area=Area("a", polygons=(SQUARE,))),
     Change("", "", "wider")),
    (warning(Level.RED, area=Area("a", polygons=(SQUARE,))), warning(Level.RED, area=Area("a", polygons=(SMALL,))),
     Change("", "", "narrower")),
    (warning(Level.RED, area=Area("a", polygons=(SQUARE,))), warning(Level.RED, area=Area("a", polygons=(ELSEWHERE,))),
     Change("", "", "moved")),
    (warning(Level.RED, area=Area("a", circles=(Circle(31.1, 105.1, 5),))),
     warning(Level.ORANGE, area=Area("a", circles=(Circle(31.1, 105.1, 10),))), Change("down", "red", "wider")),
])
def test_what_an_update_changed(before: EarlyWarning, after: EarlyWarning, change: Change) -> None:
    assert compare(before, after) == change
    marked = mark_change(before, after)
    assert Change.decode(param(marked.info, CHANGE_PARAM)) == change
    assert mark_change(before, marked).infos[0].parameters.count((CHANGE_PARAM, change.encode())) == (
        1 if change.encode() else 0)  # marked once, not twice


def test_unknown_change_words_are_ignored() -> None:
    assert Change.decode("level_up:purple area_sideways level_down:orange") == Change("down", "orange", "")


def test_a_description_is_trimmed_by_sentence_then_clause_then_cut() -> None:
    text = "预计未来3小时降雨量将达100毫米以上，局地150毫米。山洪风险极高。请注意。"
    assert trimmed(text) == ["预计未来3小时降雨量将达100毫米以上，局地150毫米。山洪风险极高。",
                             "预计未来3小时降雨量将达100毫米以上，局地150毫米。", "预计未来3小时降雨量将达100毫米以上。"]
    one_long_clause = "受冷暖空气共同影响预计今天夜间到明天白天潼川镇芦溪镇石安镇将出现大暴雨局地特大暴雨。"
    assert trimmed(one_long_clause) == [one_long_clause[:40] + "…", one_long_clause[:24] + "…"]
    assert trimmed("短句。") == [] and trimmed("") == []
