"""Region codes, prefixes, ancestors and the demo tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from contacts.reference import UnknownRole
from contacts.regions import InvalidRegionCode, RegionTree, RegionTreeError, ancestors, normalize_code, query_prefix
from tests.contacts.helpers import ROOT, reference


@pytest.mark.parametrize(("raw", "code"), [
    ("510722", "510722"), ("510722100", "510722100"), ("510722100001", "510722100001"),
    ("510722100000", "510722100"), ("510722000000", "510722"), ("510722000", "510722"), (" 510722100 ", "510722100"),
    ("510722100001.0", "510722100001"),
])
def test_normalize_code(raw: str, code: str) -> None:
    assert normalize_code(raw) == code


@pytest.mark.parametrize("raw", ["51072", "5107221", "51", "5107", "abcdef", "５１０７２２", "", "5107221000011"])
def test_bad_codes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRegionCode, match="行政区划代码无效"):
        normalize_code(raw)


@pytest.mark.parametrize(("raw", "prefix"), [("51", "51"), ("5107", "5107"), ("510700", "5107"), ("510000", "51"),
                                             ("510722", "510722"), ("510722100000", "510722100")])
def test_query_prefix(raw: str, prefix: str) -> None:
    assert query_prefix(raw) == prefix


def test_ancestors() -> None:
    assert ancestors("510722100001") == ["51", "5107", "510722", "510722100", "510722100001"]
    assert ancestors("510722") == ["51", "5107", "510722"]


def test_demo_tree() -> None:
    tree = RegionTree.from_csv(ROOT / "config" / "demo_regions.csv")
    assert tree.name("510722") == "三台县"
    towns = tree.children("510722")
    assert len(towns) >= 8 and {t.name for t in towns} >= {"潼川镇", "芦溪镇", "西平镇", "鲁班镇"}
    assert all(len(t.code) == 9 and 3 <= len(tree.children(t.code)) <= 5 for t in towns)
    assert tree.full_name("510722100001") == "四川省绵阳市三台县潼川镇东街社区"
    assert [r.code for r in tree.children(None)] == ["51"]
    assert all(len(c) == 12 for c in tree.leaves("510722"))


def test_bad_tree_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("code,name,parent\n510722,三台县,\n5107X,坏,\n", encoding="utf-8")
    with pytest.raises(RegionTreeError, match="line 3"):
        RegionTree.from_csv(path)


def test_roles_by_key_label_and_alias() -> None:
    roles = reference().roles
    assert roles.resolve("cadre") == "cadre"
    assert roles.resolve("党政干部") == "cadre"
    assert roles.resolve("村(社区)中心户") == roles.resolve("村（社区）中心户") == "village_monitor"
    assert roles.resolve(" 村监测员 ") == "monitor"
    assert roles.resolve("Reservoir Keeper") == "reservoir_keeper"
    with pytest.raises(UnknownRole, match="角色未知"):
        roles.resolve("村长")
