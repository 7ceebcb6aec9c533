"""A worker process killed with SIGKILL mid-fan-out: another takes over its lease; nobody is missed,
at most the killed worker's in-flight batch goes twice, counters stay exact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKENS, auth
from tests.dispatch.conftest import Rig
from tests.warnings.conftest import VILLAGE_A, person

BATCH = 50
N = 1500


async def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def worker_config(tmp: Path, redis_url: str, api_base: str, lanes: int) -> Path:
    cfg = tmp / "worker.toml"
    tokens = "\n".join(f'[[auth.tokens]]\nname = "{n}"\nrole = "admin"\ntoken = "{t}"\n' for n, t in TOKENS.items()
                       if n == "admin")
    cfg.write_text(f"""
[server]
public_url = "http://testserver.example"
log_format = "json"
[redis]
url = "{redis_url}"
[issuer]
code = "510722"
unit = "00010001"
signature = "【三台县应急管理局】"
[dispatch]
batch = {BATCH}
# batches a worker has in flight at once: what a SIGKILL can leave half-sent
lanes = {lanes}
lease_ms = 1500
reclaim_every_s = 0.5
block_ms = 200
{tokens}
[[channels]]
name = "sms"
kind = "sms"
provider = "twilio"
account_sid = "AC00000000000000000000000000000001"
auth_token = "fake-twilio-auth-token-0123456789"
from = "+15005550006"
api_base = "{api_base}"
rate_per_s = 400
timeout_s = 2
""", encoding="utf-8")
    return cfg


def spawn(cfg: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARNING_")}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "warning", "worker", "--config", str(cfg), "--name", name],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.mark.parametrize("lanes", [1, 2])
async def test_sigkill_mid_fan_out(make_rig: Any, redis_server: Any, tmp_path: Path, lanes: int) -> None:
    rig: Rig = await make_rig()
    fake = rig.fakes["primary"]
    people = [person(i, VILLAGE_A) for i in range(N)]
    await rig.seed(people)
    resp = await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": [VILLAGE_A],
        # the worker processes run on the real clock, the app here on a fake one: keep the warning live for both
        "expires": "2099-01-01T00:00:00+08:00"})
    w = await resp.json()
    api_base = rig.services.channel_configs["sms"]["api_base"]
    cfg = worker_config(tmp_path, redis_server.url, api_base, lanes)
    first = spawn(cfg, "first", tmp_path / "first.log")
    second = None
    try:
        await wait_until(lambda: len(fake.requests) >= 300, 60, "the first worker to get going")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = len(fake.requests)
        assert killed_at < N, "the first worker finished before it could be killed"
        second = spawn(cfg, "second", tmp_path / "second.log")

        async def done() -> bool:
            counts = await rig.services.deliveries.counts(w["id"])
            return counts.get("queued", 1) == 0

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while not await done():
            assert loop.time() < deadline, (tmp_path / "second.log").read_text()[-2000:]
            await asyncio.sleep(0.1)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    counts = fake.accepted_count_by_number()
    assert set(counts) == {p.phone for p in people}, "someone was missed"
    twice = [n for n, c in counts.items() if c > 1]
    assert all(c <= 2 for c in counts.values())
    assert len(twice) <= lanes * BATCH, f"{len(twice)} sent twice; at most {lanes} in-flight batches of {BATCH} may be"
    cov = await rig.services.deliveries.counts(w["id"])
    assert cov["sent"] == N and cov["queued"] == 0 and cov.get("failed", 0) == 0
    assert second is not None and second.returncode == 0  # SIGTERM is a clean stop
