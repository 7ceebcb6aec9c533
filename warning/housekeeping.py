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


def build_scheduler(services: Any, *, expiry_every_s: int = 15, reconcile_every_s: int = 60) -> AsyncIOScheduler:
    """The scheduler with its jobs; each has an id, coalesces missed runs and tolerates late starts."""
    scheduler = AsyncIOScheduler(timezone="UTC")

    async def expire() -> None:
        done = await services.lifecycle.expire_due()
        if done:
            logger.info("expired %d warnings: %s", len(done), ", ".join(done))

    async def reconcile() -> None:
        # a warning still 'dispatching' whose version was never fully queued (a crash between recording
        # and queueing) is planned again; planning is idempotent and queueing duplicates is harmless
        for wid in await services.warnings.active_ids():
            record = await services.warnings.get(wid)
            if record is None or record.state.value != "dispatching":
                continue
            planned = await services.redis.hget(keys.warning_key(wid), "planned_version")
            if planned != str(record.version):
                logger.warning("warning %s v%d was not fully planned: planning again", wid, record.version)
                await services.dispatcher.issue(record, None)

    for job, every, name in ((expire, expiry_every_s, "expiry-sweep"), (reconcile, reconcile_every_s, "reconcile")):
        scheduler.add_job(job, "interval", seconds=every, id=name, replace_existing=True, coalesce=True,
                          max_instances=1, misfire_grace_time=every)
    return scheduler
