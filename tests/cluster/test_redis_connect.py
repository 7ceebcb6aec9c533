"""connect_redis: the configured store's client, one server or a Redis Cluster; a URL neither client reads is a
clear configuration error naming redis.url, and a cluster URL stops the service until its stores run on one."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tests.conftest import make_settings
from tests.redis_cluster import LocalCluster, holder_port
from warning.errors import ConfigError
from warning.redis_connect import ClusterTarget, connect_redis, parse_cluster_url
from warning.redis_server import PrivateRedis
from warning.settings import RedisSettings


async def test_a_cluster_url_gives_a_cluster_client_that_reaches_every_master(redis_cluster: LocalCluster) -> None:
    redis_cluster.flush()
    client = connect_redis(redis_cluster.url)
    try:
        assert isinstance(client, RedisCluster)
        keys = [f"ew:k{i}" for i in range(60)]
        for k in keys:
            await client.set(k, "值")
        assert {await client.get(k) for k in keys} == {"值"}  # decoded, from whichever master holds each
        assert len({holder_port(client, k) for k in keys}) == 3
    finally:
        await client.aclose()


async def test_one_seed_node_is_enough(redis_cluster: LocalCluster) -> None:
    host, port = redis_cluster.nodes[-1]
    client = connect_redis(f"redis+cluster://{host}:{port}")
    try:
        assert isinstance(client, RedisCluster)
        await client.set("ew:seed", "1")
        assert len(client.get_primaries()) == 3 and await client.get("ew:seed") == "1"
    finally:
        await client.aclose()


async def test_a_server_url_or_the_settings_give_a_plain_client(redis_server: PrivateRedis) -> None:
    for target in (redis_server.url, RedisSettings(url=redis_server.url)):
        client = connect_redis(target)
        try:
            assert type(client) is aioredis.Redis
            await client.set("ew:plain", "通")
            assert await client.get("ew:plain") == "通"
        finally:
            await client.aclose()


@pytest.mark.parametrize(("url", "nodes", "user", "password", "tls"), [
    ("redis+cluster://10.0.0.1:7000", (("10.0.0.1", 7000),), None, None, False),
    ("redis+cluster://a:7000,b:7001, c/0", (("a", 7000), ("b", 7001), ("c", 6379)), None, None, False),
    ("rediss+cluster://ew:p%40ss@[::1]:7000/", (("::1", 7000),), "ew", "p@ss", True),
    ("redis+cluster://:secret@h:1", (("h", 1),), None, "secret", False),
])
def test_cluster_urls_are_read(url: str, nodes: tuple[tuple[str, int], ...], user: str | None,
                               password: str | None, tls: bool) -> None:
    assert parse_cluster_url(url) == ClusterTarget(nodes=nodes, username=user, password=password, tls=tls)


@pytest.mark.parametrize(("url", "reason"), [
    ("redis+cluster://", "no cluster node"),
    ("redis+cluster://:pw@", "no cluster node"),
    ("redis+cluster://h:port", "not a port number"),
    ("redis+cluster://h:70000", "not a port number"),
    ("redis+cluster://:7000", "without a host"),
    ("redis+cluster://h:7000/2", "database 0 only"),
    ("redis+cluster://h:7000?ssl_cert_reqs=none", "options"),
    ("http://h:7000", "unsupported scheme http://"),
    ("h:7000", "unsupported scheme"),
])
def test_urls_no_client_reads_are_refused_naming_the_key(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connect_redis(url)
    assert caught.value.key == "redis.url" and reason in caught.value.reason


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        connect_redis("redis+cluster://ew:hunter2-secret@h:7000/5")
    assert "hunter2" not in str(caught.value) and "'h:7000/5'" in str(caught.value)


def test_the_service_refuses_a_cluster_url_at_start_until_its_stores_run_on_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, redis={"url": "redis+cluster://127.0.0.1:7000"})
    assert caught.value.key == "redis.url" and "not supported by the service's stores yet" in caught.value.reason
    with pytest.raises(ConfigError, match="database 0 only"):  # a malformed one is told as such first
        make_settings(tmp_path, redis={"url": "redis+cluster://127.0.0.1:7000/3"})
