"""Status callbacks ingested per second through the real app on loopback, as a ratio to a parse-only aiohttp handler.

    python bench/callbacks.py [--messages 5000] [--concurrency 128] [--clients 2]

Both servers run in this process on 127.0.0.1, one after the other; the load comes from client
processes posting Twilio-signed form callbacks (two statuses per message) over keep-alive connections.
The real app checks each signature, parses the form and applies the receipt to Redis (a private
redis-server started here); the baseline only parses the form and answers 204.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from warning import keys
from warning.delivery import Delivery, DeliveryState
from warning.delivery_store import Row
from warning.redis_server import PrivateRedis, free_port
from warning.settings import load_settings
from warning.web.app import create_app
from warning.web.keys import Deps, services_key

TOKEN = "bench-twilio-auth-token-0123456789"
WID = "wbench"


def _client(port: int, calls: list[tuple[str, bytes, str]], concurrency: int, out: Any) -> None:
    async def run() -> None:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            queue = list(reversed(calls))
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
            out.put(bad)

    asyncio.run(run())


def load(port: int, calls: list[tuple[str, bytes, str]], clients: int, concurrency: int) -> tuple[float, int]:
    """Post every call from `clients` processes; (seconds, failed answers)."""
    ctx = mp.get_context("fork")
    out: Any = ctx.Queue()
    shares = [calls[i::clients] for i in range(clients)]
    procs = [ctx.Process(target=_client, args=(port, s, concurrency // clients, out)) for s in shares]
    started = time.perf_counter()
    for p in procs:
        p.start()
    bad = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return time.perf_counter() - started, bad


def callbacks(n: int, port: int) -> tuple[list[tuple[str, bytes, str]], list[tuple[str, str]]]:
    """Signed callbacks (sent, delivered) for n messages, and (delivery id, provider sid) pairs."""
    validator = RequestValidator(TOKEN)
    out, pairs = [], []
    for i in range(n):
        did, sid = f"d{i:08d}", f"SM{i:032x}"
        pairs.append((did, sid))
        path = f"/hooks/twilio/status?{urlencode({'c': 'sms', 'd': did})}"
        for status in ("sent", "delivered"):
            form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                    "To": "+8613800000000", "From": "+15005550006", "AccountSid": "AC" + "0" * 32,
                    "ApiVersion": "2010-04-01"}
            sig = validator.compute_signature(f"http://127.0.0.1:{port}{path}", form)
            out.append((path, urlencode(form).encode(), sig))
    return sorted(out, key=lambda c: c[1][-12:]), pairs  # interleave messages, keep each one's order loose


async def seed(app: web.Application, pairs: list[tuple[str, str]]) -> None:
    services = app[services_key]
    rows = [Row(Delivery(id=did, warning_id=WID, version=1, recipient_id=f"c{did}", channel="sms", kind="sms",
                         address="+8613800000000", state=DeliveryState.ACCEPTED, provider_ref=sid),
                region="510722100001", role="village_monitor") for did, sid in pairs]
    for i in range(0, len(rows), 1000):
        await services.deliveries.create_many(WID, rows[i:i + 1000], {})
    async with services.redis.pipeline(transaction=False) as pipe:
        for did, sid in pairs:
            pipe.set(keys.ref_key("sms", sid), f"{WID}:{did}")
        await pipe.execute()


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def bare_handler(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(status=204)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    port = free_port()
    calls, pairs = callbacks(args.messages, port)
    with tempfile.TemporaryDirectory() as tmp:
        redis = PrivateRedis(Path(tmp), port=free_port(), appendonly=False)
        redis.start()
        try:
            settings = load_settings(None, env={}, overrides={
                "server": {"public_url": f"http://127.0.0.1:{port}", "log_format": "text", "log_level": "WARNING"},
                "channels": [{"name": "sms", "kind": "sms", "provider": "twilio", "account_sid": "AC" + "0" * 32,
                              "auth_token": TOKEN, "from": "+15005550006", "api_base": "http://127.0.0.1:9"}]})
            app = create_app(settings, deps=Deps(redis_url=redis.url, extra={"background": False}))
            runner = await serve(app, port)
            await seed(app, pairs)
            real_s, real_bad = await asyncio.to_thread(load, port, calls, args.clients, args.concurrency)
            counts = await app[services_key].deliveries.counts(WID)
            await runner.cleanup()
            bare = web.Application()
            bare.router.add_post("/hooks/twilio/status", bare_handler)
            runner = await serve(bare, port)
            bare_s, bare_bad = await asyncio.to_thread(load, port, calls, args.clients, args.concurrency)
            await runner.cleanup()
        finally:
            redis.stop()
    n = len(calls)
    print(f"callbacks: {n} ({args.messages} messages × sent, delivered), {args.clients} client processes, "
          f"{args.concurrency} connections")
    print(f"app (signature + parse + Redis): {n / real_s:8.0f}/s  ({real_bad} non-2xx)")
    print(f"parse-only aiohttp handler:     {n / bare_s:8.0f}/s  ({bare_bad} non-2xx)")
    print(f"ratio: {bare_s / real_s:.2f}×")
    print(f"delivered counter: {counts.get('delivered', 0)} of {args.messages} (exact: {counts.get('delivered') == args.messages})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--clients", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
