"""Status callbacks ingested per second through the real app on loopback, as a ratio to a parse-only aiohttp handler.

    python bench/callbacks.py [--messages 3000] [--concurrency 128] [--clients 2] [--runs 3] [--profile app.prof]
                              [--quick] [--json FILE]

Both servers run in this process on 127.0.0.1, one after the other, in alternating order from run to
run; the load comes from client processes built the same way for both: each connects, posts its share
of warm-up callbacks (not timed), waits for the others, then posts its share of the timed ones over
keep-alive connections. Every run posts the same Twilio-signed callbacks (sent, then delivered a
little later, for each message, in shuffled message order) to both servers. The real app checks each
signature, parses the form and applies the receipt to Redis (a private redis-server started here);
the baseline only parses the form and answers 204. CPU seconds per thousand callbacks are reported
for this process, redis-server and the client processes, to show where a 2-core machine spends them.
Both servers and the clients run on uvloop (the fastest loop there is; the service's own when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing as mp
import random
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from twilio.request_validator import RequestValidator

from warning import keys
from warning.delivery import Delivery, DeliveryState
from warning.delivery_store import Row
from warning.eventloop import loop_name, new_event_loop
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings
from warning.web.app import create_app
from warning.web.keys import Deps, services_key

TOKEN = "bench-twilio-auth-token-0123456789"
#: a message's delivered callback follows its sent callback this many callbacks later
LAG = 100
Call = tuple[str, bytes, str]


@dataclass
class Load:
    """One timed load phase: seconds, non-2xx answers, client CPU seconds."""

    seconds: float
    bad: int
    client_cpu: float


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _client(port: int, warm: list[Call], calls: list[Call], concurrency: int, barrier: Any, out: Any) -> None:
    async def post_all(session: aiohttp.ClientSession, share: list[Call]) -> int:
        queue = list(reversed(share))
        bad = 0

        async def worker() -> None:
            nonlocal bad
            while queue:
                path, body, sig = queue.pop()
                async with session.post(f"http://127.0.0.1:{port}{path}", data=body, headers={
                        "X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}) as r:
                    await r.read()
                    bad += r.status >= 300

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return bad

    async def run() -> None:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            await post_all(session, warm)
            await asyncio.to_thread(barrier.wait)  # every client warm, connections open: the clock starts
            cpu = _cpu()
            bad = await post_all(session, calls)
            out.put((time.perf_counter(), bad, _cpu() - cpu))

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run())


def load(port: int, warm: list[Call], calls: list[Call], clients: int, concurrency: int) -> Load:
    """Post every call from `clients` processes after a warm-up; time from all ready to the last answer."""
    ctx = mp.get_context("fork")
    out: Any = ctx.Queue()
    barrier: Any = ctx.Barrier(clients + 1)
    procs = [ctx.Process(target=_client, args=(port, warm[i::clients], calls[i::clients], concurrency // clients,
                                               barrier, out)) for i in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    started = time.perf_counter()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return Load(max(r[0] for r in results) - started, sum(r[1] for r in results), sum(r[2] for r in results))


def callbacks(wid: str, n: int, port: int, seed: int) -> tuple[list[Call], list[tuple[str, str]]]:
    """Signed callbacks (sent, then delivered LAG callbacks later) for n messages, and (delivery id, sid) pairs."""
    validator = RequestValidator(TOKEN)
    pairs = [(f"{wid}d{i:07d}", f"SM{wid}{i:028x}") for i in range(n)]
    random.Random(seed).shuffle(pairs)

    def call(did: str, sid: str, status: str) -> Call:
        path = f"/hooks/twilio/status?{urlencode({'c': 'sms', 'd': did})}"
        form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                "To": "+8613800000000", "From": "+15005550006", "AccountSid": "AC" + "0" * 32,
                "ApiVersion": "2010-04-01"}
        return path, urlencode(form).encode(), validator.compute_signature(f"http://127.0.0.1:{port}{path}", form)

    out: list[Call] = []
    for i in range(n + LAG):
        if i < n:
            out.append(call(*pairs[i], "sent"))
        if i >= LAG:
            out.append(call(*pairs[i - LAG], "delivered"))
    return out, pairs


async def seed(app: web.Application, wid: str, pairs: list[tuple[str, str]]) -> None:
    """Deliveries a provider accepted (created, then moved PENDING → ACCEPTED as a worker would) and their ids."""
    services = app[services_key]
    now = datetime.now(UTC)
    rows = [Row(Delivery(id=did, warning_id=wid, version=1, recipient_id=f"c{did}", channel="sms", kind="sms",
                         address="+8613800000000"), region="510722101001", role="village_monitor")
            for did, _ in pairs]
    for i in range(0, len(rows), 1000):
        chunk = rows[i:i + 1000]
        await services.deliveries.create_many(wid, chunk, {})
        changes = [services.deliveries.change(r, DeliveryState.ACCEPTED, now, provider_ref=sid)
                   for r, (_, sid) in zip(chunk, pairs[i:i + 1000], strict=True)]
        ok = await services.deliveries.commit(wid, [c for c in changes if c is not None])
        assert all(ok) and len(ok) == len(chunk), "seeding failed"
    async with services.redis.pipeline(transaction=False) as pipe:
        for did, sid in pairs:
            pipe.set(keys.ref_key("sms", sid), f"{wid}:{did}")
        await pipe.execute()


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def bare_handler(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(status=204)


async def redis_usage(url: str) -> tuple[float, int]:
    """redis-server's CPU seconds so far and the script calls it has run (each a round trip of ours)."""
    client = aioredis.Redis.from_url(url)
    try:
        info = await client.info("cpu")
        stats = await client.info("commandstats")
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                int(stats.get("cmdstat_evalsha", {}).get("calls", 0)))
    finally:
        await client.aclose()


