"""A warning's record: its CAP content plus who drafted and approved it, its version and state."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warning.model import EarlyWarning, Level, MsgType, WarningState

#: states in which nothing more is sent
CLOSED_STATES = frozenset({WarningState.SUPERSEDED, WarningState.CANCELLED, WarningState.EXPIRED,
                           WarningState.REJECTED})
#: states in which the warning's messages may still go out
LIVE_STATES = frozenset({WarningState.DISPATCHING, WarningState.ACTIVE})


@dataclass(frozen=True, slots=True)
class WarningRecord:
    """The service's record of one warning, across its versions (alert → updates → cancel)."""

    id: str
    version: int
    state: WarningState
    content: EarlyWarning
    origin: str  #: manual | feed | api
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    reply_code: str
    drafter: str | None = None
    approver: str | None = None
    override_reason: str | None = None
    roles: tuple[str, ...] | None = None  #: targeted roles; None: every role
    sites: tuple[str, ...] = ()  #: hazard sites whose keepers are targeted
    identifiers: tuple[str, ...] = ()  #: the CAP identifier of every version, oldest first
    feed: str | None = None
    #: the version that was last sent out (0: none yet); a pending update keeps the older one live
    issued_version: int = 0
    #: the version first submitted in the current approval round (an approval without `version` takes only
    #: that one); 0 when nothing waits
    submitted_version: int = 0
    #: why the version waits although nobody has to approve it: "no_recipients" (its audience is empty); "" none
    problem: str = ""

    @property
    def level(self) -> Level:
        return self.content.level or Level.BLUE

    @property
    def msg_type(self) -> MsgType:
        return self.content.msg_type

    @property
    def is_exercise(self) -> bool:
        return self.content.is_exercise

    @property
    def closed(self) -> bool:
        return self.state in CLOSED_STATES

    def with_(self, **changes: Any) -> WarningRecord:
        return dataclasses.replace(self, **changes)

    def to_hash(self) -> dict[str, str]:
        """The Redis hash form."""
        return {
            "id": self.id, "version": str(self.version), "state": self.state.value,
            "content": json.dumps(self.content.to_json(), ensure_ascii=False), "origin": self.origin,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat(), "reply_code": self.reply_code,
            "drafter": self.drafter or "", "approver": self.approver or "",
            "override_reason": self.override_reason or "",
            "roles": json.dumps(list(self.roles)) if self.roles is not None else "",
            "sites": json.dumps(list(self.sites)), "identifiers": json.dumps(list(self.identifiers)),
            "feed": self.feed or "", "issued_version": str(self.issued_version),
            "submitted_version": str(self.submitted_version), "problem": self.problem, "level": self.level.value,
            "status": self.content.status.value,
        }

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> WarningRecord:
        return cls(
            id=h["id"], version=int(h["version"]), state=WarningState(h["state"]),
            content=EarlyWarning.from_json(json.loads(h["content"])), origin=h["origin"],
            created_at=datetime.fromisoformat(h["created_at"]), updated_at=datetime.fromisoformat(h["updated_at"]),
            expires_at=datetime.fromisoformat(h["expires_at"]), reply_code=h["reply_code"],
            drafter=h.get("drafter") or None, approver=h.get("approver") or None,
            override_reason=h.get("override_reason") or None,
            roles=tuple(json.loads(h["roles"])) if h.get("roles") else None,
            sites=tuple(json.loads(h.get("sites") or "[]")), identifiers=tuple(json.loads(h.get("identifiers") or "[]")),
            feed=h.get("feed") or None, issued_version=int(h.get("issued_version") or 0),
            submitted_version=int(h.get("submitted_version") or 0), problem=h.get("problem") or "",
        )

    def summary(self) -> dict[str, Any]:
        """The API's view of the record."""
        info = self.content.info
        return {
            "id": self.id, "version": self.version, "state": self.state.value, "level": self.level.value,
            "level_zh": self.level.zh, "event_type": self.content.event_type,
            "event": info.event if info else None, "headline": info.headline if info else None,
            "status": self.content.status.value, "msg_type": self.content.msg_type.value,
            "exercise": self.is_exercise, "origin": self.origin, "feed": self.feed,
            "identifier": self.content.identifier, "identifiers": list(self.identifiers),
            "sender": self.content.sender, "drafter": self.drafter, "approver": self.approver,
            "override_reason": self.override_reason, "roles": list(self.roles) if self.roles is not None else None,
            "sites": list(self.sites), "areas": list(self.content.region_codes),
            "reply_code": self.reply_code, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(), "expires_at": self.expires_at.isoformat(),
            "issued_version": self.issued_version, "submitted_version": self.submitted_version,
            "problem": self.problem or None,
        }
