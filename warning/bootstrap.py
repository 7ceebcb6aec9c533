"""Composition root: builds channels from [[channels]] and wires the services; the only core module that
imports concrete adapters (with warning/web/app.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from contacts.directory import ContactDirectory
from warning.audience import reaches_anyone
from warning.audit import AuditLog
from warning.channel import Channel, InboundMessage
from warning.clock import Clock
from warning.delivery_store import DeliveryStore
from warning.dispatcher import Dispatcher, Routes
from warning.due import DueQueue, Handler
from warning.errors import ConfigError
from warning.feeds.service import FeedService, build_feed_service
from warning.issuer import load_issuer
from warning.lifecycle import WarningService
from warning.metrics import Metrics
from warning.places import Places
from warning.policy import Policy, load_policy
from warning.ratelimit import RateLimiter
from warning.reference import EventType, load_event_types
from warning.retention import Retention
from warning.settings import Settings
from warning.targeting import Targeting
from warning.warning_store import WarningStore
from warning.worker import ChannelWorker, RetryRequeue, WorkerConfig

logger = logging.getLogger(__name__)
#: The shortest `[hooks] kannel_secret` accepted (as for API tokens).
MIN_HOOK_SECRET_CHARS = 16


@dataclass
class Services:
    """Everything the web app, the workers and the scheduler share."""

    settings: Settings
    clock: Clock
    redis: aioredis.Redis
    directory: ContactDirectory
    audit: AuditLog
    warnings: WarningStore
    deliveries: DeliveryStore
    policy: Policy
    event_types: Mapping[str, EventType]
    dispatcher: Dispatcher
    lifecycle: WarningService
    due: DueQueue
    limiter: RateLimiter
    channels: dict[str, Channel] = field(default_factory=dict)
    channel_configs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    workers: list[ChannelWorker] = field(default_factory=list)
    messages: Any = None
    metrics: Metrics = field(default_factory=Metrics)
    #: receipts, acknowledgments, replies and escalation (叫应); set by build_services
    receipts: Any = None
    ledger: Any = None
    replies: Any = None
    escalation: Any = None
    duty: Any = None
    #: polled CAP feeds and gauges (warning/feeds/)
    feeds: FeedService | None = None
    #: registry checks (汛前核查): warning.registry_check.RegistryChecks; None without a Redis registry
    checks: Any = None


def channel_tables(settings: Settings) -> list[Mapping[str, Any]]:
    """The [[channels]] entries, checked for the keys every channel has."""
    raw = settings.raw.get("channels", [])
    source = settings.sources[-1]
    if not isinstance(raw, list):
        raise ConfigError(source, "channels", "expected [[channels]] tables")
    seen: set[str] = set()
    for i, table in enumerate(raw):
        key = f"channels[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(source, key, "expected a table")
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(source, f"{key}.name", "missing")
        if name in seen:
            raise ConfigError(source, f"{key}.name", f"channel {name!r} is defined twice")
        seen.add(name)
        if table.get("kind") not in ("sms", "voice", "escreen", "broadcast"):
            raise ConfigError(source, f"{key}.kind", "must be sms, voice, escreen or broadcast")
    for i, table in enumerate(raw):
        fo = table.get("failover")
        if fo is not None and fo not in seen:
            raise ConfigError(source, f"channels[{i}].failover", f"no channel named {fo!r}")
    return raw


def routes_from(tables: list[Mapping[str, Any]]) -> Routes:
    """The first channel of each kind carries it; failover targets take over only when it stays down."""
    by_kind: dict[str, str] = {}
    targets = {t.get("failover") for t in tables}
    for t in tables:
        if t["name"] not in targets:
            by_kind.setdefault(str(t["kind"]), str(t["name"]))
    for t in tables:
        by_kind.setdefault(str(t["kind"]), str(t["name"]))
    return Routes(by_kind)


def build_services(settings: Settings, *, redis: aioredis.Redis, clock: Clock, directory: ContactDirectory,
                   channels: Mapping[str, Channel] | None = None, http: aiohttp.ClientSession | None = None,
                   names: Mapping[str, str] | None = None) -> Services:
    """Wire the core; channels come from [[channels]] unless given (tests); `names` are the region tree's
    division names when the caller has already read it (else it is read from `[registry] regions_csv`)."""
    roles = settings.section("roles")
    policy = load_policy(settings.section("policy"), roles=set(roles), source=settings.sources[-1],
                         feeds=settings.raw.get("feeds", []))
    event_types = load_event_types(settings.section("event_types"))
    retention = Retention(redis, days=settings.retention.days, clock=clock)
    audit = AuditLog(redis, clock=clock, retention=retention)
    warnings = WarningStore(redis, audit, retention)
    deliveries = DeliveryStore(redis, retention=retention)
    tables = channel_tables(settings)
    built = dict(channels) if channels is not None else build_channels(settings, tables, http=http, clock=clock)
    issuer = settings.section("issuer")
    names = region_names(settings) if names is None else names
    places = Places(names, home=str(issuer.get("code", "")))
    targeting = Targeting(directory, scope=[str(issuer.get("code", ""))] if issuer.get("code") else [])
    dispatcher = Dispatcher(redis=redis, store=deliveries, targeting=targeting, policy=policy,
                            routes=routes_from(tables) if channels is None else Routes(_kinds_of(built)),
                            audit=audit, clock=clock)
    lifecycle = WarningService(store=warnings, audit=audit, policy=policy, event_types=event_types, roles=roles,
                               issuer=issuer, dispatch=dispatcher, clock=clock, places=places,
                               reaches=lambda record: reaches_anyone(targeting, policy, record))
    from warning.messages import MessageFactory

    services = Services(settings=settings, clock=clock, redis=redis, directory=directory, audit=audit,
                        warnings=warnings, deliveries=deliveries, policy=policy, event_types=event_types,
                        dispatcher=dispatcher, lifecycle=lifecycle, due=DueQueue(redis, clock=clock),
                        limiter=RateLimiter(redis, clock=clock), channels=dict(built),
                        channel_configs={str(t["name"]): t for t in tables},
                        messages=MessageFactory(settings, event_types=event_types, policy=policy, places=places))
    wire_followup(services, names)
    services.feeds = build_feed_service(settings, services)
    return services


def wire_followup(services: Services, names: Mapping[str, str]) -> None:
    """Receipts, acknowledgments, replies and escalation on top of the dispatcher (issue 5)."""
    from contacts.duty import DutyRoster
    from warning.acks import AckLedger, ReplyService
    from warning.escalation import Escalation, Planner
    from warning.receipts import ReceiptService

    s = services
    planner = Planner(store=s.deliveries, dispatcher=s.dispatcher, clock=s.clock)
    s.ledger = AckLedger(redis=s.redis, store=s.deliveries, clock=s.clock)
    s.duty = DutyRoster(s.redis)
    s.receipts = ReceiptService(redis=s.redis, store=s.deliveries, warnings=s.warnings, ledger=s.ledger,
                                planner=planner, due=s.due, directory=s.directory, policy=s.policy, clock=s.clock)
    s.replies = ReplyService(redis=s.redis, directory=s.directory, warnings=s.warnings, ledger=s.ledger,
                             audit=s.audit, clock=s.clock,
                             default_region=str(s.settings.section("registry").get("default_phone_region", "CN")))
    s.escalation = Escalation(redis=s.redis, store=s.deliveries, warnings=s.warnings, directory=s.directory,
                              policy=s.policy, planner=planner, ledger=s.ledger, due=s.due, duty=s.duty,
                              audit=s.audit, clock=s.clock, issuer=s.settings.section("issuer"),
                              region_names=names, messages=s.messages)
    s.dispatcher.on_issued = s.escalation.start
    wire_checks(s, planner, names)


def wire_checks(services: Services, planner: Any, names: Mapping[str, str]) -> None:
    """Registry checks (汛前核查) on the registry: replies may confirm them, sends that fail for good flag numbers."""
    from contacts.store import RedisRegistry
    from warning.registry_check import CheckSettings, RegistryChecks

    s = services
    settings = CheckSettings.from_settings(s.settings)
    if not isinstance(s.directory, RedisRegistry):
        return
    s.checks = RegistryChecks(redis=s.redis, store=s.deliveries, registry=s.directory, planner=planner,
                              dispatcher=s.dispatcher, due=s.due, ledger=s.ledger, audit=s.audit,
                              retention=s.warnings.retention, policy=s.policy, clock=s.clock, settings=settings,
                              issuer=s.settings.section("issuer"), region_names=names)
    s.replies.check_hook = s.checks.claim_reply
    s.receipts.on_failed = s.checks.note_failures


def region_names(settings: Settings) -> dict[str, str]:
    """Division code → name from the region tree (`[registry] regions_csv`), for notices people read."""
    from contacts.regions import RegionTree, RegionTreeError

    path = str(settings.section("registry").get("regions_csv", "") or "")
    if not path:
        return {}
    try:
        return {r.code: r.name for r in RegionTree.from_csv(path)}
    except RegionTreeError as exc:
        raise ConfigError(settings.sources[-1], "registry.regions_csv", str(exc)) from None


def _kinds_of(channels: Mapping[str, Channel]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, ch in channels.items():
        out.setdefault(ch.capabilities.kind.value, name)
    return out


def build_channels(settings: Settings, tables: list[Mapping[str, Any]], *, http: aiohttp.ClientSession | None,
                   clock: Clock) -> dict[str, Channel]:
    """Instantiate every configured channel through the explicit provider registry."""
    from channels import build_channel

    public_url = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    out: dict[str, Channel] = {}
    hook_secret = kannel_hook_secret(settings, tables)
    allow_loopback = devices_allow_loopback(settings)
    for i, table in enumerate(tables):
        if table.get("provider") == "kannel" and "callback_secret" not in table:
            # the DLR hook checks [hooks] kannel_secret: the channel must put the same secret in its dlr-url
            table = {**table, "callback_secret": hook_secret}
        name = str(table["name"])
        try:
            out[name] = build_channel(name, table, http=http, clock=clock, public_url=public_url,
                                      allow_loopback=allow_loopback)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            # adapters say "channels.<name>.<key>: reason"; the file calls that key channels[i].<key>
            key, sep, reason = str(exc).partition(": ")
            if sep and key.startswith(f"channels.{name}."):
                raise ConfigError(settings.sources[-1], f"channels[{i}].{key.removeprefix(f'channels.{name}.')}",
                                  reason) from None
            raise ConfigError(settings.sources[-1], f"channels[{i}]", str(exc)) from None
    return out


def check_channel_config(settings: Settings) -> None:
    """What of the channels' configuration can be checked before anything starts: [[channels]], the Kannel hook
    secret, [devices], and how messages are signed and CAP written ([issuer], [cap]). (Each adapter checks its
    own keys when it is built.)"""
    load_issuer(settings)
    tables = channel_tables(settings)
    kannel_hook_secret(settings, tables)
    devices_allow_loopback(settings)


def devices_allow_loopback(settings: Settings) -> bool:
    """`[devices] allow_loopback`: whether device addresses may be on this machine or a link-local network."""
    value = settings.section("devices").get("allow_loopback", False)
    if not isinstance(value, bool):
        raise ConfigError(settings.sources[-1], "devices.allow_loopback", f"expected true or false, got {value!r}")
    return value


def kannel_hook_secret(settings: Settings, tables: list[Mapping[str, Any]]) -> str:
    """`[hooks] kannel_secret`, checked: Kannel has no signatures, so this secret in its callback URLs is all that
    keeps strangers from posting receipts and replies. A kannel channel without one does not start."""
    secret = settings.section("hooks").get("kannel_secret", "") or ""
    secret = secret if isinstance(secret, str) else ""
    kannel = [str(t["name"]) for t in tables if t.get("provider") == "kannel"]
    needed = bool(kannel) or bool(settings.section("hooks").get("kannel_secret"))
    if needed and len(secret.strip()) < MIN_HOOK_SECRET_CHARS:
        why = f"the kannel channel {kannel[0]!r} needs it" if kannel else "too short, or not a string"
        raise ConfigError(settings.sources[-1], "hooks.kannel_secret",
                          f"{why}: at least {MIN_HOOK_SECRET_CHARS} characters, the secret Kannel puts in its "
                          "delivery-report and reply URLs (k=); set it with WARNING_HOOKS_KANNEL_SECRET")
    return secret


def make_workers(services: Services, *, consumer: str | None = None) -> list[ChannelWorker]:
    """One worker per channel instance (more processes add more consumers to the same groups)."""
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    dispatch = services.settings.section("dispatch")
    workers = []
    for name, channel in services.channels.items():
        cfg = services.channel_configs.get(name, {})
        caps = channel.capabilities
        rate = float(cfg.get("rate_per_s", caps.max_per_s))
        workers.append(ChannelWorker(
            redis=services.redis, channel=channel, store=services.deliveries, warnings=services.warnings,
            messages=services.messages, limiter=services.limiter, due=services.due, clock=services.clock,
            consumer=consumer,
            config=WorkerConfig(account=str(cfg.get("account", name)), max_per_s=rate,
                                batch=int(cfg.get("batch", dispatch.get("batch", 200))),
                                concurrency=int(cfg.get("concurrency", dispatch.get("concurrency", 64))),
                                max_attempts=int(cfg.get("max_attempts", dispatch.get("max_attempts", 6))),
                                failover=cfg.get("failover"), failover_after=int(cfg.get("failover_after", 3)),
                                lease_ms=int(dispatch.get("lease_ms", 30_000)),
                                block_ms=int(dispatch.get("block_ms", 500)),
                                reclaim_every_s=float(dispatch.get("reclaim_every_s", 5.0))),
            on_drained=_drained(services), on_accepted=_accepted(services), metrics=services.metrics,
            provider=str(cfg.get("provider", "")),
            on_failed=services.checks.note_failures if services.checks is not None else None,
        ))
    services.workers = workers
    return workers


def _accepted(services: Services) -> Any:
    async def accepted(warning_id: str, rows: list[Any]) -> None:
        await services.receipts.release_held(warning_id, rows)
        await services.lifecycle.reach_late(warning_id, rows)

    return accepted


def _drained(services: Services) -> Any:
    async def check(warning_id: str, version: int) -> None:
        counts = await services.deliveries.counts(warning_id)
        if counts.get("queued", 0) <= 0:
            await services.lifecycle.mark_active(warning_id, version)

    return check


async def due_loop(services: Services, *, idle_s: float = 1.0, handlers: Mapping[str, Handler] | None = None) -> None:
    """Fire due timers (retries, escalation steps), and those a stopped process had taken and not finished."""
    handlers = due_handlers(services) if handlers is None else handlers
    while not cancelling():
        try:
            fired = await services.due.drain(handlers)
            if not fired and not cancelling():
                nxt = await services.due.next_due()
                if not cancelling():
                    await services.clock.sleep(min(idle_s, nxt) if nxt is not None else idle_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("due loop failed; going on")
            await services.clock.sleep(idle_s)


def simulator_pumps(services: Services) -> list[Coroutine[Any, Any, None]]:
    """For each simulated channel, a loop feeding its receipts and replies to the real webhooks' services."""
    from channels.simulator import SimulatorChannel

    async def pump(channel: SimulatorChannel) -> None:
        async for event in channel.events():
            if cancelling():
                return
            try:
                if isinstance(event, InboundMessage):
                    await services.replies.handle(event)
                else:
                    await services.receipts.submit(event)
            except Exception:  # one bad event must not stop the demo's receipts
                logger.exception("simulated %s event dropped", channel.name)

    return [pump(ch) for ch in services.channels.values() if isinstance(ch, SimulatorChannel)]


def cancelling() -> bool:
    """True once this task was asked to stop: some clients swallow a CancelledError that lands inside them,
    so loops check this too, or shutdown would wait for them forever."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def due_handlers(services: Services) -> dict[str, Any]:
    """The due queue's handler of each timer kind; each makes its step happen once, however often it fires."""
    handlers = {"retry": RetryRequeue(services.redis), "esc": services.escalation.fire}
    if services.checks is not None:
        from warning.registry_check import TIMER

        handlers[TIMER] = services.checks.close
    return handlers