async def run_app(args: argparse.Namespace, url: str, port: int, run: int, warm: list[Call], calls: list[Call],
                  pairs: tuple[list[tuple[str, str]], list[tuple[str, str]]], prof: cProfile.Profile | None
                  ) -> tuple[Load, float, tuple[float, int], bool]:
    """One timed phase through the real app: (load, our CPU s, (redis CPU s, script calls), delivered exact)."""
    settings = load_settings(None, env={}, overrides={
        "server": {"public_url": f"http://127.0.0.1:{port}", "log_format": "text", "log_level": "WARNING"},
        "channels": [{"name": "sms", "kind": "sms", "provider": "twilio", "account_sid": "AC" + "0" * 32,
                      "auth_token": TOKEN, "from": "+15005550006", "api_base": "http://127.0.0.1:9"}]})
    app = create_app(settings, deps=Deps(redis_url=url, extra={"background": False}))
    runner = await serve(app, port)
    try:
        await seed(app, f"w{run}", pairs[0])
        await seed(app, f"x{run}", pairs[1])
        cpu, before = _cpu(), await redis_usage(url)
        if prof:
            prof.enable()
        result = await asyncio.to_thread(load, port, warm, calls, args.clients, args.concurrency)
        if prof:
            prof.disable()
        cpu, after = _cpu() - cpu, await redis_usage(url)
        counts = await app[services_key].deliveries.counts(f"w{run}")
    finally:
        await runner.cleanup()
    usage = (after[0] - before[0], after[1] - before[1])
    return result, cpu, usage, counts.get("delivered") == args.messages and counts.get("sent") == args.messages


async def run_bare(args: argparse.Namespace, port: int, warm: list[Call], calls: list[Call]) -> tuple[Load, float]:
    bare = web.Application()
    bare.router.add_post("/hooks/twilio/status", bare_handler)
    runner = await serve(bare, port)
    try:
        cpu = _cpu()
        result = await asyncio.to_thread(load, port, warm, calls, args.clients, args.concurrency)
        return result, _cpu() - cpu
    finally:
        await runner.cleanup()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    port = free_port()
    prof = cProfile.Profile() if args.profile else None
    ratios, app_rates, bare_rates = [], [], []
    print(f"{args.messages} messages × (sent, delivered) a run, {args.warmup} warm-up messages, {args.clients} "
          f"client processes, {args.concurrency} connections; both servers and the clients on {loop_name()}; "
          f"CPU s per 1000 callbacks: ours / redis / clients")
    with tempfile.TemporaryDirectory() as tmp:
        redis = PrivateRedis(Path(tmp), port=free_port(), appendonly=False)
        redis.start()
        try:
            for run in range(args.runs):
                calls, timed = callbacks(f"w{run}", args.messages, port, run)
                warm, spare = callbacks(f"x{run}", args.warmup, port, run)
                n = len(calls) / 1000
                phases = ["app", "bare"] if run % 2 == 0 else ["bare", "app"]
                for phase in phases:
                    if phase == "app":
                        a, cpu, (rcpu, commands), exact = await run_app(args, redis.url, port, run, warm, calls, (timed, spare),
                                                            prof)
                        print(f"run {run + 1} app : {len(calls) / a.seconds:7.0f}/s  ({a.bad} non-2xx, delivered "
                              f"exact: {exact}, {commands / len(calls):.2f} script calls a callback)  cpu {cpu / n:.2f} / "
                              f"{rcpu / n:.2f} / {a.client_cpu / n:.2f}")
                    else:
                        b, bcpu = await run_bare(args, port, warm, calls)
                        print(f"run {run + 1} bare: {len(calls) / b.seconds:7.0f}/s  ({b.bad} non-2xx)"
                              f"{'':62}cpu {bcpu / n:.2f} / 0 / {b.client_cpu / n:.2f}")
                app_rates.append(len(calls) / a.seconds)
                bare_rates.append(len(calls) / b.seconds)
                ratios.append(b.seconds / a.seconds)
        finally:
            redis.stop()
    print(f"median: app {statistics.median(app_rates):.0f}/s, parse-only {statistics.median(bare_rates):.0f}/s, "
          f"ratio {statistics.median(ratios):.2f}× (runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    if prof:
        prof.dump_stats(args.profile)
        print(f"profile of the app phases written to {args.profile}")
    return {"app": statistics.median(app_rates), "bare": statistics.median(bare_rates),
            "ratio": statistics.median(ratios), "loop": loop_name()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300, help="messages posted before the clock starts")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of this process during the app phases here")
    parser.add_argument("--quick", action="store_true", help="few messages, one run: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    options = parser.parse_args()
    if options.quick:
        options.messages, options.warmup, options.runs = 200, 50, 1
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        figures = runner.run(main(options))
    if options.json:
        Path(options.json).write_text(json.dumps(figures), encoding="utf-8")
