"""Registry benchmark: import N generated contacts from CSV into a fresh Redis, then prefix+role queries.

    python bench/registry.py [--n 100000] [--batch 1000] [--quick] [--json FILE]

Prints the import time and rate, Redis memory per contact, the re-import time (nothing added),
the median time of prefix+role queries, and this process's peak memory (the file is streamed).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from contacts.demo import demo_contacts
from contacts.importer import import_contacts
from contacts.keys import contact_active_role_key
from contacts.reference import Reference, RoleBook
from contacts.regions import RegionTree
from contacts.store import RedisRegistry
from warning.eventloop import loop_name, new_event_loop
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["姓名", "手机号码", "角色", "行政区划代码", "纬度", "经度", "渠道", "语言", "上级手机号码"]


def write_csv(path: Path, n: int, ref: Reference) -> None:
    """N generated people of the demo county; village monitors name their township's first cadre."""
    people = demo_contacts(ref.regions, n, ref.roles.keys())
    cadre_of: dict[str, str] = {}
    for c in people:
        if c.role == "cadre":
            cadre_of.setdefault(c.region[:9], c.phone)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for c in people:
            sup = cadre_of.get(c.region[:9], "") if c.role == "village_monitor" else ""
            loc = c.location
            out.writerow([c.name, c.phone, ref.roles.label(c.role), c.region, loc.lat if loc else "",
                          loc.lon if loc else "", "", "", sup])


async def used_memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def timed_ms(coro_factory: object, runs: int = 25) -> tuple[float, int]:
    """Median milliseconds of `runs` calls, and the size of the last answer."""
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        result = await coro_factory()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
        size = result if isinstance(result, int) else len(result)
    return statistics.median(times), size


def reference() -> Reference:
    settings = load_settings(None, env={})
    return Reference(RoleBook.from_config(settings.section("roles")),
                     RegionTree.from_csv(ROOT / "config" / "demo_regions.csv"))


async def run(path: Path, n: int, batch: int) -> dict[str, Any]:
    ref = reference()
    server = PrivateRedis(path.parent / "redis", port=free_port(), appendonly=False)
    server.start()
    redis = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        registry = RedisRegistry(redis)
        before, rate = await used_memory(redis), 0.0
        for label in ("import", "re-import"):
            with path.open("rb") as fh:
                start = time.perf_counter()
                report = await import_contacts(fh, "csv", registry, ref, now=datetime.now(UTC), batch_rows=batch)
                took = time.perf_counter() - start
            rate = rate if label == "re-import" else n / took
            print(f"{label:<10} {n} rows in {took:.1f} s ({n / took:,.0f} rows/s): accepted {report.accepted}, "
                  f"updated {report.updated}, rejected {len(report.rejected)}")
        after = await used_memory(redis)
        figures: dict[str, Any] = {"bytes_per_contact": (after - before) / n, "import_rows_per_s": rate,
                                   "loop": loop_name()}
        print(f"redis memory {(after - before) / n:,.0f} bytes per contact "
              f"({(after - before) / 2**20:.1f} MiB for {await registry.count()} contacts, all indexes included)")
        for prefixes, roles in ((["510722"], ["village_monitor"]), (["510722101"], ["cadre", "duty_officer"]),
                                (["510722"], None), (["510722137", "510722112"], ["hazard_monitor"])):
            ms, size = await timed_ms(lambda p=prefixes, r=roles: registry.ids_in_regions(p, r))
            print(f"query {'+'.join(prefixes)} roles={','.join(roles) if roles else 'any'}: "
                  f"{ms:.1f} ms median, {size} ids")
        ms, size = await timed_ms(lambda: redis.scard(contact_active_role_key("510722", "village_monitor")))
        print(f"  the county+role set's size read inside Redis (no transfer): {ms:.2f} ms median, {size}")
        ms, size = await timed_ms(lambda: registry.ids_near(31.09, 105.09, 5000))
        print(f"query within 5 km of the county seat: {ms:.1f} ms median, {size} ids")
    finally:
        await redis.aclose()
        server.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process {peak:.0f} MiB (file {path.name} streamed, not loaded)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--write", metavar="CSV", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a few contacts: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    args = parser.parse_args()
    if args.quick:
        args.n = 2000
    if args.write:
        write_csv(Path(args.write), args.n, reference())
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        # written by a child process, so this process's peak memory is the import's alone
        subprocess.run([sys.executable, __file__, "--write", str(path), "--n", str(args.n)], check=True)
        print(f"file       {path.stat().st_size / 2**20:.1f} MiB CSV, {args.n} rows")
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            figures = runner.run(run(path, args.n, args.batch))
        print(f"event loop: {figures.pop('loop')}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
