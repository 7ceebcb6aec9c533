"""Acknowledgments: a person's confirmation of a warning, from an SMS reply, a keypress or a device, counted once."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from contacts.directory import ContactDirectory
from contacts.phone import InvalidPhoneNumber, normalize_e164
from warning import keys
from warning.audit import AuditLog
from warning.channel import InboundMessage
from warning.clock import Clock
from warning.delivery import ALLOWED, QUEUED, DeliveryState
from warning.delivery_store import CHECK_PREFIX, Change, DeliveryStore, Row, region_fields
from warning.logs import redact
from warning.record import LIVE_STATES, WarningRecord
from warning.warning_store import REPLY_ALPHABET, REPLY_CODE_LEN, WarningStore

logger = logging.getLogger(__name__)
S = DeliveryState
#: replies that confirm receipt, compared after NFKC folding (full-width forms), lower case, punctuation removed
ACK_WORDS = frozenset({"1", "收到", "确认", "已收到", "ok", "yes", "确认收到", "已确认", "收到了", "好的收到"})
#: acknowledged within these many seconds of the version's issue: the acked_5m / acked_15m counters
ACK_WINDOWS = ((300, "acked_5m"), (900, "acked_15m"))
#: escalation waves a person may have deliveries in (wave 0 is the first send); enough for any policy
MAX_WAVES = 8
PERSON_KINDS = ("sms", "voice")
REPORT_MAXLEN = 10000
MAX_REPORT_CHARS = 500
# a code stands alone, or touches the "1" of an acknowledgment ("1K7Q", "K7Q1"): codes never contain 1
_CODE = re.compile(rf"(?<![A-Z0-9])(1?)([{REPLY_ALPHABET}]{{{REPLY_CODE_LEN}}})(1?)(?![A-Z0-9])")


def delivery_id(warning_id: str, version: int, recipient_id: str, kind: str, wave: int = 0) -> str:
    """The deterministic delivery id (wave 0 is the dispatcher's own: Recipient.delivery_id)."""
    raw = f"{warning_id}|{version}|{recipient_id}|{kind}" + (f"|w{wave}" if wave else "")
    return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


def fold(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation become plain), upper case, trimmed."""
    return unicodedata.normalize("NFKC", text).strip().upper()


def code_candidates(text: str) -> list[str]:
    """Words in a reply that could be a reply code (three characters of REPLY_ALPHABET standing alone)."""
    return [m.group(2) for m in _CODE.finditer(fold(text))]


def is_ack_text(text: str) -> bool:
    """True when the reply (its reply code already removed) says 'received': 1, 收到, 确认, ok, yes, ..."""
    core = "".join(ch for ch in unicodedata.normalize("NFKC", text).lower()
                   if not unicodedata.category(ch).startswith(("P", "Z", "S", "C")))
    return core in ACK_WORDS


def without_code(text: str, code: str) -> str:
    """The reply with its reply code taken out."""
    folded = fold(text)
    return _CODE.sub(lambda m: f"{m.group(1)} {m.group(3)}" if m.group(2) == code else m.group(0), folded)


def ack_counters(row: Row, acked_at: datetime, issued_at: datetime | None) -> list[str]:
    """The counters one person's acknowledgment adds to: acked (and acked_5m / acked_15m) in total, by region and role."""
    names = ["acked"]
    if issued_at is not None:
        waited_s = (acked_at - issued_at).total_seconds()
        names += [name for limit, name in ACK_WINDOWS if waited_s <= limit]
    if row.needs_check:  # a number flagged needs_check counts apart (delivery_store.counter_fields)
        return [f"{CHECK_PREFIX}{name}" for name in names]
    out = [f"k:{row.delivery.kind}:acked"]
    for name in names:
        out += [name, *region_fields(row.region, name)]
        if row.role:
            out.append(f"o:{row.role}:{name}")
    return out


@dataclass(frozen=True, slots=True)
class AckResult:
    """What acknowledging did: `new` is False when the person had already confirmed."""

    warning_id: str
    recipient_id: str
    new: bool
    carrier: str | None  # the delivery that carried the acknowledgment


class AckLedger:
    """Records acknowledgments per person and warning; stops what is still pending for that person."""

    def __init__(self, *, redis: aioredis.Redis, store: DeliveryStore, clock: Clock) -> None:
        self.redis: Any = redis
        self.store, self.clock = store, clock
        self._issued: dict[tuple[str, int], datetime] = {}

    async def issued_at(self, warning_id: str, version: int) -> datetime | None:
        """When the version went out (cached: it never changes once set)."""
        hit = self._issued.get((warning_id, version))
        if hit is None:
            raw = await self.redis.hget(keys.escalation_key(warning_id), f"issued:{version}")
            if raw:
                hit = self._issued[(warning_id, version)] = datetime.fromisoformat(raw)
        return hit

    async def person_rows(self, record: WarningRecord, recipient_id: str) -> list[Row]:
        """Every delivery of this warning to this person, on any channel, version and escalation wave."""
        ids = [delivery_id(record.id, v, recipient_id, kind, wave) for v in range(1, record.version + 1)
               for kind in PERSON_KINDS for wave in range(MAX_WAVES)]
        return [r for r in await self.store.rows(record.id, ids) if r.delivery.recipient_id == recipient_id]

    def settle(self, rows: Sequence[Row], now: datetime, *, keep: str | None = None) -> list[Change]:
        """Cancel what has not gone out yet (a voice call about to be placed, an escalation wave)."""
        return [c for r in rows if r.delivery.id != keep and r.delivery.state in QUEUED
                and (c := self.store.change(r, S.CANCELLED, now, reason="acknowledged")) is not None]

    async def acknowledge(self, record: WarningRecord, recipient_id: str, *, via: str, detail: str = ""
                          ) -> AckResult | None:
        """A person confirmed (by reply): ack the delivery that carried it, stop the rest; None if never sent to them."""
        for _ in range(10):
            now = self.clock.now()
            rows = await self.person_rows(record, recipient_id)
            if not rows:
                return None
            already = await self.redis.hexists(keys.acked_key(record.id), recipient_id)
            carrier = pick_carrier(rows, via)
            changes = self.settle(rows, now, keep=carrier.delivery.id if carrier else None)
            if carrier is not None:
                issued = await self.issued_at(record.id, carrier.delivery.version)
                ack = self.store.change(carrier, S.ACKNOWLEDGED, now, reason=detail or None,
                                        ack_counters=ack_counters(carrier, now, issued), event={"via": via})
                changes = [c for c in (ack, *changes) if c is not None]
            ok = await self.store.commit(record.id, changes)
            if all(ok):
                return AckResult(record.id, recipient_id, not already and carrier is not None,
                                 carrier.delivery.id if carrier else None)
        logger.warning("warning %s: acknowledgment of %s kept racing other changes", record.id, recipient_id)
        return None


def pick_carrier(rows: Sequence[Row], via: str) -> Row | None:
    """The delivery an acknowledgment belongs to: the newest one on the channel used that can still take it."""
    able = [r for r in rows if S.ACKNOWLEDGED in ALLOWED[r.delivery.state] and r.msg_type != "cancel"]
    if not able:
        return None
    able.sort(key=lambda r: (r.delivery.kind == via, r.delivery.state not in QUEUED, r.delivery.version,
                             r.delivery.wave), reverse=True)
    return able[0]


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What an inbound reply was: acked, report (回执内容), stranger, no_warning, empty, or check (a registry check)."""

    kind: str
    warning_id: str | None = None
    headline: str = ""
    reply_code: str = ""
    new: bool = False
    #: the whole answer to send back, when whoever handled the reply wrote it (a registry check)
    text: str = ""


#: a hook that may take a reply before it is matched to a warning: (contact id, text) → an outcome, or None
ReplyHook = Callable[[str, str], Awaitable[ReplyOutcome | None]]


class ReplyService:
    """Matches an inbound SMS to a person and a warning; an acknowledgment or a field report."""

    def __init__(self, *, redis: aioredis.Redis, directory: ContactDirectory, warnings: WarningStore,
                 ledger: AckLedger, audit: AuditLog, clock: Clock, default_region: str = "CN") -> None:
        self.redis: Any = redis
        self.directory, self.warnings, self.ledger = directory, warnings, ledger
        self.audit, self.clock, self.default_region = audit, clock, default_region
        #: the registry check's hook (warning.registry_check.RegistryChecks.claim_reply), set by the composition root
        self.check_hook: ReplyHook | None = None

    async def handle(self, msg: InboundMessage) -> ReplyOutcome:
        """Never raises for anything a person can type."""
        try:
            phone, _ = normalize_e164(msg.sender, self.default_region)
        except InvalidPhoneNumber:
            return ReplyOutcome("stranger")
        contact = await self.directory.by_phone(phone)
        if contact is None:
            logger.info("reply from a number not in the registry on %s", msg.channel)
            return ReplyOutcome("stranger")
        claimed = await self._check_reply(contact.id, msg.text)
        if claimed is not None:
            return claimed
        record, rest = await self._warning_of(msg.text, contact.id)
        if record is None:
            return ReplyOutcome("no_warning")
        if not rest.strip():
            return ReplyOutcome("empty", record.id, _headline(record), record.reply_code)
        if is_ack_text(rest):
            res = await self.ledger.acknowledge(record, contact.id, via="sms", detail="reply")
            await self.audit.record(record.id, "reply", contact.id, ack=True, new=bool(res and res.new),
                                    channel=msg.channel)
            return ReplyOutcome("acked", record.id, _headline(record), record.reply_code, bool(res and res.new))
        await self.report(record, contact.id, contact.name, contact.region, msg.text, msg.channel)
        return ReplyOutcome("report", record.id, _headline(record), record.reply_code)

    async def _check_reply(self, contact_id: str, text: str) -> ReplyOutcome | None:
        """A confirmation an open registry check is waiting for (when no live warning waits for one), else None."""
        return await self.check_hook(contact_id, text) if self.check_hook is not None else None

    async def report(self, record: WarningRecord, contact_id: str, name: str, region: str, text: str,
                     channel: str) -> None:
        """Keep a reply that is not a confirmation as a field report on the warning (回执内容)."""
        entry = {"at": self.clock.now().isoformat(), "contact": contact_id, "name": name, "region": region,
                 "channel": channel, "text": text.strip()[:MAX_REPORT_CHARS]}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.reports_key(record.id), entry, maxlen=REPORT_MAXLEN, approximate=True)
            pipe.expire(keys.reports_key(record.id), self.warnings.retention.keep_s(record))
            await pipe.execute()
        # the audit log is read by viewers: the report's whole text (a phone number it quotes) stays in the stream
        await self.audit.record(record.id, "reply", contact_id, ack=False,
                                report=json.dumps(redact(entry["text"][:80]), ensure_ascii=False))

    async def _warning_of(self, text: str, contact_id: str) -> tuple[WarningRecord | None, str]:
        """By the reply code in the text, else the most recent live warning sent to this person."""
        for code in code_candidates(text):
            wid = await self.warnings.by_reply_code(code)
            if wid and await self.redis.hexists(keys.recipients_key(wid), contact_id):
                record = await self.warnings.get(wid)
                if record is not None:
                    return record, without_code(text, code)
        return await self.latest_for(contact_id), text

    async def latest_for(self, contact_id: str) -> WarningRecord | None:
        """The most recently issued live warning this person was sent."""
        ids = list(await self.warnings.active_ids())
        if not ids:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for wid in ids:
                pipe.hexists(keys.recipients_key(wid), contact_id)
            theirs = [wid for wid, yes in zip(ids, await pipe.execute(), strict=True) if yes]
        now = self.clock.now()
        best: tuple[datetime, WarningRecord] | None = None
        for wid in theirs:
            record = await self.warnings.get(wid)
            if record is None or record.state not in LIVE_STATES or record.expires_at <= now:
                continue
            issued = await self.ledger.issued_at(wid, record.issued_version) or record.created_at
            if best is None or issued > best[0]:
                best = (issued, record)
        return best[1] if best else None


def _headline(record: WarningRecord) -> str:
    info = record.content.info
    return (info.headline if info else None) or ""
