"""What the benchmarks share: the loopback gateway, the service as real processes, CPU per process, percentiles.

The service is measured as it runs in production: `warning serve` (and `warning worker` processes) started with a
configuration file, a private redis-server, a Twilio-compatible gateway (bench/gateway.py) in its own process, and
warnings drafted through the HTTP API. Nothing here imports the service's internals beyond the contact registry
(to load contacts fast) and the private Redis, so a restructuring of the service does not break the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiohttp
import redis.asyncio as aioredis

from contacts.demo import demo_contacts, demo_phone
from contacts.model import Contact
from contacts.store import RedisRegistry
from warning.eventloop import loop_name, new_event_loop
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings
from warning.web.contacts_api import build_reference

ROOT = Path(__file__).resolve().parent.parent
SID = "AC" + "0" * 31 + "1"
TOKEN = "bench-auth-token-0123456789abcdef"
FROM = "+15005550006"
COUNTY = "510722"
ISSUER = "bench-issuer-token-000000"
APPROVER = "bench-approver-token-00000"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def run(main: Any) -> Any:
    """Run a coroutine on uvloop (the references and the bench's own client use the fastest loop there is)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 (with fewer than 100 samples p99 is close to the worst of them)."""
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_S


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (/proc/stat: all but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) * TICK_S


@dataclass
class CpuMeter:
    """CPU seconds of named processes over a measured span: `start()`, then `stop()` → share of a core each, and
    under "(other processes)" what the rest of the machine used meanwhile (other work that took cores from ours)."""

    pids: dict[str, int]
    _at: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0
    _busy: float = 0.0

    def start(self) -> None:
        self._at = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._busy = machine_busy_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Each process's CPU over the span as a share of one core (1.0 = a whole core)."""
        wall = max(1e-9, time.perf_counter() - self._t0)
        shares = {name: (cpu_seconds(pid) - self._at.get(name, 0.0)) / wall for name, pid in self.pids.items()}
        shares[OTHERS] = max(0.0, (machine_busy_seconds() - self._busy) / wall - sum(shares.values()))
        return shares


OTHERS = "(other processes)"


def describe_cpu(shares: dict[str, float]) -> str:
    """`serve 97%, redis-server 41%, ...; binds: serve (one core)` — what binds is the busiest process of ours
    when it uses nearly a core, else the machine when everything on it uses nearly every core."""
    parts = ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares.items(), key=lambda kv: -kv[1]))
    ours = {k: v for k, v in shares.items() if k != OTHERS}
    busiest, top = max(ours.items(), key=lambda kv: kv[1])
    total = sum(shares.values())
    if top >= 0.85:
        binds = f"{busiest} (a whole core)"
    elif total >= 0.85 * CPUS:
        binds = f"the machine ({total:.0%} of {CPUS} cores busy, {shares.get(OTHERS, 0):.0%} of it not ours)"
    else:
        binds = f"no CPU ({total:.0%} of {CPUS} cores busy): waits (round trips, fsync, rate limits)"
    return f"CPU {parts}; binds: {binds}"


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Gateway:
    """bench/gateway.py in its own process: a Twilio-compatible Messages endpoint that counts what it gets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gateway.py"), "--port", str(self.port)],
                                     stdout=subprocess.PIPE)
        wait_port(self.port, self.proc, "the gateway")
        assert self.proc.stdout is not None
        self.loop = self.proc.stdout.readline().decode().strip().rpartition(": ")[2] or "?"

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """{"count": messages so far, "first": {marker: monotonic time of its first message}}."""
        async with http.get(f"{self.url}/bench/stats") as resp:
            return dict(await resp.json())

    async def watch(self, http: aiohttp.ClientSession, marker: str) -> None:
        """Note the arrival time of the first message whose body holds `marker`."""
        async with http.post(f"{self.url}/bench/watch", params={"marker": marker}) as resp:
            resp.raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def contacts_of(county: str, n: int, first: int = 0) -> list[Contact]:
    """n generated people of the demo county, moved to `county` (same villages under its code), numbers unique
    from `first` on: counties of a province that each look like the demo one."""
    ref = build_reference(load_settings(None, demo=True, env={}))
    people = demo_contacts(ref.regions, n, list(ref.roles.keys()), seed=2026 + first)
    if county == COUNTY and first == 0:
        return people
    return [replace(c, region=county + c.region[6:], phone=demo_phone(first + i)) for i, c in enumerate(people)]


async def load_contacts(redis_url: str, people: Iterable[Contact], batch: int = 2000) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        registry, chunk, now = RedisRegistry(client), [], datetime.now(UTC)
        for c in people:
            chunk.append(c)
            if len(chunk) == batch:
                await registry.upsert_contacts(chunk, now)
                chunk = []
        if chunk:
            await registry.upsert_contacts(chunk, now)
    finally:
        await client.aclose()


async def used_memory(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def redis_config(redis_url: str, **settings: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for key, value in settings.items():
            await client.config_set(key, value)
    finally:
        await client.aclose()


def config_text(redis_url: str, gateway: Gateway, port: int, *, concurrency: int = 64, lanes: int = 2) -> str:
    """The service's configuration: one Twilio SMS channel on the gateway, unlimited rate, the demo county."""
    return f"""
[server]
public_url = "http://127.0.0.1:{port}"
log_format = "text"
log_level = "WARNING"
[redis]
url = "{redis_url}"
[registry]
regions_csv = "{ROOT / 'config' / 'demo_regions.csv'}"
[issuer]
code = "{COUNTY}"
unit = "00010001"
name = "三台县应急管理局"
sender = "bench@santai.example.cn"
signature = "【三台县应急管理局】"
[dispatch]
concurrency = {concurrency}
lanes = {lanes}
[[auth.tokens]]
name = "bench-issuer"
role = "issuer"
token = "{ISSUER}"
[[auth.tokens]]
name = "bench-approver"
role = "approver"
token = "{APPROVER}"
[[channels]]
name = "sms"
kind = "sms"
provider = "twilio"
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "{FROM}"
api_base = "{gateway.url}"
rate_per_s = 1000000
"""


