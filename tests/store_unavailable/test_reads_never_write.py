"""Reads never write: listing contacts with any filter takes no scratch key, so it answers with Redis full to its
maxmemory (noeviction) and on a read-only replica; it still pages through everyone once, in bounded calls."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from contacts.directory import ContactFilter
from contacts.model import Contact
from contacts.store import WALK_BUDGET, RedisRegistry
from tests.contacts.helpers import NOW
from warning.redis_server import free_port

pytestmark = pytest.mark.timeout(90)
ROLES = ["cadre", "village_monitor", "hazard_monitor", "grid_informant"]
FILTERS = [ContactFilter(region="510722", role="hazard_monitor"),
           ContactFilter(region="510722100", role="cadre", active=True, channel="sms"),
           ContactFilter(role="grid_informant", active=False), ContactFilter(active=False),
           ContactFilter(channel="voice"), ContactFilter(region="5107"), ContactFilter()]


def _person(i: int) -> Contact:
    return Contact(id="", name=f"联系人{i}", phone=f"+86139{i:08d}", phone_kind="mobile", role=ROLES[i % 4],
                   region="510722100001" if i % 3 else "510722101202", location=None,
                   channels=("sms", "voice") if i % 2 else ("sms",), active=i % 7 != 0)


async def _everyone(reg: RedisRegistry, f: ContactFilter, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = await reg.page(cursor, limit, f)
        assert len(items) <= limit
        seen += [c.id for c in items]
        if cursor is None:
            return seen


async def test_listing_works_at_maxmemory_and_on_a_replica(admin_redis: aioredis.Redis) -> None:
    reg = RedisRegistry(admin_redis)
    await reg.upsert_contacts([_person(i) for i in range(300)], NOW)
    expected = {(f, limit): await _everyone(reg, f, limit) for f in FILTERS for limit in (1, 7, 1000)}
    assert all(expected.values()) and expected[(FILTERS[0], 7)] != expected[(FILTERS[1], 7)]
    used = int((await admin_redis.info("memory"))["used_memory"])
    await admin_redis.config_set("maxmemory-policy", "noeviction")
    await admin_redis.config_set("maxmemory", str(used + 512 * 1024))
    with pytest.raises(OutOfMemoryError):  # fill it up to its maxmemory with data
        for i in range(100_000):
            await admin_redis.set(f"ballast:{i}", "x" * 1024)
    try:
        for (f, limit), want in expected.items():
            assert await _everyone(reg, f, limit) == want, f
    finally:
        await admin_redis.config_set("maxmemory", "0")
    await admin_redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    try:
        for (f, limit), want in expected.items():
            assert await _everyone(reg, f, limit) == want, f
    finally:
        await admin_redis.execute_command("REPLICAOF", "NO", "ONE")
    assert not await admin_redis.keys("ew:tmp:*")


async def test_a_filter_few_match_is_read_in_bounded_calls(admin_redis: aioredis.Redis) -> None:
    reg = RedisRegistry(admin_redis)
    # the matches are spread over more ids than one call looks at: the listing takes several calls and misses none
    await reg.upsert_contacts([_person(i) for i in range(WALK_BUDGET * 2 + 10)], NOW)
    found = await _everyone(reg, ContactFilter(region="510722101202", role="grid_informant", active=True), 1000)
    stored = await reg.ids_in_regions(["510722101202"], roles=["grid_informant"])
    assert found == sorted(stored) and len(found) > 100
