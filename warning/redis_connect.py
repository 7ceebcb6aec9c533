"""Opening the store: one Redis server (redis://, rediss://, unix://) or a Redis Cluster (redis+cluster://)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from warning.errors import ConfigError

#: one server: what redis-py's `Redis.from_url` reads
SERVER_SCHEMES = ("redis", "rediss", "unix")
#: a cluster, named by one or more of its nodes (the client learns the others and the slot map from them)
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
KEY = "redis.url"


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """A Redis Cluster as a `redis+cluster://[user:password@]host:port[,host:port...]` URL names it."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


class HasUrl(Protocol):
    """What connect_redis reads of the settings (`RedisSettings`): the store's URL."""

    @property
    def url(self) -> str: ...


def is_cluster_url(url: str) -> bool:
    return urlparse(url).scheme in CLUSTER_SCHEMES


def _refuse(url: str, reason: str) -> ConfigError:
    # the authority may hold a password: the error names the hosts only
    return ConfigError("<redis>", KEY, f"{reason} in {url.rpartition('@')[2]!r}")


def _node(url: str, text: str) -> tuple[str, int]:
    """`host:port`, `host` (port 6379) or `[v6 address]:port`."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise _refuse(url, "a cluster node without a host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _refuse(url, f"{port_text!r} is not a port number")
    return host, int(port_text)


def parse_cluster_url(url: str) -> ClusterTarget:
    """The nodes and credentials of a `redis+cluster://` (or `rediss+cluster://`, TLS) URL; ConfigError when it
    is not one, names no node, asks for a database other than 0 (a cluster has only 0) or carries options."""
    parts = urlparse(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise _refuse(url, f"not a cluster URL ({' or '.join(s + '://' for s in CLUSTER_SCHEMES)})")
    if parts.query or parts.fragment:
        raise _refuse(url, "options after '?' are not read for a cluster")
    if parts.path not in ("", "/", "/0"):
        raise _refuse(url, "a Redis Cluster has database 0 only")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    nodes = tuple(_node(url, text.strip()) for text in hosts.split(",") if text.strip())
    if not nodes:
        raise _refuse(url, "no cluster node named")
    return ClusterTarget(nodes=nodes, username=unquote(user) or None,
                         password=unquote(password) if has_password else None, tls=parts.scheme == "rediss+cluster")


def connect_redis(target: str | HasUrl, *, decode_responses: bool = True,
                  **options: Any) -> aioredis.Redis | RedisCluster:
    """A client for the configured store: `Redis` for one server, `RedisCluster` for a `redis+cluster://` URL.

    `options` go to the client as they are (e.g. `health_check_interval`). Nothing is connected yet: the first
    command connects (and, for a cluster, reads the slot map from the first node that answers). ConfigError
    names `redis.url` for a URL neither client reads.
    """
    url = target if isinstance(target, str) else target.url
    scheme = urlparse(url).scheme
    if scheme in CLUSTER_SCHEMES:
        cluster = parse_cluster_url(url)
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
                            username=cluster.username, password=cluster.password, ssl=cluster.tls,
                            decode_responses=decode_responses, **options)
    if scheme not in SERVER_SCHEMES:
        raise _refuse(url, f"unsupported scheme {scheme + '://' if scheme else '(none)'}; expected "
                           f"{', '.join(s + '://' for s in (*SERVER_SCHEMES, *CLUSTER_SCHEMES))}")
    return aioredis.Redis.from_url(url, decode_responses=decode_responses, **options)
