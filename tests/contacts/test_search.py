"""Finding people by what a clerk types: parts of names and numbers, the filters, what a viewer may match, and the
same answers whether the routes hash is whole or some contacts predate it."""

from __future__ import annotations

from typing import Any

import pytest

from contacts import keys
from contacts.directory import ContactFilter
from contacts.model import Contact, ContactRoute
from contacts.search import ContactQuery, search
from contacts.store import RedisRegistry
from tests.contacts.helpers import NOW


def route(name: str = "王伟", phone: str = "+8613800138000", **over: Any) -> ContactRoute:
    base = {"id": "c000000000001", "phone": phone, "phone_kind": "mobile", "role": "cadre", "region": "510722101001",
            "channels": ("sms", "voice"), "lang": "zh-CN", "active": True, "name": name}
    return ContactRoute(**{**base, **over})


@pytest.mark.parametrize(("text", "masked", "hit"), [
    ("", False, True),
    ("王", False, True), ("伟", False, True), ("王芳", False, False),
    ("c000000000001", False, True),
    ("8000", False, True), ("138 0013 8000", False, True), ("+86-138-0013-8000", False, True),
    ("13800138000", False, True), ("0013", False, True), ("12", False, False),  # 2 digits: not a number yet
    # a viewer is shown 138****8000: only those digits can be matched
    ("8000", True, True), ("138", True, True), ("0013", True, False), ("13800138000", True, False),
    ("王", True, True),
    ("１３８", False, True),  # full-width digits, as some phone keyboards type them
])
def test_text_matches_names_ids_and_the_digits_one_may_see(text: str, masked: bool, hit: bool) -> None:
    assert ContactQuery(text, masked=masked).matches(route()) is hit


def test_a_landline_typed_with_its_trunk_prefix_matches() -> None:
    landline = route(phone="+862885551234", phone_kind="landline")
    assert ContactQuery("028-85551234").matches(landline)
    assert ContactQuery("85551234").matches(landline)
    assert not ContactQuery("0086 28").matches(route())


@pytest.mark.parametrize(("filters", "hit"), [
    (ContactFilter(region="510722101"), True), (ContactFilter(region="510722137"), False),
    (ContactFilter(role="cadre"), True), (ContactFilter(role="monitor"), False),
    (ContactFilter(channel="voice"), True), (ContactFilter(active=False), False), (ContactFilter(active=True), True),
])
def test_the_filters_apply_with_the_text(filters: ContactFilter, hit: bool) -> None:
    assert ContactQuery("王", filters).matches(route()) is hit


def _person(i: int, name: str, region: str) -> Contact:
    return Contact(id="", name=name, phone=f"+86139{i:08d}", phone_kind="mobile", role="cadre", region=region)


async def test_search_orders_by_region_and_name_and_counts_every_match(redis: Any) -> None:
    registry = RedisRegistry(redis)
    people = [_person(1, "王五", "510722137001"), _person(2, "王一", "510722101001"), _person(3, "李四", "510722101001"),
              _person(4, "王二", "510722101001")]
    await registry.upsert_contacts(people, NOW)
    found, total = await search(registry, ContactQuery("王"), limit=2)
    assert [c.name for c in found] == ["王一", "王二"] and total == 3
    found, total = await search(registry, ContactQuery("0003"), limit=10)
    assert [c.name for c in found] == ["李四"] and total == 1


async def test_contacts_written_before_the_routes_hash_are_found_too(redis: Any) -> None:
    registry = RedisRegistry(redis)
    await registry.upsert_contacts([_person(1, "王五", "510722137001"), _person(2, "王一", "510722101001")], NOW)
    await redis.hdel(keys.CONTACT_ROUTES, *(await redis.hkeys(keys.CONTACT_ROUTES))[:1])  # as an older version left it
    found, total = await search(registry, ContactQuery("王"), limit=10)
    assert [c.name for c in found] == ["王一", "王五"] and total == 2
    assert sorted([r.id async for r in registry.scan_routes()]) == sorted(await redis.zrange(keys.CONTACT_IDS, 0, -1))
