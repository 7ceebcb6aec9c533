"""Periodic housekeeping on APScheduler: the expiry sweep, stale-work reconciliation, stuck retries, key expiry.

Only periodic jobs live here; per-delivery timers (retries, escalations) are in the Redis due queue,
so a restart loses none of them. This is the only module that imports apscheduler.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warning import keys
from warning.dispatcher import priority_of
from warning.due import DueQueue
from warning.model import WarningState
from warning.record import WarningRecord

logger = logging.getLogger(__name__)
#: a retry this late with no timer is re-armed; younger ones may be between their move to retry_wait and their timer
REARM_AFTER = timedelta(seconds=60)
#: deliveries of one warning looked at in one round trip
CHUNK = 500

# KEYS: the index of warnings with retries.  ARGV: warning id, its score when read.  Forget the warning unless a new
# retry marked it since (its score moved).
_FORGET = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""


async def expire(services: Any) -> list[str]:
    """The expiry sweep: close every warning whose time is up."""
    done: list[str] = await services.lifecycle.expire_due()
    if done:
        logger.info("expired %d warnings: %s", len(done), ", ".join(done))
    return done


#: a version written for planning less than this long ago may still be being planned by its own request
PLANNING_GRACE_S = 30


async def reconcile(services: Any) -> list[str]:
    """Plan again every version that was never fully queued (a crash, or a store error, between recording and
    queueing): a version still 'dispatching', and any version written for planning (a cancellation too) whose
    planning was not marked done; planning is idempotent and a queued duplicate is skipped by the worker's claim."""
    replanned = []
    for wid in await services.warnings.active_ids():
        record = await services.warnings.get(wid)
        if record is None or record.state.value != "dispatching":
            continue
        if await services.redis.hget(keys.warning_key(wid), "planned_version") == str(record.version):
            continue
        await _plan_again(services, record)
        replanned.append(wid)
    written_before = services.clock.now() - timedelta(seconds=PLANNING_GRACE_S)
    for wid, version in await services.warnings.unplanned(written_before):
        record = await services.warnings.get(wid)
        # still to plan: the live version (also while an update waits for approval), or the cancellation
        wanted = record is not None and (
            (version == record.issued_version and not record.closed)
            or (version == record.version and record.state is WarningState.CANCELLED))
        if (not wanted or wid in replanned
                or await services.redis.hget(keys.warning_key(wid), "planned_version") == str(version)):
            await services.warnings.drop_unplanned(wid, version)
            continue
        if record.version != version:
            content = await services.warnings.version_content(wid, version)
            if content is None:
                await services.warnings.drop_unplanned(wid, version)
                continue
            record = record.with_(version=version, content=content)
        await _plan_again(services, record)
        replanned.append(wid)
    return replanned


async def _plan_again(services: Any, record: WarningRecord) -> None:
    logger.warning("warning %s v%d was not fully planned: planning again", record.id, record.version)
    previous = None
    if record.version > 1:
        content = await services.warnings.version_content(record.id, record.version - 1)
        previous = record.with_(version=record.version - 1, content=content) if content else None
    await services.dispatcher.issue(record, previous)


async def rearm_retries(services: Any) -> list[str]:
    """Set the timer again of every delivery stuck in retry_wait without one (a process stopped between the move and
    its timer, or the timer was given up); returns their ids. Each fires at once: its retry is overdue.

    Where to look: `keys.RETRYING` names the warnings that had a delivery enter retry_wait (marked before the move),
    and each warning's `retrying_key` holds exactly its deliveries in retry_wait with their due times (kept by the
    same scripts that move them). So this reads only deliveries in retry_wait and overdue, never a whole warning.
    """
    now = services.clock.now()
    cutoff = (now - REARM_AFTER).timestamp()
    rearmed: list[str] = []
    for wid, score in await services.redis.zrange(keys.RETRYING, 0, -1, withscores=True):
        overdue = await services.redis.zrangebyscore(keys.retrying_key(wid), "-inf", cutoff)
        if overdue:
            rearmed += await _rearm(services, wid, overdue, now)
        elif score < cutoff and not await services.redis.exists(keys.retrying_key(wid)):
            await services.redis.eval(_FORGET, 1, keys.RETRYING, wid, repr(score))
    if rearmed:
        logger.warning("%d deliveries waited for a retry with no timer: set again", len(rearmed))
    return rearmed


async def _rearm(services: Any, wid: str, ids: list[str], now: datetime) -> list[str]:
    record = await services.warnings.get(wid)
    prio = priority_of(record) if record is not None else 0  # the worker cancels it: the sooner the better
    out = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        async with services.redis.pipeline(transaction=False) as pipe:
            for did in chunk:
                pipe.hmget(keys.delivery_key(wid, did), ["state", "channel", "attempts", "requeued"])
            found = await pipe.execute()
        # still waiting, and not already queued again for this attempt (then it sits on its queue)
        waiting = {did: f[1] for did, f in zip(chunk, found, strict=True)
                   if f[0] == "retry_wait" and f[3] != (f[2] or "0")}
        members = {did: DueQueue.member("retry", wid, did, channel, str(prio)) for did, channel in waiting.items()}
        for (did, member), armed in zip(members.items(), await services.due.pending(list(members.values())),
                                        strict=True):
            if not armed and await services.due.arm(member, now):
                out.append(did)
    return out


async def retain(services: Any) -> list[str]:
    """Move the expiry of every key of the warnings whose end moved (an update, a cancellation) to their new end +
    retention; returns their ids."""
    done = []
    for wid in await services.redis.smembers(keys.RETENTION_PENDING):
        await services.warnings.retention.apply(wid)
        done.append(wid)
    return done


async def forget_expired(services: Any) -> list[str]:
    """Drop from the list of warnings those whose record has expired (end + retention); returns their ids.

    Only warnings created more than the retention period ago can be gone, so only those are looked at."""
    before = (services.clock.now() - timedelta(days=services.warnings.retention.days)).timestamp()
    old = await services.redis.zrangebyscore(keys.WARNINGS_INDEX, "-inf", before)
    gone = []
    for i in range(0, len(old), CHUNK):
        chunk = old[i:i + CHUNK]
        async with services.redis.pipeline(transaction=False) as pipe:
            for wid in chunk:
                pipe.exists(keys.warning_key(wid))
            gone += [wid for wid, found in zip(chunk, await pipe.execute(), strict=True) if not found]
    if gone:
        await services.redis.zrem(keys.WARNINGS_INDEX, *gone)
        logger.info("%d warnings past their retention left the list", len(gone))
    return gone


def build_scheduler(services: Any, *, expiry_every_s: int = 15, reconcile_every_s: int = 60) -> AsyncIOScheduler:
    """The scheduler with its jobs; each has an id, coalesces missed runs and tolerates late starts."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job, every, name in ((expire, expiry_every_s, "expiry-sweep"), (reconcile, reconcile_every_s, "reconcile"),
                             (rearm_retries, reconcile_every_s, "rearm-retries"),
                             (retain, reconcile_every_s, "retention"),
                             (forget_expired, 3600, "forget-expired")):
        scheduler.add_job(job, "interval", args=[services], seconds=every, id=name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=every)
    return scheduler
