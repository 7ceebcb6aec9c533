"""The warning lifecycle: draft, approve (two-person rule), issue, update, cancel, expire, CAP ingest.

A person's request is decided on the record as read, and written with a compare-and-set. When the record
changed meanwhile (a worker marked it active, the planning noted its progress, another person acted), the
request is decided again on the fresh record: the person's own preconditions are checked again, so a 409
only ever says something about people (a cancelled warning, a version no longer the one reviewed, an
approval someone else gave), never that the machine was busy.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from warning.approval import NEVER_SENT, REJECT_ROLES, check_approvable, check_rejectable, update_waits
from warning.audience import NO_RECIPIENTS
from warning.audit import AuditLog
from warning.cap import parse_cap
from warning.cap_emit import MAX_SERIAL, make_identifier
from warning.clock import Clock
from warning.delivery_store import Row
from warning.drafting import CN_TZ, Draft, build_content, parse_draft
from warning.errors import BadRequest, Conflict, EarlyWarningError, Forbidden, NotFound, TooManyRequests
from warning.model import EarlyWarning, MsgType, Reference, Status, WarningState
from warning.places import PART, Places, resolve_areas
from warning.policy import LEVELS, Policy
from warning.record import CLOSED_STATES, LIVE_STATES, WarningRecord
from warning.reference import EventType
from warning.warning_store import StaleRecord, Then, WarningStore
from warning.wording import mark_change, with_sender_name

logger = logging.getLogger(__name__)
#: CAP messages are remembered this long for deduplication (push and poll of the same document)
DEDUP_TTL_S = 30 * 86400
#: how long a message waits for a free identifier serial (ten per second per unit) before it is refused
SERIAL_WAIT_S = 3
#: how often a person's change is decided again when the record keeps changing under it (each retry means
#: some other change went through, so this is only reached under a storm of changes to one warning)
CAS_ATTEMPTS = 50
_STATE_ZH = {WarningState.CANCELLED: "已解除", WarningState.EXPIRED: "已过期", WarningState.SUPERSEDED: "已被取代",
             WarningState.REJECTED: "已驳回"}
#: the longest written reason of a rejection
MAX_REASON_CHARS = 500


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


class Unfinished(EarlyWarningError):
    """A change was stored but planning its deliveries failed midway; the housekeeping finishes the planning.

    Callers answer with `record` (its id and state), so nobody sends the request again into a double send.
    """

    def __init__(self, record: WarningRecord) -> None:
        self.record = record
        super().__init__(f"warning {record.id} v{record.version} stored; planning unfinished")


@dataclass(frozen=True, slots=True)
class Change:
    """What a request makes of the record it was decided on, and what follows once it is written."""

    after: WarningRecord
    action: str
    detail: Mapping[str, object] = field(default_factory=dict)
    then: Then = ()
    #: plan the deliveries of `after.version` once written
    plan: bool = False
    #: stop what is still queued of earlier versions, for this reason
    withdraw: str | None = None


Decide = Callable[[WarningRecord], Awaitable[Change]]


class WarningService:
    """Every change to a warning goes through here, recorded with who and when."""

    def __init__(self, *, store: WarningStore, audit: AuditLog, policy: Policy, event_types: Mapping[str, EventType],
                 roles: Mapping[str, Any], issuer: Mapping[str, Any], dispatch: Dispatch, clock: Clock,
                 places: Places | None = None, reaches: Callable[[WarningRecord], Awaitable[bool]] | None = None
                 ) -> None:
        self.store, self.audit, self.policy = store, audit, policy
        self.event_types, self.roles, self.issuer = event_types, roles, issuer
        self.dispatch, self.clock = dispatch, clock
        #: the region tree's names: places are named in areaDesc, and a feed's areaDesc names are resolved
        self.places = places or Places({})
        #: whether a version reaches anyone (None: not checked); one that reaches nobody waits, never sent
        self.reaches = reaches

    # ---- shared steps ------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh warning id (the API reserves one per Idempotency-Key before creating)."""
        return f"w{self.clock.now().astimezone(CN_TZ):%Y%m%d}{secrets.token_hex(4)}"

    async def _identifier(self, now: datetime) -> tuple[str, datetime]:
        """A GB/T 35965.1 identifier for a message of ours made at `now`, and the time it stands for (the message's
        `sent`). Its serial N is one digit, so a unit issues at most ten messages in one second: an eleventh waits
        for the next second (on the service's clock), and after SERIAL_WAIT_S seconds of waiting is refused (429,
        Retry-After: 1)."""
        code, unit = str(self.issuer.get("code", "000000")), str(self.issuer.get("unit", "00000000"))
        for waited_s in range(SERIAL_WAIT_S + 1):
            local = now.astimezone(CN_TZ).replace(microsecond=0)
            serial = await self.store.next_serial(code + unit, f"{local:%Y%m%d%H%M%S}")
            if serial <= MAX_SERIAL:
                return make_identifier(code, unit, local, serial), now
            if waited_s == SERIAL_WAIT_S:
                break
            await self.clock.sleep(1 - now.microsecond / 1e6)
            now = self.clock.now()
        raise TooManyRequests("too many messages this second", "本单位每秒最多发布10条预警信息（GB/T 35965.1 标识序号为"
                              "0-9），请稍后重试 at most ten messages per second per issuing unit (the identifier's "
                              "serial is one digit): send it again in a moment", retry_after_s=1)

    def _area_desc(self, draft: Draft) -> str:
        """The area by name for <areaDesc>: the places of its codes, else a part of the office's county."""
        named = self.places.describe(draft.areas, max_chars=None) if draft.areas else ""
        county = self.places.name(str(self.issuer.get("code", "")))
        return named or (county + PART if county else "")

    async def _problem(self, record: WarningRecord) -> str:
        """NO_RECIPIENTS when the version would be sent and reaches nobody, with nobody reached by an earlier one;
        "" otherwise. Such a version waits in pending_approval: it leaves by an update that reaches someone, by an
        approval once someone is in its area, or by a cancellation."""
        if (self.reaches is None or record.content.status in NEVER_SENT or record.issued_version > 0
                or record.msg_type is MsgType.CANCEL or await self.reaches(record)):
            return ""
        logger.warning("warning %s v%d reaches nobody (no contact or device in its area): it waits in pending_approval",
                       record.id, record.version)
        return NO_RECIPIENTS

    def _expiry(self, draft: Draft, now: datetime) -> datetime:
        return draft.expires or now + timedelta(seconds=self.policy.for_level(draft.level.value).default_expiry_s)

    def parse(self, body: Any, now: datetime) -> Draft:
        """A person's draft body checked against the reference data (400 with every problem)."""
        return parse_draft(body, event_types=self.event_types, roles=self.roles, now=now)

    def compose(self, draft: Draft, *, identifier: str, now: datetime, msg_type: MsgType = MsgType.ALERT,
                references: Sequence[Reference] = ()) -> tuple[EarlyWarning, datetime]:
        """The CAP content of a manual draft and its expiry: what a draft, an update and the preview all send."""
        expires = self._expiry(draft, now)
        return build_content(draft, identifier=identifier, sender=str(self.issuer["sender"]),
                             sender_name=str(self.issuer["name"]), now=now, expires=expires, msg_type=msg_type,
                             references=references, area_desc=self._area_desc(draft)), expires

    def waits_for_approval(self, draft: Draft) -> bool:
        """Whether a new manual warning like `draft` waits for a second person."""
        return self.policy.needs_approval(draft.level.value) and draft.status not in NEVER_SENT

    @staticmethod
    def _ttl(expires: datetime, now: datetime) -> int:
        return max(60, int((expires - now).total_seconds()) + 3600)

    def _issued(self, record: WarningRecord, now: datetime) -> Change:
        """`record` made the live version: sent, unless its status is never sent."""
        record = record.with_(problem="")
        if record.content.status in NEVER_SENT:
            # Test and Draft never reach a provider: recorded, not sent
            done = record.with_(state=WarningState.ACTIVE, issued_version=record.version, submitted_version=0,
                                updated_at=now)
            return Change(done, "", then=(("issue", {"sent": False,
                                                     "why": f"status {record.content.status.value} is never sent"}),))
        issued = record.with_(state=WarningState.DISPATCHING, issued_version=record.version, submitted_version=0,
                              updated_at=now)
        return Change(issued, "", then=(("issue", {}),), plan=True)

    async def _apply(self, warning_id: str, actor: Actor, decide: Decide) -> WarningRecord:
        """Decide on the stored record and compare-and-set; decide again on the fresh record when it moved."""
        for _ in range(CAS_ATTEMPTS):
            before = await self.get(warning_id)
            change = await decide(before)
            try:
                await self.store.replace(before, change.after, actor=actor.name, action=change.action,
                                         then=change.then, plan=change.plan, **change.detail)
            except StaleRecord:
                continue
            await self._follow_through(change, before)
            return change.after
        raise Conflict("busy", "预警正被频繁更改，请稍后重试 the warning keeps changing; try again in a moment")

    async def _follow_through(self, change: Change, before: WarningRecord | None) -> None:
        """After the write: stop what is stale, plan what is new (for those who had the version live `before` too);
        a failure here leaves a stored change, which the housekeeping finishes."""
        try:
            if change.withdraw:
                await self.dispatch.withdraw(change.after, change.withdraw)
            if change.plan:
                previous = await self._previous_issued(before) if before is not None else None
                await self.dispatch.issue(change.after, previous)
        except Exception as exc:
            logger.exception("warning %s v%d stored, but planning failed: the housekeeping finishes it",
                             change.after.id, change.after.version)
            raise Unfinished(change.after) from exc

    async def _previous_issued(self, record: WarningRecord) -> WarningRecord | None:
        if record.issued_version == 0:
            return None
        content = await self.store.version_content(record.id, record.issued_version)
        return record.with_(version=record.issued_version, content=content) if content else None

    async def _references(self, record: WarningRecord) -> tuple[Reference, ...]:
        refs = []
        for version in range(1, record.version + 1):
            content = await self.store.version_content(record.id, version)
            if content is not None:
                refs.append(Reference(content.sender, content.identifier, content.sent))
        return tuple(refs)

    async def get(self, warning_id: str) -> WarningRecord:
        record = await self.store.get(warning_id)
        # a registry check's carrier record (warning.registry_check) is no warning: not one to read or change here
        if record is None or record.origin == "registry_check":
            raise NotFound("not found", f"no warning {warning_id}")
        return record

    @staticmethod
    def _closed(record: WarningRecord) -> Conflict:
        return Conflict("warning closed", f"预警{_STATE_ZH.get(record.state, '')} the warning is {record.state.value}")

    # ---- manual warnings -----------------------------------------------------------------
    async def draft(self, body: Any, actor: Actor, *, warning_id: str | None = None) -> WarningRecord:
        """A new manual warning: waits for approval at the levels the policy marks, else goes out."""
        now = self.clock.now()
        draft = self.parse(body, now)
        identifier, now = await self._identifier(now)
        content, expires = self.compose(draft, identifier=identifier, now=now)
        wid = warning_id or self.new_id()
        needs = self.waits_for_approval(draft)
        feed = actor.name if actor.role == "feed" else None  # a gauge's draft: drafted by its feed
        record = WarningRecord(
            id=wid, version=1, state=WarningState.PENDING_APPROVAL, submitted_version=1,
            content=content, origin="feed" if feed else "manual", created_at=now, updated_at=now, expires_at=expires,
            reply_code=await self.store.new_reply_code(wid, self._ttl(expires, now)), drafter=_drafter(actor),
            roles=draft.roles, sites=draft.sites, identifiers=(content.identifier,), feed=feed,
        )
        problem = await self._problem(record)
        record = record.with_(problem=problem)
        change = Change(record, "draft") if needs or problem else self._issued(record, now)
        await self.store.create(change.after, actor=actor.name, action="draft", then=change.then, plan=change.plan,
                                level=draft.level.value, status=draft.status.value, role=actor.role,
                                **({"problem": problem} if problem else {}))
        await self._follow_through(change, None)
        return change.after

    async def approve(self, warning_id: str, actor: Actor, *, version: int | None = None, override: bool = False,
                      reason: str = "") -> WarningRecord:
        """The second person's approval (审签) of the version they reviewed; an admin override needs a written
        reason and is loudly audited."""
        if override:
            if actor.role != "admin":
                raise Forbidden("forbidden", "only an admin may override the two-person rule")
            if len(reason.strip()) < 10:
                raise BadRequest("invalid override", "give the reason in writing (at least 10 characters)")
        elif actor.role not in ("approver", "admin"):
            raise Forbidden("forbidden", f"role {actor.role!r} may not approve")

        async def decide(record: WarningRecord) -> Change:
            check_approvable(record, approver=actor.name, version=version, override=override)
            if await self._problem(record):
                raise Conflict("no recipients", "预警区域内没有任何接收人，请更新预警区域或解除预警 nobody is in the "
                                                "warning's area: update its area, or cancel it")
            now = self.clock.now()
            approved = record.with_(approver=actor.name, override_reason=reason.strip() if override else None,
                                    updated_at=now)
            issued = self._issued(approved, now)
            detail: dict[str, object] = {"drafter": record.drafter, "reviewed": version}
            if override:
                detail["reason"] = reason.strip()
            return Change(issued.after, "override" if override else "approve", detail, issued.then, issued.plan,
                          withdraw="superseded" if record.issued_version > 0 else None)

        record = await self._apply(warning_id, actor, decide)
        if override:
            logger.warning("two-person rule overridden by %s for warning %s", actor.name, warning_id)
        return record

    async def reject(self, warning_id: str, actor: Actor, *, reason: str, version: int | None = None
                     ) -> WarningRecord:
        """驳回: the version waiting for approval is refused with a reason. A new warning is closed as `rejected`;
        a refused update leaves the warning at the version people were sent (nothing is sent either way). An
        approver or admin may reject; the drafter may withdraw their own."""
        if actor.role not in REJECT_ROLES:
            raise Forbidden("forbidden", f"role {actor.role!r} may not reject")
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise BadRequest("invalid body", [{"field": "reason", "error": f"请写明驳回理由（1至{MAX_REASON_CHARS}字） "
                                                                           f"give the reason (1 to {MAX_REASON_CHARS} "
                                                                           "characters)"}])

        async def decide(record: WarningRecord) -> Change:
            check_rejectable(record, actor=actor.name, role=actor.role, version=version)
            now = self.clock.now()
            detail: dict[str, object] = {"reason": reason, "reviewed": version, "drafter": record.drafter,
                                         "rejected_version": record.version}
            if actor.name == record.drafter:
                detail["withdrawn"] = True
            live = await self._previous_issued(record)
            if live is None:
                return Change(record.with_(state=WarningState.REJECTED, submitted_version=0, updated_at=now),
                              "reject", detail)
            # an update refused: a new version restating the live one (its content, expiry, roles and sites)
            was = await self._live_fields(record)
            roles = record.roles
            if "roles" in was:
                roles = tuple(was["roles"]) if isinstance(was["roles"], list) else None
            restored = record.with_(
                version=record.version + 1, content=live.content, state=WarningState.ACTIVE, submitted_version=0,
                updated_at=now, expires_at=live.content.expires or record.expires_at, roles=roles,
                sites=tuple(was.get("sites") or record.sites), drafter=was.get("drafter") or record.drafter,
                approver=was.get("approver") or None, override_reason=None)
            return Change(restored, "reject", {**detail, "restored": live.version})

        return await self._apply(warning_id, actor, decide)

    async def _live_fields(self, record: WarningRecord) -> dict[str, Any]:
        """What the live version had besides its content, as the update that opened this round noted it."""
        for entry in reversed(await self.audit.entries(record.id)):
            if entry.action == "update" and isinstance(entry.detail.get("live"), dict):
                return dict(entry.detail["live"])
        return {}

    async def update(self, warning_id: str, body: Any, actor: Actor) -> WarningRecord:
        """A new version (CAP Update): everyone in the old and the new audience gets it."""
        now = self.clock.now()
        draft = self.parse(body, now)
        identifier, now = await self._identifier(now)

        async def decide(record: WarningRecord) -> Change:
            if record.state in CLOSED_STATES:
                raise self._closed(record)
            content, expires = self.compose(draft, identifier=identifier, now=now, msg_type=MsgType.UPDATE,
                                            references=await self._references(record))
            live = await self._previous_issued(record)
            content = mark_change(live.content if live is not None else record.content, content)
            if content.is_exercise != record.is_exercise:
                raise Conflict("status mismatch", "演练与正式预警不能互相转换 an update cannot turn a drill into a live "
                                                  "warning or back")
            waits = update_waits(self.policy, record, content, draft.roles, draft.sites)
            updated = record.with_(
                version=record.version + 1, content=content, updated_at=now, expires_at=expires, roles=draft.roles,
                sites=draft.sites, identifiers=(*record.identifiers, content.identifier), approver=None,
                override_reason=None, drafter=_drafter(actor) if waits else record.drafter)
            problem = await self._problem(updated)
            updated = updated.with_(problem=problem)
            detail: dict[str, object] = {"level": draft.level.value, "pending_approval": waits or bool(problem)}
            if problem:
                detail["problem"] = problem
            if waits and record.state is not WarningState.PENDING_APPROVAL:
                # what the live version had besides its content: a rejected update brings it back
                detail["live"] = {"roles": list(record.roles) if record.roles is not None else None,
                                  "sites": list(record.sites), "drafter": record.drafter, "approver": record.approver}
            if waits or problem:
                return Change(updated.with_(state=WarningState.PENDING_APPROVAL, submitted_version=(
                    record.submitted_version if record.state is WarningState.PENDING_APPROVAL else updated.version)),
                    "update", detail)
            issued = self._issued(updated, now)
            return Change(issued.after, "update", detail, issued.then, issued.plan,
                          withdraw="superseded" if record.issued_version > 0 else None)

        return await self._apply(warning_id, actor, decide)

    async def cancel(self, warning_id: str, actor: Actor, *, reason: str = "") -> WarningRecord:
        """解除: everyone who was sent the warning is told; nothing more of it goes out. Never waits."""
        identifier, now = await self._identifier(self.clock.now())

        async def decide(record: WarningRecord) -> Change:
            if record.state in CLOSED_STATES:
                raise self._closed(record)
            # the cancellation names what people were sent, not a version still waiting for approval
            live = await self._previous_issued(record)
            base = live.content if live is not None else record.content
            content = base.with_(identifier=identifier, sent=now.astimezone(CN_TZ).replace(microsecond=0),
                                 msg_type=MsgType.CANCEL, references=await self._references(record),
                                 note=reason or None)
            # a person's cancellation is the office's, also of a warning relayed from a feed
            content = with_sender_name(content, str(self.issuer["name"]))
            cancelled = record.with_(version=record.version + 1, content=content, state=WarningState.CANCELLED,
                                     updated_at=now, identifiers=(*record.identifiers, content.identifier),
                                     submitted_version=0, problem="")
            return Change(cancelled, "cancel", {"reason": reason, "was": record.state.value},
                          plan=live is not None and base.status not in NEVER_SENT, withdraw="cancelled")

        return await self._apply(warning_id, actor, decide)

    # ---- system changes ----------------------------------------------------------------------
    async def _system(self, warning_id: str, decide: Callable[[WarningRecord], WarningRecord | None], action: str,
                      **detail: Any) -> WarningRecord | None:
        """A change the system makes by itself: decided again on the fresh record whenever it moved meanwhile;
        None when there is nothing (more) to do."""
        for _ in range(CAS_ATTEMPTS):
            record = await self.store.get(warning_id)
            after = decide(record) if record is not None else None
            if record is None or after is None:
                return None
            try:
                return await self.store.replace(record, after, actor="system", action=action, **detail)
            except StaleRecord:
                continue
        logger.warning("warning %s: %s given up, the record kept changing", warning_id, action)
        return None

    async def expire_due(self) -> list[str]:
        """Close every warning whose time is up; returns their ids."""
        now = self.clock.now()
        done = []
        for wid in await self.store.due_for_expiry(now):
            expired = await self._system(wid, lambda r: None if r.closed or r.expires_at > now else r.with_(
                state=WarningState.EXPIRED, submitted_version=0, updated_at=now), "expire")
            if expired is not None:
                await self.dispatch.withdraw(expired, "expired")
                done.append(wid)
        return done

    async def mark_active(self, warning_id: str, version: int) -> None:
        """Dispatching → active once every delivery of the version is handed to a provider."""
        now = self.clock.now()
        await self._system(warning_id, lambda r: r.with_(state=WarningState.ACTIVE, updated_at=now) if (
            r.state is WarningState.DISPATCHING and r.version == version) else None, "issue", dispatched=True)

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
        if not late or record.issued_version == 0 or record.content.status in NEVER_SENT:
            return
        # a cancellation goes to everyone handed the warning; an update only once it is the live version (one
        # waiting for approval is planned at approval, and sees these people then)
        if record.state is WarningState.CANCELLED or (
                record.state in LIVE_STATES and record.issued_version == record.version):
            await self.dispatch.reach_late(record, late)

    # ---- CAP from feeds and peers ----------------------------------------------------------
    def _auto_levels(self, actor: Actor) -> frozenset[str]:
        """The levels a caller's CAP goes out at without a person: a feed's `[[feeds]] auto_issue`; anyone else
        (an admin) is a person, held to the level policy like a manual draft."""
        if actor.role == "feed":
            return self.policy.feed_auto_issue(actor.name)
        return frozenset(lv for lv in LEVELS if not self.policy.needs_approval(lv))

    async def ingest(self, data: bytes, actor: Actor, *, warning_id: str | None = None) -> IngestResult:
        """Take in a CAP document: dedup by sender + identifier, then alert, update or cancel. The feed is the
        caller's token: its name is the feed's name."""
        content = resolve_areas(parse_cap(data, event_types=self.event_types), self.places)
        now = self.clock.now()
        wid = warning_id or self.new_id()
        seen = await self.store.claim_cap(content.sender, content.identifier, wid, DEDUP_TTL_S)
        if seen is not None:
            await self.audit.record(seen, "duplicate", actor.name, identifier=content.identifier, feed=actor.name)
            return IngestResult(id=seen, duplicate=True)
        try:
            return await self._ingest_new(content, wid, actor, now)
        except Unfinished:
            raise  # stored: the claim stays, or the same document sent again would be sent out twice
        except Exception:
            await self.store.release_cap(content.sender, content.identifier)
            raise

    async def _ingest_new(self, content: EarlyWarning, wid: str, actor: Actor, now: datetime) -> IngestResult:
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
        level = _level_of(content)
        expires = content.expires or now + timedelta(seconds=self.policy.for_level(level).default_expiry_s)
        if expires <= now:
            raise BadRequest("expired", "the CAP message has already expired")
        hold = level not in self._auto_levels(actor) or content.status is Status.DRAFT
        record = WarningRecord(
            id=wid, version=1, state=WarningState.PENDING_APPROVAL, submitted_version=1, content=content,
            origin="feed" if actor.role == "feed" else "api", created_at=now, updated_at=now, expires_at=expires,
            reply_code=await self.store.new_reply_code(wid, self._ttl(expires, now)), drafter=_drafter(actor),
            identifiers=(content.identifier,), feed=actor.name,
        )
        problem = await self._problem(record)
        record = record.with_(problem=problem)
        change = Change(record, "ingest") if hold or problem else self._issued(record, now)
        await self.store.create(change.after, actor=actor.name, action="ingest", then=change.then, plan=change.plan,
                                identifier=content.identifier, sender=content.sender, feed=actor.name,
                                status=content.status.value, **({"problem": problem} if problem else {}))
        await self._follow_through(change, None)
        return IngestResult(id=wid, duplicate=False, state=change.after.state.value)

    async def _ingest_followup(self, warning_id: str, content: EarlyWarning, actor: Actor) -> IngestResult:
        """A CAP Update or Cancel of a warning this same sender brought in; an update obeys the same approval rules
        as a new warning at its level, a cancellation never waits."""
        original = await self.store.version_content(warning_id, 1)
        closing = content.msg_type is MsgType.CANCEL
        level = None if closing else _level_of(content)
        auto = self._auto_levels(actor)

        async def decide(record: WarningRecord) -> Change:
            if (record.origin == "manual" or record.feed != actor.name or original is None
                    or original.sender != content.sender):
                raise Conflict("not the same sender", "只能更新或解除同一来源发布的预警 a CAP Update or Cancel may only "
                                                      "follow warnings of its own sender (the same feed and CAP sender)")
            if record.state in CLOSED_STATES:
                raise self._closed(record)
            now = self.clock.now()
            nxt = record.with_(version=record.version + 1, content=content, updated_at=now,
                               identifiers=(*record.identifiers, content.identifier), approver=None,
                               override_reason=None)
            detail = {"identifier": content.identifier, "via": "cap"}
            if closing:
                return Change(nxt.with_(state=WarningState.CANCELLED, submitted_version=0, problem=""), "cancel", detail,
                              plan=record.issued_version > 0 and content.status not in NEVER_SENT,
                              withdraw="cancelled")
            live = await self._previous_issued(record)
            nxt = nxt.with_(expires_at=content.expires or record.expires_at,
                            content=mark_change(live.content if live is not None else record.content, content))
            problem = await self._problem(nxt)
            nxt = nxt.with_(problem=problem)
            if level not in auto or content.status is Status.DRAFT or problem:
                return Change(nxt.with_(state=WarningState.PENDING_APPROVAL, drafter=_drafter(actor),
                                        submitted_version=(record.submitted_version if record.state is
                                                           WarningState.PENDING_APPROVAL else nxt.version)),
                              "update", {**detail, "pending_approval": True, **({"problem": problem} if problem
                                                                                else {})})
            issued = self._issued(nxt, now)
            return Change(issued.after, "update", detail, issued.then, issued.plan,
                          withdraw="superseded" if record.issued_version > 0 else None)

        record = await self._apply(warning_id, actor, decide)
        return IngestResult(id=record.id, duplicate=False, state=record.state.value)


def _level_of(content: EarlyWarning) -> str:
    if content.level is None:
        raise BadRequest("invalid CAP document", [{"path": "alert/info/severity",
                                                   "reason": "no warning level (severity Unknown)"}])
    return content.level.value


def _drafter(actor: Actor) -> str:
    return f"feed:{actor.name}" if actor.role == "feed" else actor.name
