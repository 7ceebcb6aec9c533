"""`warning worker`: dispatch workers only, against the shared Redis (scale-out on other machines)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

import aiohttp
import redis.asyncio as aioredis

from contacts.store import RedisRegistry
from warning.errors import ConfigError
from warning.eventloop import loop_name, new_event_loop

logger = logging.getLogger(__name__)


async def run_workers(args: argparse.Namespace) -> int:
    """Run one worker per configured channel, plus the due-timer loop, until SIGTERM or SIGINT."""
    from warning.bootstrap import build_services, check_channel_config, due_loop, make_workers
    from warning.cli import command_store, settings_from_args
    from warning.clock import SystemClock
    from warning.logs import register_secret, setup_logging

    settings = settings_from_args(args, demo_when_unconfigured=False)
    setup_logging(settings.server.log_format, settings.server.log_level)
    for token in settings.tokens:
        register_secret(token.token)
    check_channel_config(settings)
    redis = aioredis.Redis.from_url(command_store(settings), decode_responses=True)
    clock = SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15, connect=5),
                                     connector=aiohttp.TCPConnector(limit=200)) as http:
        services = build_services(settings, redis=redis, clock=clock, directory=RedisRegistry(redis), http=http)
        workers = make_workers(services, consumer=args.name)
        if not workers:
            raise ConfigError(settings.sources[-1], "channels", "no [[channels]] configured: nothing to work on")
        tasks = []
        lanes = max(1, int(settings.section("dispatch").get("lanes", 2)))
        for w in workers:
            await w.ensure_groups()
            tasks += [asyncio.create_task(w.run(), name=f"worker:{w.channel.name}:{i}") for i in range(lanes)]
        tasks.append(asyncio.create_task(due_loop(services), name="due"))
        print(f"worker {workers[0].consumer}: {', '.join(w.channel.name for w in workers)} "
              f"(event loop: {loop_name()})", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for ch in services.channels.values():
            await ch.aclose()
    await redis.aclose()
    return 0


def _worker(args: argparse.Namespace) -> int:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(run_workers(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from warning.cli import add_config_arg

    p = sub.add_parser("worker", help="dispatch workers only, against the shared Redis")
    add_config_arg(p)
    p.add_argument("--name", default=None, help="consumer name (default: host-pid)")
    p.set_defaults(func=_worker)
