"""The service runs on uvloop where it is installed (a dependency on Linux): `warning serve` and `warning worker`
say which loop they run, and nothing else in the process changes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_private_redis import DEADLINE_S
from tests.test_store_owner import Serve, _config, _env, _worker_config
from warning.eventloop import loop_name, new_event_loop
from warning.redis_server import PrivateRedis, free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uvloop is a dependency on Linux only")


def test_new_event_loop_is_uvloop_and_leaves_the_process_loop_alone() -> None:
    policy = asyncio.get_event_loop_policy()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert runner.run(_running_loop_name()) == "uvloop"
    assert asyncio.get_event_loop_policy() is policy
    assert asyncio.run(_running_loop_name()) == "asyncio"


async def _running_loop_name() -> str:
    return loop_name()


def test_serve_runs_on_uvloop_and_says_so(tmp_path: Path) -> None:
    serve = Serve(tmp_path, _config(tmp_path), free_port(), "serve")
    try:
        serve.wait_ready()
    finally:
        serve.stop()
    assert "事件循环 event loop: uvloop" in serve.err.read_text(encoding="utf-8").splitlines()


def test_worker_runs_on_uvloop_and_says_so(tmp_path: Path) -> None:
    service = PrivateRedis(tmp_path / "data")
    service.start()
    worker = subprocess.Popen([sys.executable, "-m", "warning", "worker", "--config", str(_worker_config(tmp_path)),
                               "--name", "w-loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().decode().strip() == "worker w-loop: sms-sim (event loop: uvloop)"
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=DEADLINE_S)
        assert worker.returncode == 0
    finally:
        worker.kill()
        worker.communicate()
        service.stop()
