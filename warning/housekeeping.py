"""Periodic housekeeping on APScheduler: the expiry sweep and stale-work reconciliation.

Only periodic jobs live here; per-delivery timers (retries, escalations) are in the Redis due queue,
so a restart loses none of them. This is the only module that imports apscheduler.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warning import keys
from warning.model import WarningState
from warning.record import WarningRecord

logger = logging.getLogger(__name__)


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


def build_scheduler(services: Any, *, expiry_every_s: int = 15, reconcile_every_s: int = 60) -> AsyncIOScheduler:
    """The scheduler with its jobs; each has an id, coalesces missed runs and tolerates late starts."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job, every, name in ((expire, expiry_every_s, "expiry-sweep"), (reconcile, reconcile_every_s, "reconcile")):
        scheduler.add_job(job, "interval", args=[services], seconds=every, id=name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=every)
    return scheduler