class Service:
    """`warning serve` plus `workers` × `warning worker`, sharing one Redis and the gateway."""

    def __init__(self, folder: Path, redis_url: str, gateway: Gateway, **options: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "service.toml"
        self.config.write_text(config_text(redis_url, gateway, self.port, **options), encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WARNING_")}
        self.serve = self._spawn("serve", ["serve", "--port", str(self.port)])
        self.workers: list[subprocess.Popen[bytes]] = []
        wait_port(self.port, self.serve, "warning serve")

    def _spawn(self, tag: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{tag}.out").open("wb") as out, (self.folder / f"{tag}.err").open("wb") as err:
            return subprocess.Popen([sys.executable, "-m", "warning", *args, "--config", str(self.config)],
                                    stdout=out, stderr=err, cwd=self.folder, env=self.env)

    def set_processes(self, count: int) -> None:
        """`warning serve` and count - 1 `warning worker` processes: workers started or stopped (between
        fan-outs, so a stopped one leaves nothing pending)."""
        while 1 + len(self.workers) < count:
            self.add_worker()
        while 1 + len(self.workers) > count:
            stop_process(self.workers.pop())

    async def warm_up(self, http: aiohttp.ClientSession) -> None:
        """One small warning (a township of the county), untimed: code paths, templates and connections warm."""
        wid, _, _ = await self.draft(http, "blue", f"WARM{time.time_ns() % 10**8}", area=f"{COUNTY}101")
        await self.wait_done(http, wid, None)

    def add_worker(self) -> None:
        """One more `warning worker` process; returns once it has joined the queues."""
        tag = f"worker{len(self.workers) + 1}"
        proc = self._spawn(tag, ["worker", "--name", f"bench-{tag}"])
        self.workers.append(proc)
        deadline = time.monotonic() + 60
        while "event loop" not in (self.folder / f"{tag}.out").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"warning worker did not start: {(self.folder / f'{tag}.err').read_text()[-800:]}")
            time.sleep(0.05)

    @property
    def pids(self) -> dict[str, int]:
        return {"serve": self.serve.pid, **{f"worker{i + 1}": w.pid for i, w in enumerate(self.workers)}}

    def loops(self) -> str:
        """Which event loop each process said it runs."""
        said = []
        for tag in ("serve", *(f"worker{i + 1}" for i in range(len(self.workers)))):
            text = " ".join((self.folder / f"{tag}.{kind}").read_text(errors="replace") for kind in ("out", "err"))
            said.append(f"{tag} {'uvloop' if 'event loop: uvloop' in text else 'asyncio'}")
        return ", ".join(said)

    async def draft(self, http: aiohttp.ClientSession, level: str, marker: str, event: str = "rainstorm",
                    area: str = COUNTY) -> tuple[str, float, float]:
        """POST /api/v1/warnings for the whole county (or `area`): (warning id, monotonic time sent, seconds to the
        answer)."""
        body = {"event": event, "level": level, "headline": f"暴雨{level}预警 {marker}", "areas": [area],
                "instruction": f"请注意防范 {marker}。"}
        sent = time.monotonic()
        async with http.post(f"{self.url}/api/v1/warnings", json=body,
                             headers={"Authorization": f"Bearer {ISSUER}", "Idempotency-Key": marker}) as resp:
            answer = await resp.json()
            took = time.monotonic() - sent
            if resp.status != 201:
                raise RuntimeError(f"draft refused: {resp.status} {answer}")
        return str(answer["id"]), sent, took

    async def coverage(self, http: aiohttp.ClientSession, wid: str) -> dict[str, Any]:
        async with http.get(f"{self.url}/api/v1/warnings/{wid}/coverage",
                            headers={"Authorization": f"Bearer {ISSUER}"}) as resp:
            return dict(await resp.json())

    async def wait_done(self, http: aiohttp.ClientSession, wid: str, expected: int | None,
                        timeout_s: float = 1800) -> dict[str, Any]:
        """Poll the coverage until `expected` deliveries (None: as many as people targeted) were sent or failed
        (or nothing is queued and nothing has moved for 3 s: some were not deliverable); the last coverage read."""
        deadline = time.monotonic() + timeout_s
        last, still_since = -1, time.monotonic()
        while True:
            cov = await self.coverage(http, wid)
            done = cov["sent"] + cov["failed"]
            if done >= (expected if expected is not None else max(1, cov["targeted"])):
                return cov
            if done != last:
                last, still_since = done, time.monotonic()
            elif cov["queued"] == 0 and time.monotonic() - still_since > 3:
                return cov
            if time.monotonic() > deadline:
                raise RuntimeError(f"warning {wid} not done after {timeout_s:.0f} s: {cov}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for proc in self.workers:
            stop_process(proc)
        stop_process(self.serve, signal.SIGINT)


class World:
    """A private Redis (AOF as asked) with n contacts of the county, the gateway, and a folder for the service."""

    def __init__(self, n: int, *, appendonly: bool = True, province: int = 0) -> None:
        self.n, self.appendonly, self.province = n, appendonly, province
        self.tmp = tempfile.TemporaryDirectory(prefix="ew-bench-")
        self.folder = Path(self.tmp.name)
        self.redis = PrivateRedis(self.folder / "redis", port=free_port(), appendonly=appendonly)
        self.gateway: Gateway | None = None

    async def __aenter__(self) -> Self:
        self.redis_url = self.redis.start()
        self.gateway = Gateway()
        self.memory_empty = await used_memory(self.redis_url)
        await load_contacts(self.redis_url, contacts_of(COUNTY, self.n))
        self.memory_contacts = await used_memory(self.redis_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.redis.stop()
        self.tmp.cleanup()

    @property
    def redis_pid(self) -> int:
        assert self.redis.proc is not None
        return self.redis.proc.pid

    def service(self, tag: str, **options: int) -> Service:
        assert self.gateway is not None
        folder = self.folder / tag
        folder.mkdir()
        return Service(folder, self.redis_url, self.gateway, **options)


def this_loop() -> str:
    return loop_name()


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    """The figures for bench/all.py, when it asked for them (--json FILE)."""
    if path:
        Path(path).write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
