"""The test Redis Cluster is a real one: three masters sharing the slots, scripts whose keys share a hash tag
run, scripts whose keys do not are refused by the server (CROSSSLOT)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from redis.exceptions import ClusterCrossSlotError

from tests.redis_cluster import ClusterClients, holder_port

#: writes ARGV[1] under every key it is given, then reads them all back
SET_ALL = "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1]) end return redis.call('MGET', unpack(KEYS))"
TAGGED = ["ew:{w1}:state", "ew:{w1}:counts", "ew:{w1}:queue"]
UNTAGGED = ["ew:w1:state", "ew:w2:state"]


def test_the_keys_are_what_the_tests_below_need() -> None:
    assert len({key_slot(k.encode()) for k in TAGGED}) == 1
    assert len({key_slot(k.encode()) for k in UNTAGGED}) == 2


async def test_three_masters_share_every_slot(make_cluster_client: ClusterClients) -> None:
    client = make_cluster_client()
    info = await client.cluster_info()
    assert info["cluster_state"] == "ok" and int(info["cluster_slots_assigned"]) == 16384
    assert len(client.get_primaries()) == 3 and client.get_replicas() == []
    # keys land on every master, and each reads back through the client whichever node holds it
    keys = [f"ew:c{i}" for i in range(60)]
    for k in keys:
        await client.set(k, k)
    assert [await client.get(k) for k in keys] == keys
    holders = {holder_port(client, k) for k in keys}
    assert len(holders) == 3


async def test_a_script_whose_keys_share_a_hash_tag_runs(make_cluster_client: ClusterClients) -> None:
    client = make_cluster_client()
    assert await client.eval(SET_ALL, len(TAGGED), *TAGGED, "x") == ["x", "x", "x"]


async def test_a_cross_slot_script_is_refused_with_crossslot_and_writes_nothing(
        make_cluster_client: ClusterClients) -> None:
    client = make_cluster_client()
    # redis-py raises this for the server's "CROSSSLOT Keys in request don't hash to the same slot"
    with pytest.raises(ClusterCrossSlotError):
        await client.eval(SET_ALL, len(UNTAGGED), *UNTAGGED, "x")
    assert [await client.get(k) for k in UNTAGGED] == [None, None]
