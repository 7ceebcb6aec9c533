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


DEMO = ROOT / "config" / "demo_regions.csv"
#: 三台县's townships in the demo tree, by their real statistical codes
TOWNSHIPS = {"510722101": "潼川镇", "510722107": "石安镇", "510722108": "富顺镇", "510722109": "三元镇",
             "510722112": "新德镇", "510722114": "鲁班镇", "510722123": "西平镇", "510722137": "芦溪镇",
             "510722140": "永明镇", "510722151": "北坝镇"}


def test_demo_tree() -> None:
    tree = RegionTree.from_csv(DEMO)
    assert tree.name("510722") == "三台县"
    towns = tree.children("510722")
    assert {t.code: t.name for t in towns} == TOWNSHIPS
    assert all(3 <= len(tree.children(t.code)) <= 5 for t in towns)
    assert tree.full_name("510722101001") == "四川省绵阳市三台县潼川镇东街社区"
    assert tree.full_name("510722109206") == "四川省绵阳市三台县三元镇三清村"
    assert [r.code for r in tree.children(None)] == ["510000"]
    assert all(len(c) == 12 for c in tree.leaves("510722"))
    assert tree.leaves("510700") == tree.leaves("5107") == tree.leaves("510722")


def test_demo_tree_says_it_is_illustrative_and_names_its_sources() -> None:
    head = [line for line in DEMO.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    text = "\n".join(head)
    assert "ILLUSTRATIVE" in text and "MADE UP" in text and "统计用区划代码" in text


def test_every_code_of_the_demo_tree_is_a_division_code_under_its_parent() -> None:
    tree = RegionTree.from_csv(DEMO)
    regions = list(tree)
    assert len(regions) > 40
    for r in regions:
        assert r.code.isascii() and r.code.isdigit() and len(r.code) in (6, 9, 12), r
        if r.code == "510000":
            assert r.parent is None or r.parent not in tree
            continue
        parent = tree.get(str(r.parent))
        assert parent is not None, r
        above = query_prefix(parent.code)  # 510700 stands for the prefix 5107
        assert r.code.startswith(above) and len(above) < len(query_prefix(r.code)), r
        assert tree.path(r.code)[-2:] == [parent, r], r
    assert all(r.code.startswith("510722") for r in regions if len(r.code) > 6)


def test_provinces_and_cities_are_found_by_code_or_prefix(tmp_path: Path) -> None:
    tree = RegionTree.from_csv(DEMO)
    assert tree.name("510000") == tree.name("51") == "四川省"
    assert tree.name("510700") == tree.name("5107") == "绵阳市"
    assert "510700" in tree and "5107" in tree and "510799" not in tree and "abc" not in tree
    assert tree.get("510722") is not None and tree.get("510722").parent == "510700"  # type: ignore[union-attr]
    assert [r.name for r in tree.children("510700")] == [r.name for r in tree.children("5107")] == ["三台县"]
    assert tree.children("bad") == [] and tree.get("bad") is None and tree.full_name("bad") == "bad"
    assert [r.name for r in tree.path("510722101001")] == ["四川省", "绵阳市", "三台县", "潼川镇", "东街社区"]
    # the older spelling (51, 5107) still loads, and a 12-digit township is read as the township
    path = tmp_path / "r.csv"
    path.write_text("code,name,parent\n51,四川省,\n5107,绵阳市,51\n510722,三台县,5107\n510722101000,潼川镇,\n",
                    encoding="utf-8")
    old = RegionTree.from_csv(path)
    assert old.full_name("510722101") == "四川省绵阳市三台县潼川镇" and old.name("510700") == "绵阳市"
    assert [r.code for r in old.children("510722")] == ["510722101"]


@pytest.mark.parametrize(("text", "reason"), [
    ("510000,四川省,\n51,四川,\n", "line 3: 51 is the division of line 2 again"),
    ("510722,三台县,\n510722101000,潼川镇,\n510722101,潼川,\n", "line 4"),
    ("510722,三台县,\n510722101,潼川镇,510723\n", "line 3: 510723 is not a division above 510722101"),
    ("510722,三台县,\n510722101,潼川镇,510722101\n", "line 3: 510722101 is not a division above"),
    ("510722,三台县,\n510722101,潼川镇,5107x\n", "line 3: parent '5107x' is not"),
    ("510722,三台县,\n５１０７２２１０１,潼川镇,\n", "line 3"),
])
def test_a_repeated_division_or_a_wrong_parent_names_the_line(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text("code,name,parent\n" + text, encoding="utf-8")
    with pytest.raises(RegionTreeError, match=reason):
        RegionTree.from_csv(path)


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
