"""Periodic housekeeping on APScheduler: the expiry sweep and stale-work reconciliation.

Only periodic jobs live here; per-delivery timers (retries, escalations) are in the Redis due queue,
so a restart loses none of them. This is the only module that imports apscheduler.
"""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warning import keys

logger = logging.getLogger(__name__)


async def expire(services: Any) -> list[str]:
    """The expiry sweep: close every warning whose time is up."""
    done: list[str] = await services.lifecycle.expire_due()
    if done:
        logger.info("expired %d warnings: %s", len(done), ", ".join(done))
    return done


async def reconcile(services: Any) -> list[str]:
    """Plan again every version still 'dispatching' that was never fully queued (a crash between recording
    and queueing); planning is idempotent and a queued duplicate is skipped by the worker's claim."""
    replanned = []
    for wid in await services.warnings.active_ids():
        record = await services.warnings.get(wid)
        if record is None or record.state.value != "dispatching":
            continue
        if await services.redis.hget(keys.warning_key(wid), "planned_version") == str(record.version):
            continue
        logger.warning("warning %s v%d was not fully planned: planning again", wid, record.version)
        previous = None
        if record.version > 1:
            content = await services.warnings.version_content(wid, record.version - 1)
            previous = record.with_(version=record.version - 1, content=content) if content else None
        await services.dispatcher.issue(record, previous)
        replanned.append(wid)
    return replanned


def build_scheduler(services: Any, *, expiry_every_s: int = 15, reconcile_every_s: int = 60) -> AsyncIOScheduler:
    """The scheduler with its jobs; each has an id, coalesces missed runs and tolerates late starts."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job, every, name in ((expire, expiry_every_s, "expiry-sweep"), (reconcile, reconcile_every_s, "reconcile")):
        scheduler.add_job(job, "interval", args=[services], seconds=every, id=name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=every)
    return scheduler
