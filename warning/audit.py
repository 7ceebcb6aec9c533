"""The append-only audit log: who did what to which warning, and when (应对工作档案)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.clock import Clock

logger = logging.getLogger(__name__)
#: the global stream keeps this many entries; each warning's own stream keeps everything
GLOBAL_MAXLEN = 1_000_000
ACTIONS = ("draft", "submit", "approve", "override", "reject", "issue", "update", "cancel", "expire", "ingest",
           "duplicate", "send", "receipt", "reply", "ack", "escalation", "failover", "unreachable", "export")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the record."""

    id: str
    at: str
    warning_id: str
    action: str
    actor: str
    detail: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "warning_id": self.warning_id, "action": self.action,
                "actor": self.actor, "detail": dict(self.detail)}


class AuditLog:
    """Appends to a warning's stream and to the global stream in one transaction."""

    def __init__(self, redis: aioredis.Redis, *, clock: Clock) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock

    def fields(self, warning_id: str, action: str, actor: str, detail: Mapping[str, Any]) -> dict[str, str]:
        return {"at": self.clock.now().isoformat(timespec="milliseconds"), "warning_id": warning_id,
                "action": action, "actor": actor, "detail": json.dumps(detail, ensure_ascii=False, default=str)}

    def add_to(self, pipe: Any, warning_id: str, action: str, actor: str, **detail: Any) -> None:
        """Queue an entry on a pipeline the caller executes (with the change it records)."""
        entry = self.fields(warning_id, action, actor, detail)
        pipe.xadd(keys.audit_key(warning_id), entry)
        pipe.xadd(keys.AUDIT_ALL, entry, maxlen=GLOBAL_MAXLEN, approximate=True)

    async def record(self, warning_id: str, action: str, actor: str, **detail: Any) -> None:
        """Append one entry now."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self.add_to(pipe, warning_id, action, actor, **detail)
            await pipe.execute()
        if action == "override":
            logger.warning("AUDIT override by %s on warning %s: %s", actor, warning_id, detail.get("reason"))

    async def entries(self, warning_id: str, *, after: str = "-", count: int | None = None) -> Sequence[AuditEntry]:
        """A warning's record in order."""
        start = after if after == "-" else f"({after}"
        rows = await self.redis.xrange(keys.audit_key(warning_id), min=start, max="+", count=count)
        return [AuditEntry(id=rid, at=f["at"], warning_id=f["warning_id"], action=f["action"], actor=f["actor"],
                           detail=json.loads(f.get("detail") or "{}")) for rid, f in rows]
