"""Answer and first-message benchmark: how soon `POST /api/v1/warnings` answers for a county of N contacts, and how
soon the first SMS of it reaches the provider, alone and while another fan-out of the whole county runs.

    python bench/answer.py [--n 100000] [--runs 5] [--reference-requests 300] [--quick]

Measured in the same run, on the same machine:
  reference  the least any service can do: an aiohttp handler on uvloop (its own process) that stores the posted
             body in Redis (one SET, hiredis) and answers 201 — its answer time, p50/p99 over many requests; and,
             asked to, also sends one message to the gateway before answering — trigger → first provider request
  service    `warning serve` (uvloop) on a private Redis with AOF, one Twilio SMS channel on the loopback gateway:
             after an untimed warm-up, a yellow warning for the whole county drafted through the API, `runs`
             times alone (each fan-out finished before the next) and `runs` times while a blue warning for the
             same county is being sent, the two in alternating order
Prints p50 and p99 (with fewer than 100 runs the p99 is about the worst run) and each as a multiple of the
reference: lower is better, 1× would be the reference's own speed. The first provider request is timed by the
gateway when a message holding the warning's marker arrives (time.monotonic, shared by every process).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from lab import (
    FROM,
    ISSUER,
    SID,
    TOKEN,
    Service,
    World,
    percentiles,
    run,
    stop_process,
    this_loop,
    wait_port,
    write_json,
)

from warning.eventloop import new_event_loop
from warning.redis_server import free_port

DRAFT = {"event": "gale", "level": "yellow", "headline": "大风黄色预警", "areas": ["510722"],
         "instruction": "请注意防范。"}
WARMUP = 30


def reference_server(port: int, redis_url: str, gateway: str) -> None:
    """The reference handler: one Redis SET of the posted body, and with ?send=MARKER one message to the gateway."""
    counter = itertools.count(1)
    endpoint = f"{gateway}/2010-04-01/Accounts/{SID}/Messages.json"
    headers = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode(),
               "Content-Type": "application/x-www-form-urlencoded"}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        n = next(counter)
        await request.app[REDIS].set(f"ref:{n}", body)
        marker = request.query.get("send")
        if marker:
            form = urlencode({"To": "+8613800000001", "From": FROM, "Body": f"【三台县应急管理局】{marker}"})
            async with request.app[HTTP].post(endpoint, data=form.encode(), headers=headers) as resp:
                await resp.read()
        return web.json_response({"id": f"ref{n}"}, status=201)

    async def clients(app: web.Application) -> Any:
        app[REDIS] = aioredis.Redis.from_url(redis_url)
        app[HTTP] = aiohttp.ClientSession()
        print(f"reference event loop: {this_loop()}", flush=True)
        yield
        await app[HTTP].close()
        await app[REDIS].aclose()

    app = web.Application()
    app.router.add_post("/warnings", handle)
    app.cleanup_ctx.append(clients)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop())


REDIS = web.AppKey("redis", aioredis.Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)


async def timed_post(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                     headers: dict[str, str]) -> tuple[float, float]:
    """(monotonic time sent, seconds to the whole answer)."""
    sent = time.monotonic()
    async with http.post(url, json=body, headers=headers) as resp:
        await resp.read()
        if resp.status != 201:
            raise RuntimeError(f"reference answered {resp.status}")
    return sent, time.monotonic() - sent


async def first_seen(world: World, http: aiohttp.ClientSession, marker: str, timeout_s: float = 600) -> float:
    assert world.gateway is not None
    deadline = time.monotonic() + timeout_s
    while True:
        first = (await world.gateway.stats(http))["first"]
        if marker in first:
            return float(first[marker])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no message with {marker} reached the gateway")
        await asyncio.sleep(0.005)


def start_reference(port: int, redis_url: str, gateway: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--reference-server", str(port), redis_url, gateway],
                            stdout=subprocess.PIPE)


async def reference(world: World, requests: int) -> dict[str, Any]:
    assert world.gateway is not None
    port = free_port()
    proc = start_reference(port, world.redis_url, world.gateway.url)
    try:
        wait_port(port, proc, "the reference handler")
        assert proc.stdout is not None
        loop = proc.stdout.readline().decode().strip().rpartition(": ")[2]
        url = f"http://127.0.0.1:{port}/warnings"
        headers = {"Authorization": f"Bearer {ISSUER}"}
        async with aiohttp.ClientSession() as http:
            for _ in range(WARMUP):
                await timed_post(http, url, DRAFT, headers)
            answers = [(await timed_post(http, url, DRAFT, headers))[1] for _ in range(requests)]
            firsts = []
            for i in range(max(5, requests // 5)):
                marker = f"REF{i:04d}X"
                await world.gateway.watch(http, marker)
                sent, _ = await timed_post(http, f"{url}?send={marker}", DRAFT, headers)
                firsts.append(await first_seen(world, http, marker) - sent)
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    return {"loop": loop, "answer": percentiles(answers), "first": percentiles(firsts)}


async def one_warning(world: World, service: Service, http: aiohttp.ClientSession, tag: str) -> tuple[float, float]:
    """A yellow warning for the county: (seconds to the answer, seconds to the first provider request)."""
    assert world.gateway is not None
    await world.gateway.watch(http, tag)
    wid, sent, answer_s = await service.draft(http, "yellow", tag, event="gale")
    first_s = await first_seen(world, http, tag) - sent
    await service.wait_done(http, wid, world.n)
    return answer_s, first_s


async def under_load(world: World, service: Service, http: aiohttp.ClientSession, tag: str) -> tuple[float, float]:
    """The same, drafted once a blue warning for the whole county is being sent."""
    assert world.gateway is not None
    start = (await world.gateway.stats(http))["count"]
    threshold = max(1, min(1000, world.n // 10))
    blue = asyncio.create_task(service.draft(http, "blue", "G" + tag[1:]))  # a marker that does not hold `tag`
    while (await world.gateway.stats(http))["count"] - start < threshold:
        await asyncio.sleep(0.005)
    answer_s, first_s = await one_warning(world, service, http, tag)
    wid, _, _ = await blue
    await service.wait_done(http, wid, world.n)
    return answer_s, first_s


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with World(args.n, appendonly=True) as world:
        ref = await reference(world, args.reference_requests)
        service = world.service("service")
        series: dict[str, list[tuple[float, float]]] = {"alone": [], "under load": []}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
                await service.warm_up(http)
                for i in range(args.runs):  # alone and under load in alternating order, so both share slow moments
                    for label in ("alone", "under load") if i % 2 == 0 else ("under load", "alone"):
                        tag = f"{label[0].upper()}{i:03d}{time.time_ns() % 10**6}Z"
                        measure = one_warning if label == "alone" else under_load
                        series[label].append(await measure(world, service, http, tag))
                        print(f"  {label} run {i + 1}: answer {series[label][-1][0] * 1000:.0f} ms, first request "
                              f"{series[label][-1][1] * 1000:.0f} ms", flush=True)
            loops = service.loops()
        finally:
            service.stop()
    out: dict[str, Any] = {"n": args.n, "runs": args.runs, "reference": ref, "service_loop": loops}
    ra, rf = ref["answer"], ref["first"]
    print(f"reference ({ref['loop']}, one Redis SET): answer p50 {ra[0] * 1000:.2f} ms, p99 {ra[1] * 1000:.2f} ms; "
          f"with one message to the gateway, trigger → first request p50 {rf[0] * 1000:.2f} ms, "
          f"p99 {rf[1] * 1000:.2f} ms")
    for label, samples in series.items():
        answer = percentiles([a for a, _ in samples])
        first = percentiles([f for _, f in samples])
        out[label] = {"answer": answer, "first": first}
        print(f"service ({loops}), {args.n} contacts, {label}, {args.runs} runs: "
              f"POST /api/v1/warnings answer p50 {answer[0] * 1000:.0f} ms ({answer[0] / ra[0]:.0f}× reference), "
              f"p99 {answer[1] * 1000:.0f} ms ({answer[1] / ra[1]:.0f}×); trigger → first provider request "
              f"p50 {first[0] * 1000:.0f} ms ({first[0] / rf[0]:.0f}×), p99 {first[1] * 1000:.0f} ms "
              f"({first[1] / rf[1]:.0f}×)")
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="warnings timed alone, and as many under load")
    parser.add_argument("--reference-requests", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="small n, one run: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    parser.add_argument("--reference-server", nargs=3, metavar=("PORT", "REDIS", "GATEWAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.reference_requests = 300, 1, 20
    return args


if __name__ == "__main__":
    options = parse()
    if options.reference_server:
        port, redis_url, gateway = options.reference_server
        reference_server(int(port), redis_url, gateway)
    else:
        write_json(options.json, run(main(options)))
