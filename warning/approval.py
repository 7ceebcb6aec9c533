"""The two-person rule (审签) as pure decisions: what must wait for a second person, and who may approve what."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from warning.errors import Conflict, Forbidden
from warning.model import EarlyWarning, Status, WarningState
from warning.policy import Policy
from warning.record import LIVE_STATES, WarningRecord

#: who may reject a version waiting for approval (an issuer only their own draft: a withdrawal)
REJECT_ROLES = ("approver", "admin", "issuer")
#: statuses that never reach a provider: a version in them is recorded, not sent, and needs nobody's approval
NEVER_SENT = frozenset({Status.TEST, Status.DRAFT})


def reach_of(content: EarlyWarning, roles: Sequence[str] | None, sites: Sequence[str]) -> tuple[Any, ...]:
    """What people receive and who receives it: the fields an update may not change unseen at an approval level."""
    info = content.info
    return (content.event_type, info.event if info else None, content.level,
            info.headline if info else None, info.description if info else None, info.instruction if info else None,
            content.region_codes, tuple((a.polygons, a.circles) for a in content.areas),
            tuple(roles) if roles is not None else None, tuple(sites), content.expires)


def update_waits(policy: Policy, record: WarningRecord, content: EarlyWarning, roles: Sequence[str] | None,
                 sites: Sequence[str]) -> bool:
    """Whether a manual update of `record` to `content` waits in pending_approval.

    It waits when its level needs approval and it would be sent, and either something is already waiting (the
    new version joins the round), or no approved live version stands behind it (the live one was Test or
    Draft), or it raises the level, or it changes what people receive or who receives it while the level's
    `approve_updates` is on.
    """
    level = policy.for_level((content.level or record.level).value)
    if not level.approval or content.status in NEVER_SENT:
        return False
    if record.state is WarningState.PENDING_APPROVAL or record.content.status in NEVER_SENT:
        return True
    if content.level is not None and content.level.rank > record.level.rank:
        return True
    return level.approve_updates and reach_of(record.content, record.roles, record.sites) != reach_of(
        content, roles, sites)


def check_approvable(record: WarningRecord, *, approver: str, version: int | None, override: bool) -> None:
    """Raise the person's conflict (409) when `approver` may not approve `record` as it stands now.

    `version` is the version the approver reviewed: it must be the one pending now. Without it, only the
    version first submitted in this round can be approved, so nobody approves an update they never saw.
    """
    if record.state is not WarningState.PENDING_APPROVAL:
        if record.approver and record.state in LIVE_STATES and record.issued_version == record.version:
            raise Conflict("already approved", f"第{record.version}版已由 {record.approver} 审签 version "
                                               f"{record.version} was already approved by {record.approver}")
        raise Conflict("not pending approval", f"预警不在待审签状态 the warning is {record.state.value}")
    _check_version(record, version, "approve")
    if not override and approver == record.drafter:
        raise Conflict("cannot approve own draft", "审签须由起草人以外的人进行 a second person must approve")


def _check_version(record: WarningRecord, version: int | None, what: str) -> None:
    if version is not None and version != record.version:
        raise Conflict("version changed", f"待审签的已是第{record.version}版，不是您审阅的第{version}版，请重新审阅 the "
                                          f"version pending now is {record.version}, not {version}: review it again")
    if version is None and record.version != record.submitted_version:
        raise Conflict("version changed", f"待审签的第{record.version}版不是最初提交的第{record.submitted_version}版，"
                                          f"请审阅后注明版本 the version pending now is {record.version}, not the one "
                                          f"first submitted ({record.submitted_version}): review it and {what} "
                                          f'with {{"version": {record.version}}}')


def check_rejectable(record: WarningRecord, *, actor: str, role: str, version: int | None) -> None:
    """Raise the person's conflict (409) when `actor` may not reject `record` now, or 403 when an issuer tries to
    reject someone else's draft. `version` is the version reviewed, as for an approval."""
    if role == "issuer" and actor != record.drafter:
        raise Forbidden("forbidden", "发布员只能撤回自己起草的预警 an issuer may only withdraw their own draft; "
                                     "rejecting is for approvers")
    if record.state is not WarningState.PENDING_APPROVAL:
        raise Conflict("not pending approval", f"预警不在待审签状态，不能驳回 the warning is {record.state.value}: "
                                               "only a version waiting for approval can be rejected")
    _check_version(record, version, "reject it")
