"""River and rain gauges: readings stored per station, each watched site checked against its thresholds, a warning
drafted by the feed when one is crossed (raised when a higher one is), and a cancellation proposed to a person when
the readings stay below for `clear_after_s` (never cancelled by itself)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis

from contacts.model import MAX_RAIN_WINDOW_S, HazardSite
from warning import keys
from warning.audit import AuditLog
from warning.clock import Clock
from warning.errors import Conflict, Forbidden, NotFound
from warning.feeds.config import THRESHOLD_EVENT, FeedConfig
from warning.feeds.crossing import (
    INSTRUCTION,
    Crossing,
    Decision,
    SiteState,
    crossings,
    decide,
    sentence,
    top,
    when_zh,
)
from warning.feeds.health import FeedHealth
from warning.feeds.readings import Reading, parse_readings
from warning.lifecycle import Actor, Unfinished, WarningService
from warning.record import WarningRecord
from warning.reference import EventType
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
#: readings read back to judge a site: the longest rainfall window and the trend's hour
LOOKBACK_S = MAX_RAIN_WINDOW_S + 3600
# Add a reading unless the station already has one at that time; trim what is older than the retention.
# KEYS[1] the series; ARGV: time (epoch s), reading (JSON), oldest time kept, expiry (s). Returns 1 when added.
_ADD_READING = """
local added = 0
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  added = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return added
"""


class GaugeRegistry(Protocol):
    """What the gauges need of the registry."""

    async def sites_of_station(self, station: str) -> list[HazardSite]: ...

    async def site(self, sid: str) -> HazardSite | None: ...


class GaugeStore:
    """Readings per station and what is remembered of each watched site, in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis: Any = redis
        self._add = redis.register_script(_ADD_READING)

    async def add(self, reading: Reading, *, now: datetime, retention_s: float) -> bool:
        """Store a reading (a second one at the same time is ignored); whether it was new."""
        oldest = now.timestamp() - retention_s
        if reading.time.timestamp() < oldest:
            return False
        return bool(await self._add(keys=[keys.gauge_series_key(reading.station)],
                                    args=[repr(reading.time.timestamp()), json.dumps(reading.to_json()),
                                          repr(oldest), int(retention_s)]))

    async def series(self, station: str, *, since: datetime, until: datetime | None = None) -> list[Reading]:
        """The station's readings from `since`, oldest first."""
        rows = await self.redis.zrangebyscore(keys.gauge_series_key(station), since.timestamp(),
                                              until.timestamp() if until else "+inf")
        return [Reading.from_json(station, json.loads(r)) for r in rows]

    async def state(self, site_id: str) -> SiteState | None:
        h = await self.redis.hgetall(keys.gauge_site_key(site_id))
        return SiteState.from_hash(h) if h else None

    async def put_state(self, site_id: str, state: SiteState | None, *, note: str = "") -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.gauge_site_key(site_id))
            if state is None:
                pipe.srem(keys.GAUGE_OPEN, site_id)
                pipe.zrem(keys.GAUGE_PROPOSALS, site_id)
            else:
                pipe.hset(keys.gauge_site_key(site_id), mapping={**state.to_hash(), "note": note})
                pipe.sadd(keys.GAUGE_OPEN, site_id)
                if state.proposed_at is not None:
                    pipe.zadd(keys.GAUGE_PROPOSALS, {site_id: state.proposed_at})
                else:
                    pipe.zrem(keys.GAUGE_PROPOSALS, site_id)
            await pipe.execute()

    async def note(self, site_id: str) -> str:
        return str(await self.redis.hget(keys.gauge_site_key(site_id), "note") or "")

    async def open_sites(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.GAUGE_OPEN))

    async def proposals(self) -> list[tuple[str, float]]:
        return [(sid, float(at)) for sid, at in await self.redis.zrange(keys.GAUGE_PROPOSALS, 0, -1, withscores=True)]


@dataclass(frozen=True, slots=True)
class Judged:
    """What was made of one site in one poll."""

    site_id: str
    action: str
    warning_id: str = ""
    state: str = ""


