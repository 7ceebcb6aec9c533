"""One owner per data folder: `warning serve` killed, started twice or on a busy port; the other commands use the
running service's store or say clearly that there is none."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from tests.conftest import TOKENS
from tests.contacts.helpers import ROOT, ZH_HEADER, csv_bytes
from tests.test_private_redis import DEADLINE_S, process_gone, servers_on, wait_for
from warning.cli import main, masked_url
from warning.redis_server import PrivateRedis, folder_owner, free_port

ADMIN = TOKENS["admin"]
PEOPLE = [["张伟", "13800138000", "党政干部", "510722101", "", "", "", "", ""]]


def _config(tmp_path: Path, **extra: str) -> Path:
    data = tmp_path / "data"
    lines = ["[server]", 'log_format = "text"', "[redis]", f'data_dir = "{data}"', "[registry]",
             f'regions_csv = "{ROOT / "config" / "demo_regions.csv"}"',
             "[[auth.tokens]]", 'name = "admin"', 'role = "admin"', f'token = "{ADMIN}"', *extra.values()]
    path = tmp_path / "service.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WARNING_") or k == "WARNING_TESTING"}


class Serve:
    """`python -m warning serve` as a child process, its output in files."""

    def __init__(self, tmp_path: Path, config: Path, port: int, tag: str) -> None:
        self.port = port
        self.out, self.err = tmp_path / f"{tag}.out", tmp_path / f"{tag}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "warning", "serve", "--config", str(config),
                                          "--port", str(port)], stdout=out, stderr=err, cwd=tmp_path, env=_env())

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def answers(self) -> bool:
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"serve exited: {self.err.read_text(errors='replace')[-2000:]}"
            return self.answers()

        wait_for(ready, "serve to answer", 60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.stop()
    for pid in servers_on(tmp_path / "data"):  # only if a test failed: nothing may outlive it
        os.kill(pid, signal.SIGKILL)


def test_serve_killed_takes_its_redis_along_and_a_restart_keeps_the_data(tmp_path: Path,
                                                                          servers: list[Serve]) -> None:
    config, data = _config(tmp_path), tmp_path / "data"
    first = Serve(tmp_path, config, free_port(), "first")
    servers.append(first)
    first.wait_ready()
    status, created = first.call("POST", "/api/v1/contacts", {"name": "张伟", "phone": "13800138000",
                                                              "role": "cadre", "region": "510722101"})
    assert status == 201, created
    [redis_pid] = servers_on(data)
    first.proc.kill()  # SIGKILL: serve runs no cleanup at all
    first.proc.wait()
    wait_for(lambda: process_gone(redis_pid), "the private Redis to stop with its server")
    second = Serve(tmp_path, config, free_port(), "second")
    servers.append(second)
    second.wait_ready()
    status, page = second.call("GET", "/api/v1/contacts")
    assert status == 200 and [c["id"] for c in page["items"]] == [created["id"]]
    assert len(servers_on(data)) == 1
    second.stop()
    assert second.proc.returncode == 0
    assert servers_on(data) == [] and folder_owner(data) is None


def test_a_second_serve_on_the_same_folder_exits_2_and_harms_nothing(tmp_path: Path, servers: list[Serve]) -> None:
    config, data = _config(tmp_path), tmp_path / "data"
    first = Serve(tmp_path, config, free_port(), "first")
    servers.append(first)
    first.wait_ready()
    [redis_pid] = servers_on(data)
    second = Serve(tmp_path, config, free_port(), "second")
    servers.append(second)
    try:
        assert second.proc.wait(60) == 2
    except subprocess.TimeoutExpired:
        pytest.fail("the second serve kept running on a folder in use")
    lines = second.err.read_text().splitlines()
    assert len(lines) == 1, lines
    assert str(data) in lines[0] and f"pid {first.proc.pid}" in lines[0] and "warning serve" in lines[0]
    # the first server is untouched: same Redis, its socket in place, still answering and holding its data
    assert servers_on(data) == [redis_pid] and (data / "redis.sock").exists()
    status, _ = first.call("POST", "/api/v1/contacts", {"name": "李娜", "phone": "13900000001",
                                                        "role": "cadre", "region": "510722101"})
    assert status == 201 and first.answers()


def test_serve_on_a_busy_port_exits_2_and_leaves_no_redis(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "warning", "serve", "--config", str(_config(tmp_path)),
                              "--port", str(port)], capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "port in use" in lines[0], lines
    assert servers_on(data) == [] and folder_owner(data) is None


# ---- the other commands -----------------------------------------------------------------------------------

def test_import_without_a_store_fails_clearly_and_starts_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes(csv_bytes([ZH_HEADER, *PEOPLE]))
    assert main(["contacts", "import", str(people), "--config", str(_config(tmp_path))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "redis.url" in err[0] and "warning serve" in err[0] and str(tmp_path / "data") in err[0]
    data = tmp_path / "data"
    assert servers_on(data) == [] and not (data / "appendonlydir").exists()


def test_import_writes_to_the_store_of_the_running_service(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes(csv_bytes([ZH_HEADER, *PEOPLE]))
    service = PrivateRedis(tmp_path / "data")  # what `warning serve` holds while it runs (here: this process)
    url = service.start()
    try:
        assert main(["contacts", "import", str(people), "--config", str(_config(tmp_path))]) == 0
        err = capsys.readouterr().err
        assert f"存储 store: private Redis of warning serve, pid {os.getpid()}" in err and str(service.socket_path) in err
        assert sync_redis.Redis.from_url(url).zcard("ew:contacts:ids") == 1
        assert servers_on(tmp_path / "data") == [service.proc.pid if service.proc else -1]
    finally:
        service.stop()


def test_import_names_a_configured_store(tmp_path: Path, redis_server: PrivateRedis, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes(csv_bytes([ZH_HEADER, *PEOPLE]))
    monkeypatch.setenv("WARNING_REDIS_URL", redis_server.url)
    sync_redis.Redis.from_url(redis_server.url).flushdb()
    assert main(["contacts", "import", str(people), "--config", str(_config(tmp_path))]) == 0
    assert f"存储 store: Redis {redis_server.url}" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@db.example:6379/0", "redis://:***@db.example:6379/0"),
    ("rediss://app:s3cret@db.example/2", "rediss://app:***@db.example/2"),
    ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
    ("redis://db.example:6379/0", "redis://db.example:6379/0"),
])
def test_store_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def _worker_config(tmp_path: Path) -> Path:
    return _config(tmp_path, channel='[[channels]]\nname = "sms-sim"\nkind = "sms"\nprovider = "simulator"\n')


def test_worker_without_a_store_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--config", str(_worker_config(tmp_path))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "redis.url" in err[0] and "warning serve" in err[0]
    assert servers_on(tmp_path / "data") == []


def test_worker_joins_the_store_of_the_running_service(tmp_path: Path) -> None:
    service = PrivateRedis(tmp_path / "data")
    url = service.start()
    worker = subprocess.Popen([sys.executable, "-m", "warning", "worker", "--config", str(_worker_config(tmp_path)),
                               "--name", "w-test"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert worker.stdout is not None and worker.stdout.readline().startswith(b"worker w-test: sms-sim")
        client = sync_redis.Redis.from_url(url)
        groups = [g for key in client.scan_iter("ew:q:*") for g in client.xinfo_groups(key)]
        assert groups, "the worker made its consumer groups in the service's store"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=DEADLINE_S)
        assert worker.returncode == 0
        assert f"存储 store: private Redis of warning serve, pid {os.getpid()}" in err.decode()
    finally:
        worker.kill()
        worker.communicate()
        service.stop()
