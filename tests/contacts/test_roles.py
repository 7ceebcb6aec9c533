"""Contact roles as reference data: the roles of a county's warning registry, split 中心户 and 监测员,
names an import sheet uses, and the red level calling those who must act."""

from __future__ import annotations

from pathlib import Path

import pytest

from contacts.model import RoleInfo
from contacts.reference import RoleBook, UnknownRole
from tests.conftest import make_settings
from tests.contacts.helpers import reference
from warning.errors import ConfigError
from warning.policy import load_policy
from warning.settings import load_settings
from warning.web.contacts_api import build_reference

#: key → (Chinese label, a name an import sheet may use)
ROLES = {
    "cadre": ("党政干部", "乡镇干部"),
    "village_liaison_cadre": ("包村（驻村）干部", "驻村干部"),
    "village_committee": ("村居委会人员", "村(居)委会人员"),
    "grid_informant": ("网格信息员", "网格员"),
    "duty_officer": ("值班人员", "值班员"),
    "village_monitor": ("村社区中心户", "中心户"),
    "monitor": ("村（社区）监测员", "村监测员"),
    "weather_informant": ("气象信息员", "乡村气象信息员"),
    "broadcast_admin": ("应急广播管理员", "村村响管理员"),
    "hazard_monitor": ("地灾点监测员", "群测群防员"),
    "flash_flood_monitor": ("山洪灾害监测预警员", "山洪预警员"),
    "reservoir_keeper": ("水库管理人员", "水库管理员"),
    "reservoir_admin_head": ("水库行政责任人", "水库大坝安全行政责任人"),
    "reservoir_tech_head": ("水库技术责任人", "水库大坝安全技术责任人"),
    "reservoir_patrol_head": ("水库巡查责任人", "水库巡查员"),
    "forest_ranger": ("护林员", "生态护林员"),
    "shelter_manager": ("避险安置点管理员", "避灾场所管理员"),
    "school_head": ("学校负责人", "校长"),
    "hospital_head": ("医院负责人", "卫生院院长"),
    "care_home_head": ("养老机构负责人", "敬老院院长"),
    "scenic_spot_head": ("景区负责人", "旅游景区负责人"),
    "construction_site_head": ("在建工地负责人", "工地负责人"),
    "enterprise_head": ("企业负责人", "enterprise head"),
}


def test_the_registry_has_every_role_of_the_county() -> None:
    roles = reference(with_tree=False).roles
    assert set(roles.keys()) == set(ROLES)
    for key, (label, _) in ROLES.items():
        info = roles.roles[key]
        assert info.label_zh == label and info.label_en and not info.label_en.isspace(), key


@pytest.mark.parametrize("key", sorted(ROLES))
def test_each_role_resolves_by_key_labels_and_an_alias(key: str) -> None:
    roles = reference(with_tree=False).roles
    label, alias = ROLES[key]
    info = roles.roles[key]
    assert {roles.resolve(key), roles.resolve(label), roles.resolve(info.label_en.upper()), roles.resolve(alias)} \
        == {key}


def test_centre_households_and_monitors_are_different_roles() -> None:
    roles = reference(with_tree=False).roles
    households = {roles.resolve(n) for n in ("中心户", "村（社区）中心户", "村(社区)中心户", "社区中心户", "village_monitor")}
    monitors = {roles.resolve(n) for n in ("监测员", "村监测员", "村(社区)监测员", " 村（社区）监测员 ", "monitor")}
    assert households == {"village_monitor"} and monitors == {"monitor"}
    assert roles.label("village_monitor") == "村社区中心户" and roles.label("monitor") == "村（社区）监测员"


@pytest.mark.parametrize("raw", ["行政责任人", "技术责任人", "巡查责任人", "院长", "村长"])
def test_names_that_could_mean_several_roles_are_refused(raw: str) -> None:
    with pytest.raises(UnknownRole, match="角色未知"):
        reference(with_tree=False).roles.resolve(raw)


def test_a_name_given_to_two_roles_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already names the role 'a'"):
        RoleBook({"a": RoleInfo("a", "中心户", "Centre household"),
                  "b": RoleInfo("b", "监测员", "Monitor", aliases=("中心户",))})
    settings = make_settings(tmp_path, roles={"village_monitor": {"label_zh": "村社区中心户", "aliases": ["村监测员"]}})
    with pytest.raises(ConfigError, match="村监测员") as caught:
        build_reference(settings)
    assert caught.value.key == "roles"


def test_red_calls_whoever_must_act_and_other_levels_send_the_sms() -> None:
    settings = load_settings(None, env={})
    policy = load_policy(settings.section("policy"), roles=set(settings.section("roles")))
    called = {"cadre", "village_liaison_cadre", "duty_officer", "village_monitor", "monitor", "weather_informant",
              "broadcast_admin", "hazard_monitor", "flash_flood_monitor", "reservoir_keeper",
              "reservoir_admin_head", "reservoir_tech_head", "reservoir_patrol_head", "shelter_manager",
              "school_head", "hospital_head", "care_home_head", "scenic_spot_head", "construction_site_head"}
    red = policy.for_level("red")
    assert {r for r in ROLES if red.channels_for(r) == ("sms", "voice")} == called
    assert {red.channels_for(r) for r in set(ROLES) - called} == {("sms",)}
    for level in ("blue", "yellow", "orange"):
        assert {policy.for_level(level).channels_for(r) for r in ROLES} == {("sms",)}, level