class GaugeFeed:
    """An observations feed: takes a document of readings, stores the new ones, judges every site they concern."""

    def __init__(self, config: FeedConfig, *, store: GaugeStore, registry: GaugeRegistry, lifecycle: WarningService,
                 warnings: WarningStore, audit: AuditLog, health: FeedHealth, event_types: dict[str, EventType],
                 clock: Clock) -> None:
        assert config.gauge is not None
        self.config, self.rules = config, config.gauge
        self.store, self.registry, self.lifecycle, self.warnings = store, registry, lifecycle, warnings
        self.audit, self.health, self.event_types, self.clock = audit, health, event_types, clock
        self.actor = Actor(name=config.name, role="feed")

    async def handle(self, body: bytes) -> list[Judged]:
        """Store the document's new readings, then judge the sites of their stations and every site with an open
        crossing of this feed."""
        readings, problems = parse_readings(body)
        name, now = self.config.name, self.clock.now()
        for row, reason in problems:
            await self.health.skipped(name, row, f"invalid reading: {reason}")
        stations: dict[str, list[HazardSite]] = {}
        new = unknown = 0
        for reading in sorted(readings, key=lambda r: r.time):
            if reading.station not in stations:
                stations[reading.station] = await self.registry.sites_of_station(reading.station)
            if not stations[reading.station]:
                unknown += 1
                continue
            if await self.store.add(reading, now=now, retention_s=self.rules.retention_s):
                new += 1
                await self.health.newest(name, reading.time)
        if unknown:
            await self.health.skipped(name, f"{unknown} readings", f"unknown station: {unknown} readings of stations "
                                                                   "no hazard site watches", n=unknown)
        if new:
            await self.health.count(name, "seen", new)
            await self.health.heard(name)
        sites = {s.id: s for group in stations.values() for s in group}
        return await self._judge_all(sites)

    async def recheck(self) -> list[Judged]:
        """Judge again the sites with an open crossing of this feed (no new document: time still moves on)."""
        return await self._judge_all({})

    async def _judge_all(self, sites: dict[str, HazardSite]) -> list[Judged]:
        for sid in await self.store.open_sites():
            if sid not in sites and (state := await self.store.state(sid)) is not None and state.feed == self.config.name:
                site = await self.registry.site(sid)
                if site is not None:
                    sites[sid] = site
                else:
                    await self.store.put_state(sid, None)  # the site was removed from the registry
        return [await self.judge(site) for site in sites.values() if site.thresholds is not None]

    async def judge(self, site: HazardSite) -> Judged:
        """Check one site's latest readings against its thresholds and act on the site's warning."""
        assert site.thresholds is not None
        now = self.clock.now()
        series = await self.store.series(site.station, since=now - timedelta(seconds=LOOKBACK_S))
        if series and series[-1].time < now - timedelta(seconds=self.config.stale_after_s):
            series = []  # old readings say nothing about now: never draft (nor clear) on them
        found = crossings(site.thresholds, series, self.rules.levels) if series else []
        crossing = top(found)
        state = await self.store.state(site.id)
        if not series and state is None:
            return Judged(site.id, "none")
        record = await self.warnings.get(state.warning_id) if state and state.warning_id else None
        is_open = record is not None and not record.closed
        if not series:  # no recent readings: keep everything as it is
            return Judged(site.id, "none", state.warning_id if state else "")
        decision = decide(state, crossing, warning_open=is_open, now=now.timestamp(),
                          clear_after_s=self.rules.clear_after_s)
        return await self._act(site, decision, state, crossing, found, series)

    async def _act(self, site: HazardSite, decision: Decision, before: SiteState | None, crossing: Crossing | None,
                   found: Sequence[Crossing], series: Sequence[Reading]) -> Judged:
        action = decision.action
        if action == "draft":
            assert crossing is not None
            made = await self._draft(site, crossing, found, series)
            state = SiteState(feed=self.config.name, warning_id=made.id, rank=crossing.level.rank)
            await self.store.put_state(site.id, state)
            await self.health.count(self.config.name, "held" if made.state.value == "pending_approval" else "issued")
            logger.warning("gauge %s: %s crossed at site %s; warning %s %s", site.station, crossing.threshold,
                           site.id, made.id, made.state.value)
            return Judged(site.id, "draft", made.id, made.state.value)
        if action == "raise":
            assert crossing is not None and before is not None
            made = await self._raise(site, before.warning_id, crossing, found, series)
            await self.store.put_state(site.id, decision.state)
            await self.health.count(self.config.name, "held" if made.state.value == "pending_approval" else "issued")
            return Judged(site.id, "raise", made.id, made.state.value)
        if action == "propose":
            assert decision.state is not None
            note = self._clear_note(site, series)
            await self.store.put_state(site.id, decision.state, note=note)
            await self.audit.record(decision.state.warning_id, "cancel_proposed", f"feed:{self.config.name}",
                                    site=site.id, note=note)
            logger.info("gauge %s: readings below for %ss at site %s; cancellation of %s proposed", site.station,
                        self.rules.clear_after_s, site.id, decision.state.warning_id)
            return Judged(site.id, "propose", decision.state.warning_id)
        if decision.state != before:
            await self.store.put_state(site.id, decision.state,
                                       note=await self.store.note(site.id) if action == "none" else "")
        return Judged(site.id, action, before.warning_id if before else "")

    def _body(self, site: HazardSite, crossing: Crossing, found: Sequence[Crossing], series: Sequence[Reading]
              ) -> dict[str, Any]:
        event = self.event_types[THRESHOLD_EVENT[crossing.threshold]]
        description = "；".join(sentence(site.name, c, [r for r in series if r.time <= (c.at or r.time)])
                               for c in sorted(found, key=lambda c: -c.level.rank)) + "。"
        return {"event": event.key, "level": crossing.level.value,
                "headline": f"{site.name}{event.name_zh}{crossing.level.zh}预警",
                "description": description, "instruction": INSTRUCTION[crossing.threshold],
                "areas": list(site.downstream), "sites": [site.id]}

    async def _draft(self, site: HazardSite, crossing: Crossing, found: Sequence[Crossing],
                     series: Sequence[Reading]) -> WarningRecord:
        try:
            return await self.lifecycle.draft(self._body(site, crossing, found, series), self.actor)
        except Unfinished as exc:
            return exc.record

    async def _raise(self, site: HazardSite, warning_id: str, crossing: Crossing, found: Sequence[Crossing],
                     series: Sequence[Reading]) -> WarningRecord:
        try:
            return await self.lifecycle.update(warning_id, self._body(site, crossing, found, series), self.actor)
        except Unfinished as exc:
            return exc.record

    def _clear_note(self, site: HazardSite, series: Sequence[Reading]) -> str:
        last = series[-1]
        level = f"最新水位{last.water_level_m:.2f}米，" if last.water_level_m is not None else ""
        after = self.rules.clear_after_s
        span = f"{after / 3600:g}小时" if after >= 3600 else f"{after / 60:g}分钟"
        return f"{site.name}读数已回落至各项预警指标以下超过{span}（{level}{when_zh(last.time)}），建议解除预警"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A cancellation a gauge proposes: which site and warning, since when, and why."""

    site_id: str
    site_name: str
    warning_id: str
    proposed_at: datetime
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site_id, "site_name": self.site_name, "warning": self.warning_id,
                "proposed_at": self.proposed_at.isoformat(), "note": self.note}


class Proposals:
    """Cancellations proposed by gauges, confirmed (the normal cancel, by a person) or dismissed."""

    def __init__(self, *, store: GaugeStore, registry: GaugeRegistry, lifecycle: WarningService, audit: AuditLog,
                 clock: Clock) -> None:
        self.store, self.registry, self.lifecycle, self.audit, self.clock = store, registry, lifecycle, audit, clock

    async def list(self) -> list[Proposal]:
        out = []
        for sid, at in await self.store.proposals():
            state = await self.store.state(sid)
            site = await self.registry.site(sid)
            if state is None or not state.warning_id:
                continue
            out.append(Proposal(sid, site.name if site else sid, state.warning_id,
                                datetime.fromtimestamp(at, self.clock.now().tzinfo), await self.store.note(sid)))
        return out

    async def _pending(self, site_id: str) -> SiteState:
        state = await self.store.state(site_id)
        if state is None or state.proposed_at is None:
            raise NotFound("没有待确认的解除建议 no cancellation proposed for this site", site_id)
        return state

    async def confirm(self, site_id: str, actor: Actor) -> WarningRecord:
        """A person confirms: the warning is cancelled as any cancellation is, and the site forgotten."""
        if actor.role not in ("issuer", "admin"):
            raise Forbidden("forbidden", f"role {actor.role!r} may not cancel a warning")
        state = await self._pending(site_id)
        note = await self.store.note(site_id)
        try:
            record = await self.lifecycle.cancel(state.warning_id, actor, reason=note)
        except Conflict:
            await self.store.put_state(site_id, None)  # closed meanwhile: nothing left to propose
            raise
        except Unfinished as exc:
            record = exc.record
        await self.store.put_state(site_id, None)
        return record

    async def dismiss(self, site_id: str, actor: Actor) -> None:
        """A person keeps the warning; not proposed again until the readings rise above and fall again."""
        if actor.role not in ("issuer", "admin"):
            raise Forbidden("forbidden", f"role {actor.role!r} may not decide on a cancellation")
        state = await self._pending(site_id)
        await self.store.put_state(site_id, replace(state, proposed_at=None, dismissed=True))
        await self.audit.record(state.warning_id, "cancel_dismissed", actor.name, site=site_id)
