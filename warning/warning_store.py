"""Warnings in Redis: records, versions, the CAP dedup and identifier indexes, reply codes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from warning import keys
from warning.audit import AuditLog
from warning.errors import Conflict
from warning.model import EarlyWarning
from warning.record import WarningRecord
from warning.retention import Retention

#: reply codes avoid characters people confuse when typing on a phone (0/O, 1/I/L, 2/Z, 5/S, 8/B)
REPLY_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
REPLY_CODE_LEN = 3
#: an open warning's reply code outlives its expiry by this much (the expiry sweep frees it)
REPLY_CODE_SLACK_S = 3600
reply_code_key = keys.reply_code_key
#: a second's identifier counter is kept this long (clocks of several processes may differ a little)
SERIAL_TTL_S = 120

#: audit entries written with a change after its own (action, detail), e.g. an approval and its issue
Then = Sequence[tuple[str, Mapping[str, object]]]


class StaleRecord(Conflict):
    """The stored record is no longer the one a change was computed from: read it again and decide again."""

    def __init__(self) -> None:
        super().__init__("conflict", "预警已被更改，请刷新后重试 the warning changed meanwhile; reload and retry")


class WarningStore:
    """Reads and writes warning records; every write goes with its audit entry in one transaction."""

    def __init__(self, redis: aioredis.Redis, audit: AuditLog, retention: Retention) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.audit = audit
        self.retention = retention

    async def get(self, warning_id: str) -> WarningRecord | None:
        h = await self.redis.hgetall(keys.warning_key(warning_id))
        return WarningRecord.from_hash(h) if h else None

    async def version_content(self, warning_id: str, version: int) -> EarlyWarning | None:
        raw = await self.redis.get(keys.version_key(warning_id, version))
        return EarlyWarning.from_json(json.loads(raw)) if raw else None

    async def create(self, record: WarningRecord, *, actor: str, action: str, then: Then = (), plan: bool = False,
                     **detail: object) -> None:
        """Store a new record (version 1) with its audit entries; `plan`: the version is to be planned (the
        housekeeping finishes it if this process does not)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            # the audit entries first: _write sets the audit stream's expiry, so the stream must exist
            self._audit(pipe, record, actor, action, detail, then)
            self._write(pipe, record, plan=plan)
            pipe.zadd(keys.WARNINGS_INDEX, {record.id: record.created_at.timestamp()})
            await pipe.execute()

    async def replace(self, before: WarningRecord, after: WarningRecord, *, actor: str, action: str,
                      then: Then = (), plan: bool = False, **detail: object) -> WarningRecord:
        """Compare-and-set: write `after` only if the stored record is still `before` (state and version), else
        StaleRecord (also when anything else wrote the record meanwhile)."""
        key = keys.warning_key(before.id)
        moved = self.retention.keep_until(before) != self.retention.keep_until(after)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = await pipe.hmget(key, ["state", "version"])
                if current != [before.state.value, str(before.version)]:
                    raise StaleRecord()
                pipe.multi()
                self._audit(pipe, after, actor, action, detail, then)
                self._write(pipe, after, plan=plan)
                if moved:
                    # the warning's end moved: housekeeping moves every other key's expiry (Retention.apply). Not
                    # here: a cancellation must not wait for a pass over every delivery, and no key can expire
                    # before the old end + retention, at least a day away.
                    pipe.sadd(keys.RETENTION_PENDING, after.id)
                await pipe.execute()
            except WatchError:
                raise StaleRecord() from None
        return after

    def _audit(self, pipe: Any, record: WarningRecord, actor: str, action: str, detail: Mapping[str, object],
               then: Then) -> None:
        self.audit.add_to(pipe, record.id, action, actor, version=record.version, state=record.state.value, **detail)
        for more, more_detail in then:
            self.audit.add_to(pipe, record.id, more, actor, version=record.version, state=record.state.value,
                              **more_detail)

    async def unplanned(self, written_before: datetime) -> list[tuple[str, int]]:
        """Versions written for planning before `written_before` whose planning has not been marked done."""
        members = await self.redis.zrangebyscore(keys.PLANNING_INDEX, "-inf", written_before.timestamp())
        out = []
        for m in members:
            wid, _, version = str(m).rpartition(":")
            if version.isdigit():
                out.append((wid, int(version)))
        return out

    async def planned_version(self, warning_id: str) -> int:
        """The last version whose deliveries were all planned and queued (0: none)."""
        return int(await self.redis.hget(keys.warning_key(warning_id), "planned_version") or 0)

    async def drop_unplanned(self, warning_id: str, version: int) -> None:
        await self.redis.zrem(keys.PLANNING_INDEX, keys.planning_member(warning_id, version))

    def _write(self, pipe: Any, record: WarningRecord, *, plan: bool = False) -> None:
        """Queue the record's writes; each key expires at the warning's end + retention (Retention)."""
        ttl = self.retention.keep_s(record)
        pipe.hset(keys.warning_key(record.id), mapping={**record.to_hash(),
                                                        "keep_until": str(self.retention.keep_until(record))})
        pipe.expire(keys.warning_key(record.id), ttl)
        pipe.expire(keys.audit_key(record.id), ttl)  # queued after the caller's audit entry: the stream exists
        pipe.set(keys.version_key(record.id, record.version),
                 json.dumps(record.content.to_json(), ensure_ascii=False), ex=ttl)
        for identifier in record.identifiers:
            pipe.set(keys.cap_identifier_key(identifier), record.id, ex=ttl)
        content = record.content
        if content.sender and content.identifier:  # a CAP message taken in is remembered as long as its warning
            # the warning the message belongs to: an Update or Cancel taken in belongs to the warning it changed
            pipe.set(keys.cap_dedup_key(content.sender, content.identifier), record.id, ex=ttl)
        if record.closed:
            pipe.zrem(keys.ACTIVE_INDEX, record.id)
            pipe.delete(reply_code_key(record.reply_code))
        else:
            pipe.zadd(keys.ACTIVE_INDEX, {record.id: record.expires_at.timestamp()})
            # the code stays taken while the warning is open, whatever its expiry becomes
            pipe.expire(reply_code_key(record.reply_code), self._open_s(record))
        if plan:
            pipe.zadd(keys.PLANNING_INDEX, {keys.planning_member(record.id, record.version):
                                            record.updated_at.timestamp()})

    def _open_s(self, record: WarningRecord) -> int:
        return max(60, int((record.expires_at - self.retention.clock.now()).total_seconds()) + REPLY_CODE_SLACK_S)

    async def list(self, *, limit: int = 50, before: float | None = None) -> tuple[list[WarningRecord], float | None]:
        """Newest first; `before` is the cursor (a created timestamp) from the previous page."""
        top = f"({before}" if before is not None else "+inf"
        rows = await self.redis.zrevrangebyscore(keys.WARNINGS_INDEX, top, "-inf", start=0, num=limit,
                                                 withscores=True)
        records = []
        for wid, _score in rows:
            record = await self.get(wid)
            if record is not None:
                records.append(record)
        nxt = rows[-1][1] if len(rows) == limit else None
        return records, nxt

    async def active_ids(self) -> Sequence[str]:
        return list(await self.redis.zrange(keys.ACTIVE_INDEX, 0, -1))

    async def due_for_expiry(self, now: datetime) -> Sequence[str]:
        return list(await self.redis.zrangebyscore(keys.ACTIVE_INDEX, "-inf", now.timestamp()))

    async def claim_cap(self, sender: str, identifier: str, warning_id: str, ttl_s: int) -> str | None:
        """Remember a CAP message; the id of the warning it already belongs to when seen before."""
        key = keys.cap_dedup_key(sender, identifier)
        if await self.redis.set(key, warning_id, nx=True, ex=ttl_s):
            return None
        found: str | None = await self.redis.get(key)
        return found

    async def release_cap(self, sender: str, identifier: str) -> None:
        await self.redis.delete(keys.cap_dedup_key(sender, identifier))

    async def by_identifier(self, identifier: str) -> str | None:
        found: str | None = await self.redis.get(keys.cap_identifier_key(identifier))
        return found

    async def new_reply_code(self, warning_id: str, ttl_s: int) -> str:
        """A short code, unique among open warnings, that people add to a reply (回复1 K7Q)."""
        for _ in range(200):
            code = "".join(secrets.choice(REPLY_ALPHABET) for _ in range(REPLY_CODE_LEN))
            if await self.redis.set(reply_code_key(code), warning_id, nx=True, ex=ttl_s):
                return code
        raise Conflict("no reply code free", "too many open warnings")

    async def by_reply_code(self, code: str) -> str | None:
        found: str | None = await self.redis.get(reply_code_key(code.upper()))
        return found

    async def next_serial(self, unit: str, second: str) -> int:
        """The next serial (0, 1, 2, ...) of the unit's identifiers in this second (GB/T 35965.1 N); above 9 the
        second is used up."""
        key = keys.serial_key(unit, second)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, SERIAL_TTL_S)
            n, _ = await pipe.execute()
        return int(n) - 1
