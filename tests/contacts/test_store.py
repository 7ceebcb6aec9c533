"""RedisRegistry against a real Redis: indexes in step, queries against a brute-force filter, paging."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import pytest

from contacts import keys
from contacts.directory import ContactFilter
from contacts.model import Contact, Device, HazardSite, Location
from contacts.regions import InvalidRegionCode
from contacts.store import RecordConflict, RedisRegistry
from tests.contacts.helpers import NOW

VILLAGES = ["510722100001", "510722100002", "510722101201", "510722102001", "510723100001", "510722103"]
ROLES = ["cadre", "village_monitor", "hazard_monitor", "grid_informant"]


def person(i: int, **over: Any) -> Contact:
    base = {"id": "", "name": f"人{i}", "phone": f"+86138{i:08d}", "phone_kind": "mobile", "role": "cadre",
                "region": "510722100001", "location": None, "channels": ("sms", "voice")}
    return Contact(**{**base, **over})


async def _index_members(redis: Any, cid: str) -> set[str]:
    found = set()
    async for key in redis.scan_iter(match="ew:idx:*"):
        if await redis.sismember(key, cid):
            found.add(key)
    return found


def _expected_index(c: Contact) -> set[str]:
    from contacts.regions import ancestors

    out = {keys.contact_region_key(p) for p in ancestors(c.region)} | {keys.contact_role_key(c.role)}
    out |= {keys.contact_channel_key(ch) for ch in c.channels}
    if c.active:
        out |= {keys.CONTACT_ACTIVE} | {keys.contact_active_role_key(p, c.role) for p in ancestors(c.region)}
    return out


async def test_upsert_by_phone_keeps_the_id(redis: Any) -> None:
    reg = RedisRegistry(redis)
    [first] = await reg.upsert_contacts([person(1)], NOW)
    [again] = await reg.upsert_contacts([person(1, name="人一")], NOW)
    [same] = await reg.upsert_contacts([person(1, name="人一")], NOW)
    assert (first.status, again.status, same.status) == ("created", "updated", "unchanged")
    assert first.id == again.id == same.id and first.id.startswith("c") and len(first.id) == 13
    assert (await reg.get(first.id)).name == "人一"  # type: ignore[union-attr]
    assert (await reg.by_phone("+8613800000001")).id == first.id  # type: ignore[union-attr]
    assert await reg.count() == 1


async def test_moving_a_contact_leaves_its_old_indexes(redis: Any) -> None:
    reg = RedisRegistry(redis)
    [r] = await reg.upsert_contacts([person(1, location=Location(31.1, 105.1))], NOW)
    moved = person(1, region="510723100001", role="hazard_monitor", channels=("voice",), location=None)
    await reg.upsert_contacts([moved], NOW)
    assert await _index_members(redis, r.id) == _expected_index(moved)
    assert await reg.ids_in_regions(["510722"]) == set()
    assert await reg.ids_in_regions(["510723"], roles=["hazard_monitor"]) == {r.id}
    assert await reg.ids_near(31.1, 105.1, 1000) == set()


async def test_concurrent_writers_keep_indexes_in_step(redis: Any) -> None:
    reg = RedisRegistry(redis)
    rnd = random.Random(5)
    versions = [person(7, region=rnd.choice(VILLAGES), role=rnd.choice(ROLES)) for _ in range(60)]
    await asyncio.gather(*(reg.upsert_contacts([v], NOW) for v in versions))
    cid = (await reg.by_phone(person(7).phone)).id  # type: ignore[union-attr]
    stored = await reg.get(cid)
    assert stored is not None and await reg.count() == 1
    assert await _index_members(redis, cid) == _expected_index(stored)


async def test_prefix_and_role_query_matches_brute_force(redis: Any) -> None:
    reg = RedisRegistry(redis)
    rnd = random.Random(11)
    people = [person(i, region=rnd.choice(VILLAGES), role=rnd.choice(ROLES), active=rnd.random() > 0.1,
                     channels=rnd.choice([("sms", "voice"), ("voice",), ("sms",)])) for i in range(400)]
    results = await reg.upsert_contacts(people, NOW)
    stored = dict(zip((r.id for r in results), people, strict=True))
    cases = [(["510722"], None, None), (["510722100"], ["cadre"], None), (["51"], ["cadre", "hazard_monitor"], "sms"),
             (["510722100001", "510722101"], ["village_monitor"], "voice"), (["510700"], None, None),
             (["510723"], [], None)]
    for prefixes, roles, channel in cases:
        for active_only in (True, False):
            want = {cid for cid, c in stored.items()
                    if any(c.region.startswith(p.rstrip("0") if p == "510700" else p) for p in prefixes)
                    and (roles is None or c.role in roles) and (channel is None or channel in c.channels)
                    and (c.active or not active_only)}
            assert await reg.ids_in_regions(prefixes, roles, channel, active_only) == want, (prefixes, roles)
    assert not await redis.keys("ew:tmp:*")


async def test_bad_prefix_is_refused(redis: Any) -> None:
    with pytest.raises(InvalidRegionCode):
        await RedisRegistry(redis).ids_in_regions(["51072"])


async def test_geo_near_and_box(redis: Any) -> None:
    reg = RedisRegistry(redis)
    a, b, c = await reg.upsert_contacts([person(1, location=Location(31.10, 105.10)),
                                         person(2, location=Location(31.11, 105.10)),
                                         person(3, location=Location(31.50, 105.50), active=False)], NOW)
    assert await reg.ids_near(31.10, 105.10, 500) == {a.id}
    assert await reg.ids_near(31.10, 105.10, 2000) == {a.id, b.id}
    assert await reg.ids_in_bbox(31.0, 105.0, 31.105, 105.2) == {a.id}
    assert await reg.ids_in_bbox(31.0, 105.0, 32.0, 106.0) == {a.id, b.id}
    assert await reg.ids_in_bbox(31.0, 105.0, 32.0, 106.0, active_only=False) == {a.id, b.id, c.id}


async def test_paging_visits_everyone_once(redis: Any) -> None:
    reg = RedisRegistry(redis)
    results = await reg.upsert_contacts([person(i, role=ROLES[i % 4], active=i % 5 != 0) for i in range(237)], NOW)
    for filters, want in [(None, {r.id for r in results}),
                          (ContactFilter(role="cadre"), {r.id for i, r in enumerate(results) if i % 4 == 0}),
                          (ContactFilter(active=False), {r.id for i, r in enumerate(results) if i % 5 == 0}),
                          (ContactFilter(region="510722", active=True, channel="sms"),
                           {r.id for i, r in enumerate(results) if i % 5 != 0})]:
        seen: list[str] = []
        cursor = None
        while True:
            items, cursor = await reg.page(cursor, 50, filters)
            seen += [c.id for c in items]
            if cursor is None:
                break
        assert seen == sorted(want) and len(seen) == len(set(seen))
    assert not await redis.keys("ew:tmp:*")


async def test_create_update_delete(redis: Any) -> None:
    reg = RedisRegistry(redis)
    a = await reg.create_contact(person(1), NOW)
    b = await reg.create_contact(person(2), NOW)
    with pytest.raises(RecordConflict) as err:
        await reg.create_contact(person(1, name="别人"), NOW)
    assert err.value.owner == a.id
    with pytest.raises(RecordConflict):
        await reg.update_contact(b.with_changes(phone=a.phone), NOW)
    moved = await reg.update_contact(b.with_changes(phone="+8613900000009"), NOW)
    assert moved is not None and await reg.by_phone(person(2).phone) is None
    assert (await reg.by_phone("+8613900000009")).id == b.id  # type: ignore[union-attr]
    assert await reg.update_contact(person(3, id="cmissing"), NOW) is None
    assert await reg.delete_contact(a.id) and not await reg.delete_contact(a.id)
    assert await _index_members(redis, a.id) == set() and await reg.by_phone(a.phone) is None
    assert await redis.zscore(keys.CONTACT_IDS, a.id) is None


async def test_devices_and_sites(redis: Any) -> None:
    reg = RedisRegistry(redis)
    screen = await reg.put_device(Device(id="", name="潼川镇电子屏", kind="escreen", region="510722100",
                                         address="http://screen.example/1", token="t" * 20), NOW, create=True)
    speaker = await reg.put_device(Device(id="", name="芦溪镇广播", kind="broadcast", region="510722101201",
                                          address="mqtt://broker.example/luxi", token="u" * 20), NOW, create=True)
    assert screen and speaker
    with pytest.raises(RecordConflict):
        await reg.put_device(Device(id="", name="x", kind="escreen", region="510722", address="http://x.example",
                                    token="t" * 20), NOW, create=True)
    assert [d.id for d in await reg.devices_in_regions(["510722"], kind="broadcast")] == [speaker.id]
    assert {d.id for d in await reg.devices_in_regions(["510722"])} == {screen.id, speaker.id}
    assert (await reg.device_by_token("t" * 20)).id == screen.id  # type: ignore[union-attr]
    moved = await reg.put_device(replace(screen, region="510722102"), NOW, create=False)
    assert moved and await reg.devices_in_regions(["510722100"]) == []
    [keeper] = await reg.upsert_contacts([person(1)], NOW)
    site = await reg.put_site(HazardSite(id="", name="鲁班水库", kind="reservoir", region="510722107",
                                         location=Location(31.2, 105.0), contacts=(keeper.id,)), NOW, create=True)
    assert site and [s.id for s in await reg.sites_in_regions(["510722"])] == [site.id]
    assert [s.id for s in await reg.sites_near(31.2, 105.0, 100)] == [site.id]
    assert [s.id for s in await reg.sites_of_contact(keeper.id)] == [site.id]
    assert await reg.delete_site(site.id) and await reg.sites_of_contact(keeper.id) == []
