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
from warning.retention import LUA_KEEP_S, Retention

logger = logging.getLogger(__name__)
#: the global stream keeps this many entries; each warning's own stream keeps everything
GLOBAL_MAXLEN = 1_000_000
ACTIONS = ("draft", "submit", "approve", "override", "reject", "issue", "update", "cancel", "expire", "ingest",
           "duplicate", "send", "receipt", "reply", "ack", "escalation", "failover", "unreachable", "export")

# KEYS: the warning's record, its audit stream, the global audit stream.  ARGV: now, fallback (LUA_KEEP_S), global
# maxlen, then field, value pairs. One entry on both streams; the warning's stream expires with the warning.
_RECORD = LUA_KEEP_S + """
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
redis.call('EXPIRE', KEYS[2], keep_s(KEYS[1], ARGV[1], ARGV[2]))
"""


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

    def __init__(self, redis: aioredis.Redis, *, clock: Clock, retention: Retention) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.clock = clock
        self.retention = retention
        self._record = redis.register_script(_RECORD)

    def fields(self, warning_id: str, action: str, actor: str, detail: Mapping[str, Any]) -> dict[str, str]:
        return {"at": self.clock.now().isoformat(timespec="milliseconds"), "warning_id": warning_id,
                "action": action, "actor": actor, "detail": json.dumps(detail, ensure_ascii=False, default=str)}

    def add_to(self, pipe: Any, warning_id: str, action: str, actor: str, **detail: Any) -> None:
        """Queue an entry on a pipeline the caller executes (with the change it records)."""
        entry = self.fields(warning_id, action, actor, detail)
        pipe.xadd(keys.audit_key(warning_id), entry)
        pipe.xadd(keys.AUDIT_ALL, entry, maxlen=GLOBAL_MAXLEN, approximate=True)

    async def record(self, warning_id: str, action: str, actor: str, **detail: Any) -> None:
        """Append one entry now (the warning's stream expires with the warning's other keys)."""
        entry = self.fields(warning_id, action, actor, detail)
        await self._record(keys=[keys.warning_key(warning_id), keys.audit_key(warning_id), keys.AUDIT_ALL],
                           args=[*self.retention.script_args(), GLOBAL_MAXLEN, *(x for kv in entry.items() for x in kv)])
        if action == "override":
            logger.warning("AUDIT override by %s on warning %s: %s", actor, warning_id, detail.get("reason"))

    async def entries(self, warning_id: str, *, after: str = "-", count: int | None = None) -> Sequence[AuditEntry]:
        """A warning's record in order."""
        start = after if after == "-" else f"({after}"
        rows = await self.redis.xrange(keys.audit_key(warning_id), min=start, max="+", count=count)
        return [AuditEntry(id=rid, at=f["at"], warning_id=f["warning_id"], action=f["action"], actor=f["actor"],
                           detail=json.loads(f.get("detail") or "{}")) for rid, f in rows]
