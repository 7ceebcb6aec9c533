"""Fan-out benchmark: a blue warning to a county of N contacts, one SMS per request to a loopback Twilio gateway.

    python bench/fanout.py [--n 100000] [--runs 3] [--processes 1 2 3] [--fsync everysec always] [--quick]

Measured in the same run, against the same gateway (bench/gateway.py, its own process, uvloop):
  bare     the fastest client this machine allows, before and after the service (the better one is compared):
           aiohttp on uvloop, pinned to one core, a hand-encoded form body, one message per request, C in flight
  twilio   the official `twilio` client in a plain loop (a sample of requests; its rate)
  service  `warning serve` (and `warning worker` processes sharing the streams) on a private Redis with AOF, the
           warning drafted through the API, until every message was accepted: trigger → last accepted
Prints msg/s, the ratio to each reference, Redis bytes per delivery, and the CPU of every process (service,
workers, redis-server, gateway, this bench polling the coverage) with what binds; then the same fan-out with
`appendfsync always` against `everysec` (the default), and with 1, 2 and 3 processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from lab import CPUS, FROM, SID, TOKEN, CpuMeter, Service, World, describe_cpu, run, this_loop, used_memory, write_json

BODY = "【三台县应急管理局】暴雨蓝色预警：预计未来12小时有大到暴雨，请注意防范。回复1确认"
CALLBACK = "http://127.0.0.1:8080/hooks/twilio/status?c=sms&d=w1d0000001"
WARMUP = 1000


async def bare(url: str, n: int, concurrency: int) -> tuple[float, str]:
    """Messages per second of a bare aiohttp client: bodies encoded by hand, auth precomputed, C in flight."""
    endpoint = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
    headers = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode(),
               "Content-Type": "application/x-www-form-urlencoded"}
    rest = ("&" + urlencode({"From": FROM, "Body": BODY, "StatusCallback": CALLBACK})).encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def send(todo: Any) -> None:
            for i in todo:
                async with http.post(endpoint, data=b"To=%2B86138" + b"%08d" % i + rest, headers=headers) as resp:
                    json.loads(await resp.read())["sid"]

        warm = iter(range(min(WARMUP, n)))
        await asyncio.gather(*(send(warm) for _ in range(concurrency)))  # connections open, code paths warm
        todo = iter(range(n))
        started = time.perf_counter()
        await asyncio.gather(*(send(todo) for _ in range(concurrency)))
        return n / (time.perf_counter() - started), this_loop()


def bare_process(url: str, n: int, concurrency: int) -> tuple[float, str]:
    """The bare client in its own process pinned to one core (as a fast dedicated sender would be run)."""
    out = subprocess.run([sys.executable, __file__, "--bare", url, "--n", str(n), "--concurrency", str(concurrency)],
                         check=True, capture_output=True, text=True).stdout
    said = json.loads(out)
    return float(said["rate"]), str(said["loop"])


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
        client.messages.create(to=f"+86139{i:08d}", from_=FROM, body=BODY, status_callback=CALLBACK)
    return n / (time.perf_counter() - started)


async def fan_out(world: World, service: Service, tag: str) -> dict[str, Any]:
    """One blue warning to the whole county, trigger → last accepted; CPU of every process over that span."""
    assert world.gateway is not None
    meter = CpuMeter({**service.pids, "redis-server": world.redis_pid, "gateway": world.gateway.proc.pid,
                      "bench": os.getpid()})
    async with aiohttp.ClientSession() as http:
        before = await used_memory(world.redis_url)
        meter.start()
        wid, sent, answer_s = await service.draft(http, "blue", tag)
        cov = await service.wait_done(http, wid, world.n)
        done = time.monotonic()
        cpu = meter.stop()
        after = await used_memory(world.redis_url)
    return {"rate": cov["sent"] / (done - sent), "sent": cov["sent"], "failed": cov["failed"], "answer_s": answer_s,
            "bytes_per_delivery": (after - before) / max(1, cov["sent"]), "cpu": cpu}


async def series(world: World, service: Service, label: str, runs: int) -> dict[str, Any]:
    """A warm-up, then `runs` fan-outs of one configuration; the median run by rate, printed with its CPU."""
    async with aiohttp.ClientSession() as http:
        await service.warm_up(http)
    results = []
    for i in range(runs):
        results.append(await fan_out(world, service, f"{label.replace(' ', '-')}-{i}-{time.time_ns() % 10**8}"))
        r = results[-1]
        print(f"  {label} run {i + 1}: {r['rate']:7.0f} msg/s  ({r['sent']} sent, {r['failed']} failed, answered in "
              f"{r['answer_s']:.2f} s)", flush=True)
    return summarise(label, results)


async def measure_service(args: argparse.Namespace, world: World) -> dict[str, Any]:
    """The fan-out per fsync mode (one process) and per number of processes (everysec), `runs` rounds, the
    configurations in alternating order from round to round so that a slow moment of the machine is shared."""
    configs = [(f"1 process, appendfsync {mode}", mode, 1) for mode in args.fsync]
    configs += [(f"{count} processes", "everysec", count) for count in sorted(set(args.processes))
                if count != 1 or "everysec" not in args.fsync]
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in configs}
    service = world.service("service")
    try:
        async with aiohttp.ClientSession() as http:
            await service.warm_up(http)
        for i in range(args.runs):
            for label, mode, count in configs if i % 2 == 0 else configs[::-1]:
                await _appendfsync(world, mode)
                service.set_processes(count)
                r = await fan_out(world, service, f"R{i}{label[:1]}{mode[:2]}{time.time_ns() % 10**8}")
                results[label].append(r)
                print(f"  {label} run {i + 1}: {r['rate']:7.0f} msg/s  ({r['sent']} sent, {r['failed']} failed, "
                      f"answered in {r['answer_s']:.2f} s)", flush=True)
        service.set_processes(max(count for _, _, count in configs))
        loops = service.loops()
    finally:
        service.stop()
    out: dict[str, Any] = {"fsync": {}, "processes": {}, "loops": loops}
    for label, mode, count in configs:
        summary = summarise(label, results[label])
        if label.startswith("1 process"):
            out["fsync"][mode] = summary
        if mode == "everysec":
            out["processes"][count] = summary
    return out


def summarise(label: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run by rate, with its CPU."""
    median = sorted(results, key=lambda r: r["rate"])[len(results) // 2]
    print(f"  {label}: median {median['rate']:.0f} msg/s; {describe_cpu(median['cpu'])}", flush=True)
    return {"rate": median["rate"], "rates": [r["rate"] for r in results], "cpu": median["cpu"],
            "bytes_per_delivery": statistics.median(r["bytes_per_delivery"] for r in results),
            "answer_s": statistics.median(r["answer_s"] for r in results)}


async def _appendfsync(world: World, mode: str) -> None:
    from lab import redis_config

    await redis_config(world.redis_url, appendfsync=mode)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with World(args.n, appendonly=True) as world:
        assert world.gateway is not None
        url = world.gateway.url
        print(f"contacts: {args.n} ({(world.memory_contacts - world.memory_empty) / args.n:.0f} B each in Redis); "
              f"{CPUS} cores; gateway on {world.gateway.loop}; this bench on {this_loop()}", flush=True)
        bare_rates, bare_loop = [], ""
        rate, bare_loop = bare_process(url, args.n, args.concurrency)
        bare_rates.append(rate)
        twilio_rate = twilio_loop(url, args.twilio_sample)
        service = await measure_service(args, world)
        rate, _ = bare_process(url, args.n, args.concurrency)
        bare_rates.append(rate)
    best = max(bare_rates)
    one = service["processes"][min(service["processes"])]
    print(f"bare aiohttp client ({bare_loop}, one core, hand-encoded form, {args.concurrency} in flight) "
          f"{best:8.0f} msg/s  (better of {bare_rates[0]:.0f} before and {bare_rates[1]:.0f} after)")
    print(f"official twilio client, plain loop {twilio_rate:8.0f} msg/s  (sample of {args.twilio_sample})")
    print(f"service ({service['loops']}), trigger → last accepted, 1 process: {one['rate']:.0f} msg/s "
          f"= {one['rate'] / best:.2f}× bare, {one['rate'] / twilio_rate:.1f}× twilio loop")
    print(f"Redis memory per delivery (record, indexes, counters, provider-id map): "
          f"{one['bytes_per_delivery']:.0f} B")
    for count, r in sorted(service["processes"].items()):
        print(f"{count} process{'es' if count > 1 else '  '}: {r['rate']:8.0f} msg/s = {r['rate'] / best:.2f}× bare; "
              f"{describe_cpu(r['cpu'])}")
    for mode, r in service["fsync"].items():
        print(f"appendfsync {mode:<8}: {r['rate']:8.0f} msg/s = {r['rate'] / best:.2f}× bare; "
              f"{describe_cpu(r['cpu'])}")
    return {"n": args.n, "bare": best, "bare_runs": bare_rates, "bare_loop": bare_loop, "twilio": twilio_rate,
            **service}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="fan-outs per configuration (the median is shown)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3],
                        help="serve alone, then with 1, 2 ... `warning worker` processes")
    parser.add_argument("--fsync", nargs="+", default=["everysec", "always"], choices=["everysec", "always", "no"],
                        help="Redis appendfsync modes to compare (one process)")
    parser.add_argument("--twilio-sample", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="small n, one run: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    parser.add_argument("--bare", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.twilio_sample, args.processes = 300, 1, 30, [1, 2]
    return args


if __name__ == "__main__":
    options = parse()
    if options.bare:
        if hasattr(os, "sched_setaffinity") and CPUS > 1:
            os.sched_setaffinity(0, {0})
        rate, loop = run(bare(options.bare, options.n, options.concurrency))
        print(json.dumps({"rate": rate, "loop": loop}))
    else:
        write_json(options.json, run(main(options)))
