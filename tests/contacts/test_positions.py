"""Positions (职务) on contacts: reference data, the import sheet's 职务 column and the export, the API field and
filter, and the registry's by-position lookup ("the 主要负责人 of every township and village in the area")."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contacts import keys
from contacts.importer import import_contacts
from contacts.model import Contact
from contacts.positions import PositionBook, UnknownPosition
from contacts.store import RedisRegistry
from tests.conftest import auth, make_settings
from tests.contacts.helpers import NOW, ZH_HEADER, csv_bytes, reference
from tests.contacts.test_api import client, make_client
from tests.warnings.conftest import LUXI, OUTSIDE, TONGCHUAN, VILLAGE_A, VILLAGE_B
from warning.errors import ConfigError
from warning.web.contacts_api import build_reference

__all__ = ["client", "make_client"]
#: key → (Chinese label, a name a sheet may use): the positions the 叫应 chain names
POSITIONS = {
    "none": ("无", "无职务"),
    "principal": ("主要负责人", "镇长"),
    "deputy": ("分管负责人", "分管领导"),
    "village_liaison_cadre": ("包村（驻村）干部", "包村干部"),
    "village_head": ("村（社区）负责人", "村支书"),
    "duty_officer": ("值班员", "值班人员"),
    "shift_leader": ("带班领导", "值班领导"),
    "grid_worker": ("网格员", "网格长"),
}


def test_the_positions_of_the_chain_are_reference_data() -> None:
    book = reference(with_tree=False).positions
    assert set(POSITIONS) <= set(book.keys())
    for key, (label, alias) in POSITIONS.items():
        info = book.positions[key]
        assert info.label_zh == label and info.label_en.strip(), key
        assert book.resolve(key) == book.resolve(label) == book.resolve(alias) == book.resolve(info.label_en) == key
    assert book.resolve("村主任") == book.resolve("村(社区)负责人") == "village_head"
    with pytest.raises(UnknownPosition, match="职务未知"):
        book.resolve("村长夫人")


def test_a_role_and_a_position_are_aligned_where_they_are_the_same_duty() -> None:
    ref = reference(with_tree=False)
    # 包村干部 is a kind of person (role) and a place in the chain (position) under the same key
    assert ref.roles.resolve("包村干部") == ref.positions.resolve("包村干部") == "village_liaison_cadre"
    assert ref.positions.default_for("village_liaison_cadre") == "village_liaison_cadre"
    assert ref.positions.default_for("duty_officer") == "duty_officer"
    assert ref.positions.default_for("cadre") == "none"  # a cadre may be the 主要负责人, the 分管负责人, or neither


@pytest.mark.parametrize(("positions", "reason"), [
    ({"principal": {"label_zh": "主要负责人", "label_en": "Principal"}}, "none"),
    ({"none": {"label_zh": "无", "label_en": "None"}, "x": {"label_zh": "甲", "label_en": "X", "roles": ["nobody"]}},
     "no such role"),
    ({"none": {"label_zh": "无", "label_en": "None"}, "x": {"label_zh": "无", "label_en": "X"}}, "already names"),
    ({"none": {"label_zh": "无", "label_en": "None", "colour": "red"}}, "unknown keys"),
    ({"none": {"label_zh": "", "label_en": "None"}}, "non-empty"),
    ({"none": {"label_zh": "无", "label_en": "None", "aliases": "无职务"}}, "list"),
    ({"none": {"label_zh": "无", "label_en": "None"},
      "a": {"label_zh": "甲", "label_en": "A", "roles": ["cadre"]},
      "b": {"label_zh": "乙", "label_en": "B", "roles": ["cadre"]}}, "already the position"),
])
def test_bad_positions_stop_the_service_at_start(tmp_path: Path, positions: dict[str, Any], reason: str) -> None:
    settings = make_settings(tmp_path)
    raw = {**settings.raw, "positions": positions}
    with pytest.raises(ConfigError) as err:
        build_reference(replace(settings, raw=raw))
    assert err.value.key == "positions" and reason in err.value.reason


def test_a_book_without_configuration_knows_only_none() -> None:
    book = PositionBook.minimal()
    assert book.keys() == ["none"] and book.default_for("cadre") == "none"


# -- the import sheet and the export ---------------------------------------------------------------

HEADER = [*ZH_HEADER, "职务"]
ROWS = [["张镇长", "13800000001", "党政干部", TONGCHUAN, "", "", "", "", "", "主要负责人"],
        ["李书记", "13800000002", "村居委会人员", VILLAGE_A, "", "", "", "", "", "村支书"],
        ["王包村", "13800000003", "包村干部", VILLAGE_A, "", "", "", "", "", ""],
        ["赵干部", "13800000004", "党政干部", TONGCHUAN, "", "", "", "", "", ""]]


async def test_the_sheet_carries_a_position_column(redis: Any) -> None:
    reg = RedisRegistry(redis)
    report = await import_contacts(io.BytesIO(csv_bytes([HEADER, *ROWS])), "csv", reg, reference(), now=NOW)
    assert (report.accepted, report.rejected) == (4, [])
    got = {c.name: c.position for c in await reg.get_many(sorted(await reg.ids_in_regions([TONGCHUAN])))}
    # an empty cell: the role's position (a 包村干部 holds that place in the chain), else none
    assert got == {"张镇长": "principal", "李书记": "village_head", "王包村": "village_liaison_cadre", "赵干部": "none"}


async def test_an_unknown_position_refuses_its_row_only(redis: Any) -> None:
    rows = [*ROWS[:1], ["钱某", "13800000009", "党政干部", TONGCHUAN, "", "", "", "", "", "大队长"]]
    report = await import_contacts(io.BytesIO(csv_bytes([HEADER, *rows])), "csv", RedisRegistry(redis), reference(),
                                   now=NOW)
    assert report.accepted == 1 and [(p.row, p.message) for p in report.rejected] == [(3, "职务未知 unknown position: 大队长")]


async def test_a_sheet_without_the_column_leaves_positions_as_they_are(redis: Any) -> None:
    reg = RedisRegistry(redis)
    await import_contacts(io.BytesIO(csv_bytes([HEADER, *ROWS])), "csv", reg, reference(), now=NOW)
    old_sheet = [ZH_HEADER, *(r[:-1] for r in ROWS), ["孙包村", "13800000005", "包村干部", VILLAGE_B, "", "", "", "", ""]]
    report = await import_contacts(io.BytesIO(csv_bytes(old_sheet)), "csv", reg, reference(), now=NOW)
    assert (report.accepted, report.updated, report.unchanged, report.rejected) == (1, 4, 4, [])
    everyone = {c.name: c.position for c in await reg.get_many(sorted(await reg.ids_in_regions(["510722"])))}
    assert everyone == {"张镇长": "principal", "李书记": "village_head", "王包村": "village_liaison_cadre",
                        "赵干部": "none", "孙包村": "village_liaison_cadre"}  # a new one takes its role's
    # and the index still finds the township's head
    assert await reg.ids_by_position([TONGCHUAN], ["principal"]) == {(await reg.by_phone("+8613800000001")).id}  # type: ignore[union-attr]


async def test_export_names_the_position_and_imports_back_unchanged(client: Any) -> None:
    resp = await client.post("/api/v1/contacts/import", data=csv_bytes([HEADER, *ROWS]), headers=auth("admin"))
    assert (await resp.json())["accepted"] == 4
    for lang, want in (("zh", "主要负责人"), ("en", "principal")):
        text = (await (await client.get(f"/api/v1/contacts/export?lang={lang}", headers=auth("admin"))).read()
                ).decode("utf-8-sig")
        header, *lines = text.splitlines()
        column = header.split(",").index("职务" if lang == "zh" else "position")
        by_name = {line.split(",")[1]: line.split(",")[column] for line in lines}
        assert by_name["张镇长"] == want and by_name["赵干部"] == ("无" if lang == "zh" else "none")
        again = await (await client.post("/api/v1/contacts/import", data=text.encode(), headers=auth("admin"))).json()
        assert (again["updated"], again["unchanged"], again["rejected"]) == (4, 4, [])


# -- the API ---------------------------------------------------------------------------------------

async def test_the_api_takes_shows_changes_and_filters_by_position(client: Any) -> None:
    body = {"name": "周镇长", "phone": "13800000011", "role": "cadre", "region": TONGCHUAN, "position": "主要负责人"}
    resp = await client.post("/api/v1/contacts", json=body, headers=auth("admin"))
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["position"] == "principal"
    other = await client.post("/api/v1/contacts", json={**body, "phone": "13800000012", "name": "吴干部",
                                                        "position": None}, headers=auth("admin"))
    assert (await other.json())["position"] == "none"
    listed = await (await client.get("/api/v1/contacts?position=主要负责人", headers=auth("viewer"))).json()
    assert [c["name"] for c in listed["items"]] == ["周镇长"]
    resp = await client.patch(f"/api/v1/contacts/{made['id']}", json={"position": "分管负责人"}, headers=auth("admin"))
    assert resp.status == 200 and (await resp.json())["position"] == "deputy"
    assert (await (await client.get("/api/v1/contacts?position=principal", headers=auth("viewer"))).json())["items"] == []
    got = await (await client.get(f"/api/v1/contacts/{made['id']}", headers=auth("viewer"))).json()
    assert got["position"] == "deputy"


async def test_bad_positions_are_clear_errors_that_change_nothing(client: Any) -> None:
    body = {"name": "周镇长", "phone": "13800000011", "role": "cadre", "region": TONGCHUAN, "position": "司令"}
    resp = await client.post("/api/v1/contacts", json=body, headers=auth("admin"))
    assert resp.status == 400
    err = await resp.json()
    assert err["detail"] == {"position": "职务未知 unknown position: 司令"}
    made = await (await client.post("/api/v1/contacts", json={**body, "position": "principal"},
                                    headers=auth("admin"))).json()
    resp = await client.patch(f"/api/v1/contacts/{made['id']}", json={"position": 7}, headers=auth("admin"))
    assert resp.status == 400 and "position" in (await resp.json())["detail"]
    assert (await (await client.get(f"/api/v1/contacts/{made['id']}", headers=auth("admin"))).json())["position"] \
        == "principal"
    resp = await client.get("/api/v1/contacts?position=司令", headers=auth("viewer"))
    assert resp.status == 400 and (await resp.json())["detail"] == {"position": "职务未知 unknown position: 司令"}


async def test_the_positions_are_listed(client: Any) -> None:
    resp = await client.get("/api/v1/positions", headers=auth("viewer"))
    assert resp.status == 200
    items = {p["key"]: p for p in (await resp.json())["items"]}
    assert set(POSITIONS) <= set(items)
    assert items["village_liaison_cadre"]["roles"] == ["village_liaison_cadre"]
    assert items["principal"]["label_zh"] == "主要负责人"


# -- the registry's lookup -------------------------------------------------------------------------

def someone(i: int, region: str, position: str, *, active: bool = True, role: str = "cadre") -> Contact:
    return Contact(id="", name=f"人{i}", phone=f"+86138{i:08d}", phone_kind="mobile", role=role, region=region,
                   position=position, active=active)


async def test_the_principal_of_every_township_and_village_in_the_area(redis: Any) -> None:
    reg = RedisRegistry(redis)
    people = [someone(1, TONGCHUAN, "principal"), someone(2, VILLAGE_A, "principal"),
              someone(3, VILLAGE_A, "deputy"), someone(4, LUXI, "principal"), someone(5, VILLAGE_B, "principal"),
              someone(6, TONGCHUAN + "205", "principal", active=False), someone(7, OUTSIDE, "principal"),
              someone(8, VILLAGE_A, "none")]
    ids = {c.name: r.id for c, r in zip(people, await reg.upsert_contacts(people, NOW), strict=True)}
    found = await reg.by_position([TONGCHUAN], ["principal"])
    assert [c.name for c in found] == ["人1", "人2"]  # the township's own head, then its villages'; not the inactive
    both = await reg.ids_by_position([TONGCHUAN, LUXI], ["principal", "deputy"])
    assert both == {ids[n] for n in ("人1", "人2", "人3", "人4", "人5")}
    assert await reg.ids_by_position(["510722"], ["principal"], active_only=False) == {
        ids[n] for n in ("人1", "人2", "人4", "人5", "人6")}
    assert await reg.ids_by_position([TONGCHUAN], ["none"]) == set() and await reg.ids_by_position([], ["x"]) == set()
    # a change of position, a deactivation and an erasure leave the old sets
    await reg.update_contact(replace(people[0], id=ids["人1"], position="deputy"), NOW)
    await reg.update_contact(replace(people[1], id=ids["人2"], active=False), NOW)
    assert await reg.by_position([TONGCHUAN], ["principal"]) == []
    assert await reg.delete_contact(ids["人1"])
    leftovers = [key async for key in redis.scan_iter(match="ew:idx:contact:*position*")
                 if await redis.sismember(key, ids["人1"])]
    assert leftovers == []
    assert await redis.smembers(keys.contact_active_position_key(TONGCHUAN, "deputy")) == {ids["人3"]}
