"""Targeting benchmark: a warning for a whole county, resolved to its deliveries, at registry sizes of N contacts.

    python bench/targeting.py [--n 10000 100000 300000] [--province 1000000] [--runs 5] [--quick]

Resolution is what happens before anything is written: the area's contact ids from the registry's index sets,
what the fan-out needs of each contact, the level policy per role, one deliverable (recipient, channel) pair each
with its deterministic id. Recording and queueing are measured by bench/fanout.py. For each size: the median of
`runs` resolutions and the cost per delivery, which should stay flat as the registry grows. With --province, the
same county is resolved inside a province of that many contacts (9 counties of 绵阳 of equal size): the cost per
delivery must not depend on the people outside the area.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from lab import COUNTY, contacts_of, load_contacts, run, this_loop, write_json

from contacts.store import RedisRegistry
from warning.drafting import build_content, parse_draft
from warning.model import WarningState
from warning.policy import load_policy
from warning.record import WarningRecord
from warning.redis_server import PrivateRedis, free_port
from warning.reference import load_event_types
from warning.settings import load_settings
from warning.targeting import Targeting

#: the counties of 绵阳 (GB/T 2260): a province-sized registry is made of counties like the demo one
MIANYANG = ("510722", "510703", "510704", "510705", "510723", "510725", "510726", "510727", "510781")


async def resolve(redis_url: str, runs: int) -> dict[str, Any]:
    """Median seconds of `runs` resolutions of a red warning for the whole county, with the stages'."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        settings = load_settings(None, demo=True, env={})
        registry = RedisRegistry(redis)
        now = datetime(2026, 7, 1, tzinfo=UTC)
        policy = load_policy(settings.section("policy"), roles=set(settings.section("roles")))
        event_types = load_event_types(settings.section("event_types"))
        draft = parse_draft({"event": "rainstorm", "level": "red", "headline": "暴雨红色预警", "areas": [COUNTY]},
                            event_types=event_types, roles=settings.section("roles"), now=now)
        content = build_content(draft, identifier="51072200010001_20260701080000_1", sender="bench",
                                sender_name="bench", now=now, expires=now.replace(day=2))
        record = WarningRecord(id="wbench", version=1, state=WarningState.DISPATCHING, content=content,
                               origin="manual", created_at=now, updated_at=now, expires_at=now.replace(day=2),
                               reply_code="K7Q")
        targeting = Targeting(registry)
        level = policy.for_level("red")
        times, ids_t, routes_t, recipients, ids = [], [], [], [], set()
        for _ in range(runs):
            t0 = time.perf_counter()
            ids = await targeting.contact_ids(record)
            t1 = time.perf_counter()
            await registry.routes(sorted(ids))
            t2 = time.perf_counter()
            recipients = await targeting.people(record, level)  # ids, routes, policy: one whole resolution
            delivery_ids = [r.delivery_id(record.id, 1) for r in recipients]
            t3 = time.perf_counter()
            assert len(delivery_ids) == len(recipients)
            times.append(t3 - t2)
            ids_t.append(t1 - t0)
            routes_t.append(t2 - t1)
    finally:
        await redis.aclose()
    total = statistics.median(times)
    return {"contacts": len(ids), "deliveries": len(recipients), "ids_s": statistics.median(ids_t),
            "routes_s": statistics.median(routes_t), "total_s": total, "us_per_delivery": total / len(recipients) * 1e6}


def show(label: str, r: dict[str, Any]) -> None:
    print(f"{label}: {r['contacts']} contacts in the area, {r['deliveries']} deliveries (red: SMS for all, voice for "
          f"the responsible); area ids {r['ids_s'] * 1000:.0f} ms, what the fan-out needs {r['routes_s'] * 1000:.0f} "
          f"ms, whole resolution {r['total_s'] * 1000:.0f} ms = {r['us_per_delivery']:.1f} µs per delivery",
          flush=True)


async def measure(counties: dict[str, int], runs: int) -> dict[str, Any]:
    """Load `counties` (code → contacts) into a fresh private Redis, then resolve the demo county."""
    with tempfile.TemporaryDirectory(prefix="ew-bench-") as tmp:
        server = PrivateRedis(Path(tmp), port=free_port(), appendonly=False)
        url = server.start()
        try:
            first = 0
            for county, n in counties.items():
                await load_contacts(url, contacts_of(county, n, first))
                first += n
            return await resolve(url, runs)
        finally:
            server.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    for n in args.n:
        out["sizes"][n] = r = await measure({COUNTY: n}, args.runs)
        show(f"registry of {n} (one county)", r)
    if args.province:
        each = args.province // len(MIANYANG)
        out["province"] = r = await measure(dict.fromkeys(MIANYANG, each), args.runs)
        out["province_n"] = each * len(MIANYANG)
        show(f"one county in a province of {each * len(MIANYANG)} ({len(MIANYANG)} counties of {each})", r)
    print(f"(median of {args.runs} resolutions each; event loop: {this_loop()})")
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000], help="registry sizes (one county each)")
    parser.add_argument("--province", type=int, default=0, help="also a county inside a province of this many")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.province = [300, 900], 1, 1800 if args.province else 0
    return args


if __name__ == "__main__":
    options = parse()
    write_json(options.json, run(main(options)))
