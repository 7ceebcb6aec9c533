"""A real 3-master Redis Cluster for the tests, on spare loopback ports, and the fixtures that hand out clients.

`redis_cluster` (session) starts `redis-server --cluster-enabled yes` three times in a temporary folder, joins them
with `redis-cli --cluster create ... --cluster-replicas 0`, and waits until every node says `cluster_state:ok`.
`make_cluster_client` (per test) flushes it and makes `RedisCluster` clients (decode_responses=True) that are
closed after the test. The servers are tied to the test process: they stop when it dies, however it dies.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from warning.redis_connect import connect_redis
from warning.redis_server import find_server_binary, free_port, tied_to_this_process

MASTERS = 3
START_S = 30.0


def cli_binary() -> str | None:
    """redis-cli (Debian: redis-tools), or valkey-cli."""
    return shutil.which("redis-cli") or shutil.which("valkey-cli")


class LocalCluster:
    """Three cluster-enabled redis-servers on spare ports under `folder`, joined into one cluster, no replicas."""

    def __init__(self, folder: Path, masters: int = MASTERS) -> None:
        self.folder = folder
        self.masters = masters
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def url(self) -> str:
        """The cluster as the service's `[redis] url` names it."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.nodes)

    def start(self) -> None:
        cli = cli_binary()
        if cli is None:
            raise RuntimeError("no redis-cli on PATH (Debian package redis-tools): scripts/test.sh installs it")
        binary, _ = find_server_binary()
        deadline = time.monotonic() + START_S
        try:
            for i in range(self.masters):
                self._start_node(binary, i, deadline)
            done = subprocess.run([cli, "--cluster", "create", *(f"{h}:{p}" for h, p in self.nodes),
                                   "--cluster-replicas", "0", "--cluster-yes"],
                                  capture_output=True, timeout=START_S, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout.decode()[-800:]}"
                                   f"{done.stderr.decode()[-400:]}")
            self._wait(lambda: all(self._state(port) == "ok" for port in self.ports), deadline, "cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def _start_node(self, binary: str, i: int, deadline: float) -> None:
        # the cluster bus port is set too: the default (port + 10000) may be taken, or past 65535
        port, bus = free_port(), free_port()
        folder = self.folder / f"node{i}"
        folder.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / "nodes.conf"), "--cluster-port", str(bus),
                "--cluster-node-timeout", "5000", "--dir", str(folder), "--save", "", "--appendonly", "no",
                "--unixsocket", "", "--logfile", str(folder / "redis.log"), "--daemonize", "no"]
        self.procs.append(subprocess.Popen(tied_to_this_process(args), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        self.ports.append(port)
        self._wait(lambda: self._ping(port), deadline, f"node {i} on port {port} to answer PING")

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        while not ready():
            for proc, port in zip(self.procs, self.ports, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"cluster node on port {port} exited: {self._log_tail(port)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up waiting for {what}")
            time.sleep(0.05)

    def _log_tail(self, port: int) -> str:
        log = self.folder / f"node{self.ports.index(port)}" / "redis.log"
        return log.read_text(errors="replace")[-500:] if log.exists() else ""

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)

    def _ping(self, port: int) -> bool:
        try:
            with self._client(port) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def _state(self, port: int) -> str:
        with self._client(port) as client:
            return str(client.cluster("INFO").get("cluster_state", ""))

    def flush(self) -> None:
        """Empty every master (each holds its own slots' keys)."""
        for port in self.ports:
            with self._client(port) as client:
                client.flushall()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One real 3-master Redis Cluster for the test session (started the first time a test asks for it)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


ClusterClients = Callable[..., RedisCluster]


def holder_port(client: RedisCluster, key: str) -> int:
    """The port of the master that holds `key`'s slot."""
    node = client.get_node_from_key(key)
    assert node is not None, f"no node holds {key}"
    return int(node.port)


@pytest.fixture
async def make_cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[ClusterClients]:
    """RedisCluster clients (decode_responses=True; options go to the client) on the flushed cluster."""
    redis_cluster.flush()
    made: list[RedisCluster] = []

    def make(**options: Any) -> RedisCluster:
        client = connect_redis(redis_cluster.url, **options)
        assert isinstance(client, RedisCluster)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
