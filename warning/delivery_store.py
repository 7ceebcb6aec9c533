"""Deliveries in Redis: created once by id, moved by compare-and-set, counters in the same atomic step.

The transition rules stay in Python (warning.delivery.advance / classify); Lua only guards the
compare-and-set, so a receipt racing a send result can never move a delivery backwards or count
twice. Every script touches keys of a single warning (one `{w:<id>}` hash tag).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.delivery import Bucket, Delivery, DeliveryState, advance, classify
from warning.retention import LUA_KEEP_S, Retention

S = DeliveryState
EVENTS_MAXLEN = 20000
#: the msg_type of an escalation notice (a message about the warning to someone outside its audience)
NOTICE = "notice"
#: counters of deliveries to numbers flagged needs_check (c:targeted, c:sent, c:acked, ...): apart from the others
CHECK_PREFIX = "c:"

# KEYS: counts, deliveries zset, recipients hash, the warning's record.  ARGV[1]: a JSON document
#   {p: key prefix, h: [field, value, ...] common to every delivery, c: [[counter, ...], ...] shared lists,
#    d: [[id, score, [field, value, ...], counter list index, recipient id, recipient json,
#         targeted list index], ...]}
# ARGV[2], ARGV[3]: LUA_KEEP_S's now and fallback (every key expires with the warning).
# One compact JSON argument per chunk: packing thousands of separate arguments, or repeating what
# every delivery shares, costs the client more than Redis.
_CREATE = LUA_KEEP_S + """
local doc = cjson.decode(ARGV[1]); local created = 0; local incr = {}; local members = {}
local ttl = keep_s(KEYS[4], ARGV[2], ARGV[3])
local function count(list) for _, c in ipairs(list) do incr[c] = (incr[c] or 0) + 1 end end
for _, d in ipairs(doc.d) do
  local key = doc.p .. d[1]
  if redis.call('EXISTS', key) == 0 then
    local args = {unpack(doc.h)}
    for _, v in ipairs(d[3]) do args[#args + 1] = v end
    redis.call('HSET', key, unpack(args))
    redis.call('EXPIRE', key, ttl)
    members[#members + 1] = d[2]; members[#members + 1] = d[1]
    count(doc.c[d[4] + 1])
    created = created + 1
    if redis.call('HSETNX', KEYS[3], d[5], d[6]) == 1 then count(doc.c[d[7] + 1]) end
  end
end
if #members > 0 then redis.call('ZADD', KEYS[2], unpack(members)) end
for c, n in pairs(incr) do redis.call('HINCRBY', KEYS[1], c, n) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
return created
"""

# KEYS: counts, events, acked, retrying, the warning's record.  ARGV[1]: event-stream maxlen; ARGV[2]: a JSON array,
# one item per change:
#   [key, expected state, [field, value, ...], [counter, delta, ...], ack recipient or '', [ack counters], event,
#    retry due (epoch s) or '', delivery id]
# ARGV[3], ARGV[4]: LUA_KEEP_S's now and fallback. The field list starts with state and updated_at (the ack time).
# A delivery entering retry_wait is indexed with its due time (housekeeping re-arms a retry whose timer is gone) and a
# provider id it had (a call placed again) is kept in prior_refs, so that map's expiry can follow the warning's.
_CAS = LUA_KEEP_S + """
local maxlen = ARGV[1]; local changes = cjson.decode(ARGV[2]); local out = {}; local applied = false
for k, c in ipairs(changes) do
  local key, fields, counters = c[1], c[3], c[4]
  if redis.call('HGET', key, 'state') == c[2] then
    if c[8] ~= '' then
      local old = redis.call('HMGET', key, 'provider_ref', 'channel', 'prior_refs')
      if old[1] and old[1] ~= '' then
        local item = (old[2] or '') .. ':' .. old[1]; local prior = old[3] or ''
        if not string.find(' ' .. prior .. ' ', ' ' .. item .. ' ', 1, true) then
          redis.call('HSET', key, 'prior_refs', prior .. ' ' .. item)
        end
      end
      redis.call('ZADD', KEYS[4], c[8], c[9])
    elseif c[2] == 'retry_wait' then
      redis.call('ZREM', KEYS[4], c[9])
    end
    redis.call('HSET', key, unpack(fields))
    for j = 1, #counters, 2 do redis.call('HINCRBY', KEYS[1], counters[j], counters[j + 1]) end
    if c[5] ~= '' and redis.call('HSETNX', KEYS[3], c[5], fields[4]) == 1 then
      for _, name in ipairs(c[6]) do redis.call('HINCRBY', KEYS[1], name, 1) end
    end
    if c[7] ~= '' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'e', c[7]) end
    out[k] = 1; applied = true
  else
    out[k] = 0
  end
end
if applied then
  local ttl = keep_s(KEYS[5], ARGV[3], ARGV[4])
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return out
"""

# KEYS: counts, retrying (besides the delivery hashes given in ARGV).  ARGV: now, reclaim flag, then delivery keys.
# Takes PENDING and RETRY_WAIT deliveries (and SENDING ones found by a reclaim) to SENDING.
_CLAIM = """
local now = ARGV[1]; local out = {}
for i = 3, #ARGV do
  local key = ARGV[i]; local st = redis.call('HGET', key, 'state')
  if st == 'retry_wait' then redis.call('ZREM', KEYS[2], redis.call('HGET', key, 'id')) end
  if st == 'pending' or st == 'retry_wait' or (ARGV[2] == '1' and st == 'sending') then
    redis.call('HSET', key, 'state', 'sending', 'updated_at', now)
    redis.call('HINCRBY', key, 'attempts', 1)
    out[#out+1] = redis.call('HGETALL', key)
  else
    out[#out+1] = {'state', st or ''}
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Row:
    """A delivery with what the counters and the rendering need: region, role, language, message type."""

    delivery: Delivery
    region: str = ""
    role: str = ""
    lang: str = "zh-CN"
    msg_type: str = "alert"
    name: str = ""
    #: a personalised text (escalation notices) sent instead of the warning's rendered message
    body: str = ""
    #: the person's number was flagged needs_check when the delivery was planned: it is sent, and counted apart
    needs_check: bool = False

    def fields(self) -> dict[str, str]:
        f = self.delivery.to_fields()
        f.pop("history", None)
        f.update(region=self.region, role=self.role, lang=self.lang, msg_type=self.msg_type, name=self.name)
        if self.body:
            f["body"] = self.body
        if self.needs_check:
            f["needs_check"] = "1"
        return f

    @classmethod
    def from_fields(cls, h: Mapping[str, str]) -> Row:
        return cls(Delivery.from_fields(h), h.get("region", ""), h.get("role", ""), h.get("lang", "zh-CN"),
                   h.get("msg_type", "alert"), h.get("name", ""), h.get("body", ""), h.get("needs_check") == "1")


def counter_fields(row: Row, bucket: str) -> list[str]:
    """The counters a delivery in `bucket` counts in: total, by channel kind, township, village, role.

    Escalation notices (to supervisors and duty officers) are not the warning's audience: they count apart; so do
    deliveries to numbers flagged needs_check (sent all the same), under `c:`, outside every other figure.
    """
    if row.msg_type == NOTICE:
        return [f"n:{bucket}"]
    if row.needs_check:
        return [f"{CHECK_PREFIX}{bucket}"]
    out = [bucket, f"k:{row.delivery.kind}:{bucket}"]
    out += region_fields(row.region, bucket)
    if row.role:
        out.append(f"o:{row.role}:{bucket}")
    return out


@lru_cache(maxsize=128)
def _bucket_deltas(old: DeliveryState, new: DeliveryState) -> tuple[tuple[str, int], ...]:
    """The funnel counters a move leaves (-1) and enters (+1): classify(), remembered per pair of states."""
    return tuple((bucket.value, delta) for bucket, delta in classify(old, new).deltas().items())


@lru_cache(maxsize=65536)
def _counters(kind: str, region: str, role: str, msg_type: str, bucket: str, needs_check: bool = False
              ) -> tuple[str, ...]:
    return tuple(counter_fields(Row(_SHAPE[kind], region, role, msg_type=msg_type, needs_check=needs_check), bucket))


class _Kinds(dict[str, Delivery]):
    """A placeholder delivery per kind, so counter_fields() can be asked about a (kind, region, role)."""

    def __missing__(self, kind: str) -> Delivery:
        d = Delivery(id="", warning_id="", version=0, recipient_id="", channel="", kind=kind, address="")
        self[kind] = d
        return d


_SHAPE = _Kinds()


def region_fields(region: str, name: str) -> list[str]:
    out = []
    if len(region) >= 9:
        out.append(f"r:{region[:9]}:{name}")
    if len(region) >= 12:
        out.append(f"r:{region[:12]}:{name}")
    if len(region) == 6:
        out.append(f"r:{region}:{name}")
    return out


def _flat(d: Mapping[str, str]) -> list[str]:
    return [x for kv in d.items() for x in kv]


@dataclass(frozen=True, slots=True)
class Change:
    """A compare-and-set of one delivery: from `expected` to `row` (already advanced)."""

    expected: DeliveryState
    row: Row
    fields: Mapping[str, str]
    deltas: Mapping[str, int]
    ack_recipient: str = ""
    ack_counters: tuple[str, ...] = ()
    event: str = ""
    #: entering retry_wait: when the retry is due (epoch s)
    retry_at: float | None = None


class DeliveryStore:
    """Deliveries, their counters and their live events; the only writer of delivery hashes."""

    def __init__(self, redis: aioredis.Redis, *, retention: Retention) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis
        self.retention = retention
        self._create = redis.register_script(_CREATE)
        self._cas = redis.register_script(_CAS)
        self._claim = redis.register_script(_CLAIM)

    async def create_many(self, warning_id: str, rows: Sequence[Row], recipients: Mapping[str, Mapping[str, Any]]
                          ) -> int:
        """Record deliveries that do not exist yet (idempotent by id); returns how many were new."""
        if not rows:
            return 0
        lists: dict[tuple[str, ...], int] = {}

        def index(counters: list[str]) -> int:
            return lists.setdefault(tuple(counters), len(lists))

        first = rows[0].delivery
        common = {"warning_id": warning_id, "state": DeliveryState.PENDING.value, "attempts": "0", "wave": "0",
                  "updated_at": first.updated_at.isoformat() if first.updated_at else ""}
        items = []
        for row in rows:
            d = row.delivery
            fields = [x for kv in (("id", d.id), ("version", str(d.version)), ("recipient_id", d.recipient_id),
                                   ("channel", d.channel), ("kind", d.kind), ("address", d.address),
                                   ("region", row.region), ("role", row.role), ("lang", row.lang),
                                   ("msg_type", row.msg_type), ("name", row.name), ("body", row.body),
                                   ("wave", str(d.wave) if d.wave else ""),
                                   ("needs_check", "1" if row.needs_check else "")) if kv[1]
                      for x in kv]
            people = d.kind not in ("escreen", "broadcast") and row.msg_type != NOTICE
            targeted = ([f"{CHECK_PREFIX}targeted"] if row.needs_check else
                        ["targeted", *region_fields(row.region, "targeted"),
                         *([f"o:{row.role}:targeted"] if row.role else [])]) if people else []
            items.append([d.id, d.version, fields, index(counter_fields(row, Bucket.QUEUED.value)), d.recipient_id,
                          json.dumps(recipients.get(d.recipient_id, {}), ensure_ascii=False), index(targeted)])
        doc = {"p": keys.delivery_key(warning_id, ""), "h": _flat(common), "c": [list(c) for c in lists], "d": items}
        args = [json.dumps(doc, ensure_ascii=False), *self.retention.script_args()]
        return int(await self._create(keys=[keys.counts_key(warning_id), keys.deliveries_key(warning_id),
                                            keys.recipients_key(warning_id), keys.warning_key(warning_id)], args=args))

    async def claim(self, warning_id: str, delivery_ids: Sequence[str], now: datetime, *, reclaim: bool = False
                    ) -> list[Row | str]:
        """Move each claimable delivery to SENDING; a Row for each claimed one, else its current state."""
        raw = await self._claim(keys=[keys.counts_key(warning_id), keys.retrying_key(warning_id)],
                                args=[now.isoformat(), "1" if reclaim else "0",
                                      *(keys.delivery_key(warning_id, d) for d in delivery_ids)])
        out: list[Row | str] = []
        for item in raw:
            h = dict(zip(item[::2], item[1::2], strict=True))
            out.append(Row.from_fields(h) if "id" in h else h.get("state", ""))
        return out

    def change(self, row: Row, new_state: DeliveryState, at: datetime, *, reason: str | None = None,
               provider_ref: str | None = None, extra: Mapping[str, str] | None = None,
               ack_counters: Sequence[str] = (), event: Mapping[str, Any] | None = None,
               retry_at: datetime | None = None) -> Change | None:
        """The compare-and-set that moves `row` to `new_state`; None when that says nothing new.

        `retry_at`: for a move to RETRY_WAIT, when the retry is due.
        """
        d = row.delivery
        moved = advance(d, new_state, at, reason=reason, provider_ref=provider_ref)
        if moved is d:
            return None
        deltas: dict[str, int] = {}
        for bucket, delta in _bucket_deltas(d.state, new_state):
            for f in _counters(d.kind, row.region, row.role, row.msg_type, bucket, row.needs_check):
                deltas[f] = deltas.get(f, 0) + delta
        when = at.isoformat()
        fields = {"state": moved.state.value, "updated_at": when, "error": moved.error or "",
                  "provider_ref": moved.provider_ref or "", **(extra or {})}
        # every value of the live event is ours and plain ASCII (ids, codes, states, an ISO time): no escaping
        ev = (f'{{"d":"{d.id}","w":"{d.warning_id}","k":"{d.kind}","s":"{new_state.value}","o":"{d.state.value}",'
              f'"r":"{row.region}","at":"{when}"')
        ev += "," + json.dumps(dict(event), ensure_ascii=False)[1:] if event else "}"
        acked = new_state is S.ACKNOWLEDGED
        return Change(d.state, replace(row, delivery=moved), fields,
                      deltas, d.recipient_id if acked else "", tuple(ack_counters) if acked else (), ev,
                      retry_at.timestamp() if retry_at is not None and new_state is S.RETRY_WAIT else None)

    async def commit(self, warning_id: str, changes: Sequence[Change]) -> list[bool]:
        """Apply compare-and-sets atomically per change; False where the delivery moved meanwhile."""
        if not changes:
            return []
        items = []
        retrying = False
        for c in changes:
            fields = _flat({"state": c.fields["state"], "updated_at": c.fields["updated_at"],
                            **{k: v for k, v in c.fields.items() if k not in ("state", "updated_at")}})
            items.append([keys.delivery_key(warning_id, c.row.delivery.id), c.expected.value, fields,
                          [x for name, delta in c.deltas.items() for x in (name, delta)], c.ack_recipient,
                          list(c.ack_counters), c.event, "" if c.retry_at is None else repr(c.retry_at),
                          c.row.delivery.id])
            retrying = retrying or c.retry_at is not None
        if retrying:  # before the move: housekeeping finds this warning's retries even if this process stops now
            await self.redis.zadd(keys.RETRYING, {warning_id: self.retention.clock.now().timestamp()})
        args: list[str | int] = [EVENTS_MAXLEN, json.dumps(items, ensure_ascii=False), *self.retention.script_args()]
        res = await self._cas(keys=[keys.counts_key(warning_id), keys.events_key(warning_id), keys.acked_key(warning_id),
                                    keys.retrying_key(warning_id), keys.warning_key(warning_id)], args=args)
        return [bool(x) for x in res]

    async def get(self, warning_id: str, delivery_id: str) -> Row | None:
        h = await self.redis.hgetall(keys.delivery_key(warning_id, delivery_id))
        return Row.from_fields(h) if h else None

    async def apply(self, warning_id: str, delivery_id: str,
                    decide: Callable[[Row], Change | None], *, attempts: int = 20) -> Row | None:
        """Read, decide, compare-and-set, retrying when the delivery moved meanwhile; None when nothing changed."""
        for _ in range(attempts):
            row = await self.get(warning_id, delivery_id)
            if row is None:
                return None
            change = decide(row)
            if change is None:
                return None
            if (await self.commit(warning_id, [change]))[0]:
                return change.row
        return None

    async def ids(self, warning_id: str, *, version: int | None = None) -> list[str]:
        if version is None:
            return list(await self.redis.zrange(keys.deliveries_key(warning_id), 0, -1))
        return list(await self.redis.zrangebyscore(keys.deliveries_key(warning_id), version, version))

    async def rows(self, warning_id: str, ids: Iterable[str], *, chunk: int = 1000) -> list[Row]:
        out: list[Row] = []
        batch = list(ids)
        for i in range(0, len(batch), chunk):
            async with self.redis.pipeline(transaction=False) as pipe:
                for did in batch[i:i + chunk]:
                    pipe.hgetall(keys.delivery_key(warning_id, did))
                out.extend(Row.from_fields(h) for h in await pipe.execute() if h)
        return out

    async def counts(self, warning_id: str) -> dict[str, int]:
        return {k: int(v) for k, v in (await self.redis.hgetall(keys.counts_key(warning_id))).items()}

    async def recipients(self, warning_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(keys.recipients_key(warning_id))
        return {k: json.loads(v) for k, v in raw.items()}

    async def acked(self, warning_id: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(keys.acked_key(warning_id)))

    async def as_planned(self, warning_id: str, rows: Sequence[Row]) -> list[Row]:
        """Rows for people the warning has already counted take the needs_check mark they were first counted with
        (a number flagged while the warning runs does not move that person's figures from one column to another)."""
        people = sorted({r.delivery.recipient_id for r in rows if r.msg_type != NOTICE})
        if not people:
            return list(rows)
        found = await self.redis.hmget(keys.recipients_key(warning_id), people)
        marks = {rid: bool(json.loads(info).get("needs_check")) for rid, info in zip(people, found, strict=True)
                 if info}
        return [replace(r, needs_check=marks[r.delivery.recipient_id])
                if r.msg_type != NOTICE and marks.get(r.delivery.recipient_id, r.needs_check) != r.needs_check else r
                for r in rows]


#: Stream: live delivery events of one warning (for the dashboard)
events_key = keys.events_key
