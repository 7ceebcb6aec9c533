"""The demo county's generated registry stays inside the demo region tree and uses the roles of the county."""

from __future__ import annotations

from typing import Any

from contacts.demo import ROLE_WEIGHTS, SITE_ROLES, demo_contacts, seed_demo
from contacts.store import RedisRegistry
from tests.contacts.helpers import NOW, reference


def test_generated_people_live_in_the_tree_with_known_roles() -> None:
    ref = reference()
    people = demo_contacts(ref.regions, 400, ref.roles.keys())
    assert set(ROLE_WEIGHTS) <= set(ref.roles.keys())
    assert {c.role for c in people} <= set(ref.roles.keys())
    assert {"monitor", "village_monitor", "flash_flood_monitor", "reservoir_admin_head"} <= {c.role for c in people}
    villages = set(ref.regions.leaves("510722"))
    for c in people:
        assert c.region in ref.regions, c
        assert c.region in villages or (len(c.region) == 9 and c.role in ("cadre", "duty_officer")), c
    assert len({c.region[:9] for c in people}) == len(ref.regions.children("510722"))


async def test_the_demo_sites_are_kept_by_the_right_people(redis: Any) -> None:
    ref = reference()
    registry = RedisRegistry(redis)
    done = await seed_demo(registry, ref.regions, 300, now=NOW, roles=ref.roles.keys())
    assert done["sites"] == 2 and done["devices"] == 2 * len(ref.regions.children("510722"))
    reservoir, slope = await registry.site("sreservoir01"), await registry.site("slandslide01")
    assert reservoir is not None and slope is not None
    keepers = [await registry.get(cid) for cid in reservoir.contacts]
    assert sorted(c.role for c in keepers if c) == sorted(SITE_ROLES["reservoir"])
    monitors = [await registry.get(cid) for cid in slope.contacts]
    assert monitors and {c.role for c in monitors if c} == {"hazard_monitor"}
    assert slope.region.startswith("510722101") and ref.regions.name(slope.region[:9]) == "潼川镇"


async def test_the_demo_county_has_the_positions_of_the_chain(redis: Any) -> None:
    ref = reference()
    registry = RedisRegistry(redis)
    await seed_demo(registry, ref.regions, 300, now=NOW, roles=ref.roles.keys(), positions=ref.positions.keys())
    heads = await registry.by_position(["510722"], ["principal"])
    townships = {c.region[:9] for c in await registry.get_many(sorted(await registry.ids_in_regions(["510722"],
                                                                                                      ["cadre"])))}
    assert heads and {c.region for c in heads} == townships and all(c.role == "cadre" for c in heads)
    assert len(heads) == len(townships)  # one 主要负责人 a township that has cadres
    assert await registry.by_position(["510722"], ["village_head"])
    liaisons = await registry.ids_by_position(["510722"], ["village_liaison_cadre"])
    assert liaisons == await registry.ids_in_regions(["510722"], ["village_liaison_cadre"])
    # positions the configuration lacks are not handed out
    await redis.flushdb()
    await seed_demo(registry, ref.regions, 50, now=NOW, roles=ref.roles.keys(), positions=["none"])
    assert await registry.by_position(["510722"], ["principal", "village_head"]) == []
