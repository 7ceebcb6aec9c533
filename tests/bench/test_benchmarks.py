"""Every benchmark in bench/ runs in quick mode (a few hundred contacts, one run) and prints each figure of issue
12's table with its reference, so none of them rots unnoticed. No timing is asserted here: speed is measured by
running the benchmarks themselves, on a quiet machine (bench/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench

#: every row of the table bench/all.py prints, in order
ROWS = ["POST /api/v1/warnings answer, 300-contact county", "trigger → first provider request, alone",
        "trigger → first provider request, while a 300 blue fan-out runs", "POST answer while that fan-out runs",
        "fan-out, one process, 300 contacts", "fan-out vs the official twilio client", "Redis memory per delivery",
        "fan-out with 1 process", "fan-out with 2 processes (serve + 1 worker)", "fan-out, appendfsync everysec",
        "fan-out, appendfsync always", "receipts (status callbacks/s)", "Redis memory per contact (all indexes)",
        "growth: 200 contacts", "growth: 600 contacts", "growth: one county in a province of 1800"]


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.timeout(300)
def test_every_benchmark_runs_in_quick_mode_and_prints_the_table() -> None:
    out = run("bench/all.py", "--quick")
    table = out.partition("== issue 12's table")[2].splitlines()[3:]
    labels = [row.split(" | ")[0].removeprefix("| ") for row in table]
    assert len(labels) == len(ROWS) and all(label.startswith(r) for label, r in zip(labels, ROWS, strict=True)), labels
    for row in table:
        assert re.search(r"\d", row.split(" | ")[1]), f"no figure in {row}"
    # which event loop each side ran: the service's processes, the references, the gateway
    assert "serve uvloop, worker1 uvloop" in out and "bare aiohttp client (uvloop, one core" in out
    assert "reference (uvloop, one Redis SET)" in out and "gateway on uvloop" in out
    assert "both servers and the clients on uvloop" in out


def test_targeting_runs_in_quick_mode() -> None:
    out = run("bench/targeting.py", "--quick", "--province", "1")
    assert "registry of 300 (one county)" in out and "registry of 900 (one county)" in out
    assert "one county in a province of 1800" in out and "event loop: uvloop" in out
