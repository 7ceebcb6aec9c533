"""Targeting benchmark: a warning for a whole county of N contacts, resolved to its deliveries.

    python bench/targeting.py [--n 100000] [--runs 5]

Resolution is what happens before anything is written: the area's contact ids from the registry's
index sets, what the fan-out needs of each contact, the level policy per role, one deliverable
(recipient, channel) pair each with its deterministic id. Recording and queueing are measured by
bench/fanout.py. Prints the median of `runs` resolutions and the figures per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from contacts.demo import demo_contacts
from contacts.store import RedisRegistry
from warning.drafting import build_content, parse_draft
from warning.model import WarningState
from warning.policy import load_policy
from warning.record import WarningRecord
from warning.redis_server import PrivateRedis, free_port
from warning.reference import load_event_types
from warning.settings import load_settings
from warning.targeting import Targeting
from warning.web.contacts_api import build_reference


async def run(n: int, runs: int) -> None:
    server = PrivateRedis(Path(tempfile.mkdtemp()), port=free_port(), appendonly=False)
    url = server.start()
    redis = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        settings = load_settings(None, demo=True, env={})
        ref = build_reference(settings)
        registry = RedisRegistry(redis)
        now = datetime(2026, 7, 1, tzinfo=UTC)
        people = demo_contacts(ref.regions, n, ref.roles.keys())
        for i in range(0, n, 2000):
            await registry.upsert_contacts(people[i:i + 2000], now)
        policy = load_policy(settings.section("policy"), roles=set(settings.section("roles")))
        event_types = load_event_types(settings.section("event_types"))
        draft = parse_draft({"event": "rainstorm", "level": "red", "headline": "暴雨红色预警", "areas": ["510722"]},
                            event_types=event_types, roles=settings.section("roles"), now=now)
        content = build_content(draft, identifier="51072200010001_20260701080000_1", sender="bench",
                                sender_name="bench", now=now, expires=now.replace(day=2))
        record = WarningRecord(id="wbench", version=1, state=WarningState.DISPATCHING, content=content,
                               origin="manual", created_at=now, updated_at=now, expires_at=now.replace(day=2),
                               reply_code="K7Q")
        targeting = Targeting(registry)
        level = policy.for_level("red")
        times, ids_t, routes_t = [], [], []
        recipients = []
        ids: set[str] = set()
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
        print(f"contacts in the area: {len(ids)}; deliveries (red: SMS for all, voice for the responsible): "
              f"{len(recipients)}")
        print(f"area ids from the index sets   {statistics.median(ids_t) * 1000:8.0f} ms")
        print(f"what the fan-out needs of each {statistics.median(routes_t) * 1000:8.0f} ms")
        print(f"resolution, total (median of {runs}) {statistics.median(times) * 1000:6.0f} ms")
    finally:
        await redis.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.runs))


if __name__ == "__main__":
    main()
