"""Fan-out benchmark: a blue warning to N contacts, one SMS per request to a loopback Twilio-compatible gateway.

    python bench/fanout.py [--n 100000] [--twilio-sample 2000] [--concurrency 64]

Measured in the same run, against the same gateway (bench/gateway.py, its own process):
  bare     a bare aiohttp client posting the same N requests with the same concurrency
  twilio   the official `twilio` client in a plain loop (a sample of requests; its rate)
  service  the real pipeline: a private Redis, N contacts in the registry, the warning drafted
           through the lifecycle, targeted, recorded, queued, then the channel workers render,
           rate-limit, send, record and acknowledge until nothing is queued
Prints messages per second and the service's rate as a ratio to each reference.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
from contacts.demo import demo_contacts
from contacts.store import RedisRegistry
from warning.bootstrap import build_services, make_workers
from warning.clock import SystemClock
from warning.lifecycle import Actor
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings
from warning.web.contacts_api import build_reference

SID = "AC" + "0" * 31 + "1"
TOKEN = "bench-auth-token-0123456789abcdef"
BODY = "【三台县应急管理局】暴雨蓝色预警：预计未来12小时有大到暴雨，请注意防范。回复1确认"


def start_gateway(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gateway.py"), "--port", str(port)])
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gateway did not start")


async def bare(url: str, n: int, concurrency: int) -> float:
    """Messages per second of a bare aiohttp client: the same form, the same auth, C requests in flight."""
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    endpoint = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
    todo = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        async def loop() -> None:
            for i in todo:
                form = {"To": f"+86138{i:08d}", "From": "+15005550006", "Body": BODY,
                        "StatusCallback": "http://127.0.0.1:8080/hooks/twilio/status?c=sms&d=x"}
                async with http.post(endpoint, data=form, headers={"Authorization": auth}) as resp:
                    await resp.json()

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def twilio_loop(url: str, n: int) -> float:
    """Messages per second of the official client in a plain loop (what a user would otherwise write)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class LocalHttp(TwilioHttpClient):  # type: ignore[misc]
        def request(self, method: str, uri: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, uri.replace("https://api.twilio.com", url), *args, **kwargs)

    client = Client(SID, TOKEN, http_client=LocalHttp())
    started = time.perf_counter()
    for i in range(n):
        client.messages.create(to=f"+86139{i:08d}", from_="+15005550006", body=BODY,
                               status_callback="http://127.0.0.1:8080/hooks/twilio/status")
    return n / (time.perf_counter() - started)


async def service(url: str, n: int, concurrency: int, data_dir: Path, lanes: int = 2) -> dict[str, float]:
    server = PrivateRedis(data_dir, port=free_port())
    redis_url = server.start()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        settings = load_settings(None, demo=True, env={}, overrides={
            "redis": {"url": redis_url}, "dispatch": {"concurrency": concurrency, "batch": 400, "lanes": lanes},
            "channels": [{"name": "sms", "kind": "sms", "provider": "twilio", "account_sid": SID,
                          "auth_token": TOKEN, "from": "+15005550006", "api_base": url, "rate_per_s": 1_000_000}]})
        registry = RedisRegistry(redis)
        ref = build_reference(settings)
        people = demo_contacts(ref.regions, n, ref.roles.keys())
        clock = SystemClock()
        for i in range(0, len(people), 2000):
            await registry.upsert_contacts(people[i:i + 2000], clock.now())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            services = build_services(settings, redis=redis, clock=clock, directory=registry, http=http)
            workers = make_workers(services, consumer="bench")
            for w in workers:
                await w.ensure_groups()
            lanes = int(settings.section("dispatch").get("lanes", 1))
            tasks = [asyncio.create_task(w.run()) for w in workers for _ in range(lanes)]
            first: list[float] = []

            async def watch_first() -> None:
                # the first accepted message, seen while the rest is still being planned
                while not first:
                    ids = await services.warnings.active_ids()
                    if ids and (await services.deliveries.counts(ids[0])).get("sent", 0) > 0:
                        first.append(time.perf_counter())
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch_first())
            memory_before = int((await redis.info("memory"))["used_memory"])
            started = time.perf_counter()
            record = await services.lifecycle.draft(
                {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722"],
                 "instruction": "请注意防范。"}, Actor("bench", "issuer"))
            planned = time.perf_counter()
            while (await services.deliveries.counts(record.id)).get("queued", 0) > 0:
                await asyncio.sleep(0.02)
            done = time.perf_counter()
            watcher.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            counts = await services.deliveries.counts(record.id)
            memory_after = int((await redis.info("memory"))["used_memory"])
        return {"bytes_per_delivery": (memory_after - memory_before) / max(1, counts["sent"]),
                "plan_s": planned - started, "first_s": (first[0] if first else done) - started,
                "total_rate": counts["sent"] / (done - started), "sent": counts["sent"],
                "failed": counts.get("failed", 0), "targeted": counts["targeted"]}
    finally:
        await redis.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--twilio-sample", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--lanes", type=int, default=2, help="batches a worker works on at once ([dispatch] lanes)")
    args = parser.parse_args()
    import tempfile

    port = free_port()
    gateway = start_gateway(port)
    url = f"http://127.0.0.1:{port}"
    try:
        # the reference runs before and after the service; the better of the two is the one compared
        # against, so a slow moment of the machine never flatters the service
        bare_rates = [asyncio.run(bare(url, args.n, args.concurrency))]
        twilio_rate = twilio_loop(url, args.twilio_sample)
        with tempfile.TemporaryDirectory() as tmp:
            ours = asyncio.run(service(url, args.n, args.concurrency, Path(tmp), args.lanes))
        bare_rates.append(asyncio.run(bare(url, args.n, args.concurrency)))
        bare_rate = max(bare_rates)
    finally:
        gateway.terminate()
        gateway.wait()
    print(f"contacts: {args.n}, targeted {ours['targeted']:.0f}, sent {ours['sent']:.0f}, failed {ours['failed']:.0f}")
    print(f"bare aiohttp client       {bare_rate:10.0f} msg/s  (better of {bare_rates[0]:.0f} before and "
          f"{bare_rates[1]:.0f} after)")
    print(f"official twilio, plain loop {twilio_rate:8.0f} msg/s  (sample of {args.twilio_sample})")
    print(f"service: trigger → all recorded and queued {ours['plan_s']:.2f} s; trigger → first accepted "
          f"{ours['first_s']:.2f} s (workers send while the rest is planned)")
    print(f"Redis memory per delivery (record, indexes, counters, provider-id map): "
          f"{ours['bytes_per_delivery']:.0f} bytes")
    print(f"service: trigger → last accepted {ours['total_rate']:8.0f} msg/s  = {ours['total_rate'] / bare_rate:.2f}x bare, "
          f"{ours['total_rate'] / twilio_rate:.1f}x twilio loop")


if __name__ == "__main__":
    main()
