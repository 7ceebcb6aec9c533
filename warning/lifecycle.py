"""The warning lifecycle: draft, approve (two-person rule), issue, update, cancel, expire, CAP ingest."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from warning.audit import AuditLog
from warning.cap import parse_cap
from warning.cap_emit import make_identifier
from warning.clock import Clock
from warning.delivery_store import Row
from warning.drafting import CN_TZ, Draft, build_content, parse_draft
from warning.errors import BadRequest, Conflict, Forbidden, NotFound
from warning.model import EarlyWarning, MsgType, Reference, Status, WarningState
from warning.policy import Policy
from warning.record import CLOSED_STATES, LIVE_STATES, WarningRecord
from warning.reference import EventType
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
#: CAP messages are remembered this long for deduplication (push and poll of the same document)
DEDUP_TTL_S = 30 * 86400


class Dispatch(Protocol):
    """What the lifecycle asks of the dispatcher."""

    async def issue(self, record: WarningRecord, previous: WarningRecord | None) -> None:
        """Plan and queue the deliveries of `record.version` (for an update, to old and new audiences)."""

    async def withdraw(self, record: WarningRecord, reason: str) -> None:
        """Stop every pending send of versions before `record.version` (cancel, supersede, expire)."""

    async def reach_late(self, record: WarningRecord, handed: Sequence[Row]) -> int:
        """Plan `record.version` for the people of `handed`, deliveries of earlier versions accepted after it."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: a token name and its role, or a feed."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What POST /api/v1/cap answers."""

    id: str | None
    duplicate: bool
    state: str | None = None
    note: str | None = None


class WarningService:
    """Every change to a warning goes through here, recorded with who and when."""

    def __init__(self, *, store: WarningStore, audit: AuditLog, policy: Policy, event_types: Mapping[str, EventType],
                 roles: Mapping[str, Any], issuer: Mapping[str, Any], dispatch: Dispatch, clock: Clock) -> None:
        self.store, self.audit, self.policy = store, audit, policy
        self.event_types, self.roles, self.issuer = event_types, roles, issuer
        self.dispatch, self.clock = dispatch, clock

    # ---- manual warnings -----------------------------------------------------------------
    async def _identifier(self, now: datetime) -> str:
        local = now.astimezone(CN_TZ)
        serial = await self.store.next_serial(local.strftime("%Y%m%d"))
        return make_identifier(str(self.issuer.get("code", "000000")), str(self.issuer.get("unit", "00000000")),
                               local, serial)

    def _expiry(self, draft: Draft, now: datetime) -> datetime:
        return draft.expires or now + timedelta(seconds=self.policy.for_level(draft.level.value).default_expiry_s)

    async def draft(self, body: Any, actor: Actor) -> WarningRecord:
        """A new manual warning: waits for approval at the levels the policy marks, else goes out."""
        now = self.clock.now()
        draft = parse_draft(body, event_types=self.event_types, roles=self.roles, now=now)
        expires = self._expiry(draft, now)
        content = build_content(draft, identifier=await self._identifier(now), sender=str(self.issuer["sender"]),
                                sender_name=str(self.issuer["name"]), now=now, expires=expires)
        wid = f"w{now.astimezone(CN_TZ):%Y%m%d}{secrets.token_hex(4)}"
        needs = self.policy.needs_approval(draft.level.value) and draft.status is not Status.TEST
        record = WarningRecord(
            id=wid, version=1, state=WarningState.PENDING_APPROVAL if needs else WarningState.DISPATCHING,
            content=content, origin="manual", created_at=now, updated_at=now, expires_at=expires,
            reply_code=await self.store.new_reply_code(wid, self._ttl(expires, now)), drafter=actor.name,
            roles=draft.roles, sites=draft.sites, identifiers=(content.identifier,),
        )
        await self.store.create(record, actor=actor.name, action="draft", level=draft.level.value,
                                status=draft.status.value, role=actor.role)
        if not needs:
            record = await self._issue(record, None, actor)
        return record

    @staticmethod
    def _ttl(expires: datetime, now: datetime) -> int:
        return max(60, int((expires - now).total_seconds()) + 3600)

    async def get(self, warning_id: str) -> WarningRecord:
        record = await self.store.get(warning_id)
        if record is None:
            raise NotFound("not found", f"no warning {warning_id}")
        return record

    async def approve(self, warning_id: str, actor: Actor, *, override: bool = False, reason: str = "") -> WarningRecord:
        """The second person's approval (审签); an admin override needs a written reason and is loudly audited."""
        record = await self.get(warning_id)
        if record.state is not WarningState.PENDING_APPROVAL:
            raise Conflict("not pending approval", f"the warning is {record.state.value}")
        if override:
            if actor.role != "admin":
                raise Forbidden("forbidden", "only an admin may override the two-person rule")
            if len(reason.strip()) < 10:
                raise BadRequest("invalid override", "give the reason in writing (at least 10 characters)")
        elif actor.role not in ("approver", "admin"):
            raise Forbidden("forbidden", f"role {actor.role!r} may not approve")
        elif actor.name == record.drafter:
            raise Conflict("cannot approve own draft", "审签须由起草人以外的人进行 a second person must approve")
        now = self.clock.now()
        approved = record.with_(approver=actor.name, override_reason=reason.strip() if override else None,
                                updated_at=now)
        approved = await self.store.replace(record, approved, actor=actor.name,
                                            action="override" if override else "approve",
                                            **({"reason": reason.strip(), "drafter": record.drafter} if override
                                               else {"drafter": record.drafter}))
        if override:
            logger.warning("two-person rule overridden by %s for warning %s", actor.name, warning_id)
        previous = await self._previous_issued(approved)
        return await self._issue(approved, previous, actor)

    async def _previous_issued(self, record: WarningRecord) -> WarningRecord | None:
        if record.issued_version == 0:
            return None
        content = await self.store.version_content(record.id, record.issued_version)
        return record.with_(version=record.issued_version, content=content) if content else None

    async def _issue(self, record: WarningRecord, previous: WarningRecord | None, actor: Actor) -> WarningRecord:
        if record.content.status in (Status.TEST, Status.DRAFT):
            # Test and Draft never reach a provider: recorded, not sent
            done = record.with_(state=WarningState.ACTIVE, issued_version=record.version, updated_at=self.clock.now())
            return await self.store.replace(record, done, actor=actor.name, action="issue", sent=False,
                                            why=f"status {record.content.status.value} is never sent")
        issued = record.with_(state=WarningState.DISPATCHING, issued_version=record.version,
                              updated_at=self.clock.now())
        issued = await self.store.replace(record, issued, actor=actor.name, action="issue")
        if previous is not None:
            await self.dispatch.withdraw(issued, "superseded")
        await self.dispatch.issue(issued, previous)
        return issued

    async def update(self, warning_id: str, body: Any, actor: Actor) -> WarningRecord:
        """A new version (CAP Update): everyone in the old and the new audience gets it."""
        record = await self.get(warning_id)
        if record.state in CLOSED_STATES:
            raise Conflict("warning closed", f"the warning is {record.state.value}")
        now = self.clock.now()
        draft = parse_draft(body, event_types=self.event_types, roles=self.roles, now=now)
        expires = self._expiry(draft, now)
        content = build_content(draft, identifier=await self._identifier(now), sender=str(self.issuer["sender"]),
                                sender_name=str(self.issuer["name"]), now=now, expires=expires,
                                msg_type=MsgType.UPDATE, references=await self._references(record))
        if content.is_exercise != record.is_exercise:
            raise Conflict("status mismatch", "an update cannot turn a drill into a live warning or back")
        raises_into_approval = (self.policy.needs_approval(draft.level.value)
                                and draft.level.rank > record.level.rank and draft.status is not Status.TEST)
        pending = raises_into_approval or record.state is WarningState.PENDING_APPROVAL
        updated = record.with_(
            version=record.version + 1, content=content, updated_at=now, expires_at=expires, roles=draft.roles,
            sites=draft.sites, identifiers=(*record.identifiers, content.identifier), approver=None,
            override_reason=None, drafter=actor.name if pending else record.drafter,
            state=WarningState.PENDING_APPROVAL if pending else record.state,
        )
        updated = await self.store.replace(record, updated, actor=actor.name, action="update",
                                           level=draft.level.value, pending_approval=pending)
        if pending:
            return updated
        return await self._issue(updated, await self._previous_issued(updated), actor)

    async def _references(self, record: WarningRecord) -> tuple[Reference, ...]:
        refs = []
        for version in range(1, record.version + 1):
            content = await self.store.version_content(record.id, version)
            if content is not None:
                refs.append(Reference(content.sender, content.identifier, content.sent))
        return tuple(refs)

    async def cancel(self, warning_id: str, actor: Actor, *, reason: str = "") -> WarningRecord:
        """解除: everyone who was sent the warning is told; nothing more of it goes out."""
        record = await self.get(warning_id)
        if record.state in CLOSED_STATES:
            raise Conflict("warning closed", f"the warning is already {record.state.value}")
        now = self.clock.now()
        old = record.content
        content = old.with_(identifier=await self._identifier(now), sent=now.astimezone(CN_TZ).replace(microsecond=0),
                            msg_type=MsgType.CANCEL, references=await self._references(record),
                            note=reason or None)
        cancelled = record.with_(version=record.version + 1, content=content, state=WarningState.CANCELLED,
                                 updated_at=now, identifiers=(*record.identifiers, content.identifier))
        cancelled = await self.store.replace(record, cancelled, actor=actor.name, action="cancel", reason=reason,
                                             was=record.state.value)
        await self.dispatch.withdraw(cancelled, "cancelled")
        if record.issued_version > 0 and record.content.status not in (Status.TEST, Status.DRAFT):
            await self.dispatch.issue(cancelled, await self._previous_issued(cancelled))
        return cancelled

    async def expire_due(self) -> list[str]:
        """Close every warning whose time is up; returns their ids."""
        now = self.clock.now()
        done = []
        for wid in await self.store.due_for_expiry(now):
            record = await self.store.get(wid)
            if record is None or record.closed or record.expires_at > now:
                continue
            try:
                expired = await self.store.replace(record, record.with_(state=WarningState.EXPIRED, updated_at=now),
                                                   actor="system", action="expire")
            except Conflict:
                continue
            await self.dispatch.withdraw(expired, "expired")
            done.append(wid)
        return done

    async def mark_active(self, warning_id: str, version: int) -> None:
        """Dispatching → active once every delivery of the version is handed to a provider."""
        record = await self.store.get(warning_id)
        if record is None or record.state is not WarningState.DISPATCHING or record.version != version:
            return
        try:
            await self.store.replace(record, record.with_(state=WarningState.ACTIVE, updated_at=self.clock.now()),
                                     actor="system", action="issue", dispatched=True)
        except Conflict:
            pass

    async def reach_late(self, warning_id: str, accepted: Sequence[Row]) -> None:
        """Worker hook: deliveries of an older version were accepted after a newer version was planned (they were
        in flight); plan the newer version (update or cancellation) for those people too."""
        handed = [r for r in accepted if r.msg_type in ("alert", "update")]
        if not handed:
            return
        record = await self.store.get(warning_id)
        if record is None:
            return
        late = [r for r in handed if r.delivery.version < record.version]
        if not late or record.issued_version == 0 or record.content.status in (Status.TEST, Status.DRAFT):
            return
        # a cancellation goes to everyone handed the warning; an update only once it is the live version (one
        # waiting for approval is planned at approval, and sees these people then)
        if record.state is WarningState.CANCELLED or (
                record.state in LIVE_STATES and record.issued_version == record.version):
            await self.dispatch.reach_late(record, late)

    # ---- CAP from feeds and peers ----------------------------------------------------------
    async def ingest(self, data: bytes, actor: Actor, *, feed: str | None = None, auto_issue: bool = True
                     ) -> IngestResult:
        """Take in a CAP document: dedup by sender + identifier, then alert, update or cancel."""
        content = parse_cap(data, event_types=self.event_types)
        now = self.clock.now()
        wid = f"w{now.astimezone(CN_TZ):%Y%m%d}{secrets.token_hex(4)}"
        seen = await self.store.claim_cap(content.sender, content.identifier, wid, DEDUP_TTL_S)
        if seen is not None:
            await self.audit.record(seen, "duplicate", actor.name, identifier=content.identifier, feed=feed)
            return IngestResult(id=seen, duplicate=True)
        try:
            return await self._ingest_new(content, wid, actor, feed, auto_issue, now)
        except Exception:
            await self.store.release_cap(content.sender, content.identifier)
            raise

    async def _ingest_new(self, content: EarlyWarning, wid: str, actor: Actor, feed: str | None, auto_issue: bool,
                          now: datetime) -> IngestResult:
        if content.msg_type in (MsgType.UPDATE, MsgType.CANCEL):
            target = None
            for ref in content.references:
                target = await self.store.by_identifier(ref.identifier)
                if target:
                    break
            if target is not None:
                return await self._ingest_followup(target, content, actor)
            if content.msg_type is MsgType.CANCEL:
                await self.store.release_cap(content.sender, content.identifier)
                return IngestResult(id=None, duplicate=False, note="cancel for a warning never received: ignored")
        if content.msg_type not in (MsgType.ALERT, MsgType.UPDATE):
            raise BadRequest("unsupported msgType", f"{content.msg_type.value} messages are not taken in")
        if content.level is None:
            raise BadRequest("invalid CAP document", [{"path": "alert/info/severity",
                                                       "reason": "no warning level (severity Unknown)"}])
        level_policy = self.policy.for_level(content.level.value)
        expires = content.expires or now + timedelta(seconds=level_policy.default_expiry_s)
        if expires <= now:
            raise BadRequest("expired", "the CAP message has already expired")
        hold = not auto_issue or content.status is Status.DRAFT
        record = WarningRecord(
            id=wid, version=1, state=WarningState.PENDING_APPROVAL if hold else WarningState.DISPATCHING,
            content=content, origin="feed" if feed else "api", created_at=now, updated_at=now, expires_at=expires,
            reply_code=await self.store.new_reply_code(wid, self._ttl(expires, now)), drafter=f"feed:{feed or actor.name}",
            identifiers=(content.identifier,), feed=feed,
        )
        await self.store.create(record, actor=actor.name, action="ingest", identifier=content.identifier,
                                sender=content.sender, feed=feed, status=content.status.value)
        if not hold:
            record = await self._issue(record, None, actor)
        return IngestResult(id=record.id, duplicate=False, state=record.state.value)

    async def _ingest_followup(self, warning_id: str, content: EarlyWarning, actor: Actor) -> IngestResult:
        record = await self.get(warning_id)
        if record.state in CLOSED_STATES:
            raise Conflict("warning closed", f"the warning it refers to is {record.state.value}")
        now = self.clock.now()
        closing = content.msg_type is MsgType.CANCEL
        expires = content.expires or record.expires_at
        nxt = record.with_(version=record.version + 1, content=content, updated_at=now, expires_at=expires,
                           identifiers=(*record.identifiers, content.identifier),
                           state=WarningState.CANCELLED if closing else record.state)
        nxt = await self.store.replace(record, nxt, actor=actor.name, action="cancel" if closing else "update",
                                       identifier=content.identifier, via="cap")
        if closing:
            await self.dispatch.withdraw(nxt, "cancelled")
            if record.issued_version > 0:
                await self.dispatch.issue(nxt, await self._previous_issued(nxt))
        elif record.state is not WarningState.PENDING_APPROVAL:
            nxt = await self._issue(nxt, await self._previous_issued(nxt), actor)
        return IngestResult(id=nxt.id, duplicate=False, state=nxt.state.value)
