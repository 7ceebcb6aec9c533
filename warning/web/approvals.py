"""The approval inbox (审签) and the printable approval sheet (预警信息发布审批单).

The inbox lists what waits for a second person: the version under review, what changed since the version
before it, and the preview (audience and texts) of exactly that version. Approving posts the version
reviewed, so an update that arrived meanwhile is never approved unseen (409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from warning.audit import AuditEntry
from warning.coverage import coverage
from warning.errors import BadRequest
from warning.lifecycle import Unfinished
from warning.model import EarlyWarning, WarningState
from warning.preview import previewer_of
from warning.record import WarningRecord
from warning.web.bodies import read_form
from warning.web.dashboard import SESSION, WID, local_time, render, signed_in
from warning.web.keys import reference_key, services_key, session_key
from warning.web.routing import ApiRoutes
from warning.web.workbench import (
    FORM_ANSWERS,
    PAGE_ANSWERS,
    actor_of,
    check_csrf,
    done,
    html_errors,
    may_act,
)

routes = ApiRoutes("workbench")
#: how far back the inbox looks for warnings waiting (newest first)
INBOX_SCAN = 300
RECENT_REJECTED = 10
FIELDS = (("event", "预警类型", "event"), ("level", "级别", "level"), ("headline", "标题", "headline"),
          ("description", "内容", "description"), ("instruction", "防御指引", "instruction"),
          ("areas", "区域", "areas"), ("expires", "失效时间", "expires"), ("status", "性质", "status"))


def fields_of(content: EarlyWarning | None, names: Mapping[str, str]) -> dict[str, str]:
    """The fields a person reviews, as text (places by name, times in Beijing time)."""
    if content is None:
        return {}
    info = content.info
    return {"event": (info.event if info else "") or "", "level": content.level.zh if content.level else "",
            "headline": (info.headline if info else "") or "", "description": (info.description if info else "") or "",
            "instruction": (info.instruction if info else "") or "",
            "areas": "、".join(names.get(c, c) for c in content.region_codes),
            "expires": local_time(content.expires.isoformat()) if content.expires else "",
            "status": "演练" if content.is_exercise else ("正式" if content.status.value == "Actual" else
                                                           content.status.value)}


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[dict[str, str]]:
    """The fields that differ between two versions: label, before, after."""
    return [{"field": key, "zh": zh, "en": en, "before": before.get(key, ""), "after": after.get(key, "")}
            for key, zh, en in FIELDS if before.get(key, "") != after.get(key, "")]


def _names(request: web.Request) -> dict[str, str]:
    reference = request.app.get(reference_key)
    return {r.code: r.name for r in reference.regions} if reference is not None else {}


async def review_of(request: web.Request, record: WarningRecord) -> dict[str, Any]:
    """One inbox item: the version under review, its diff with the version before, its preview."""
    services = request.app[services_key]
    names = _names(request)
    now = fields_of(record.content, names)
    before = await services.warnings.version_content(record.id, record.version - 1) if record.version > 1 else None
    preview = await previewer_of(services).of_record(record)
    me = request[session_key].token
    return {"w": record.summary(), "fields": now, "diff": diff(fields_of(before, names), now) if before else None,
            "preview": preview, "mine": record.drafter == me.name,
            "base_version": record.version - 1 if before else None}


def _last(entries: Sequence[AuditEntry], *actions: str) -> AuditEntry | None:
    return next((e for e in reversed(entries) if e.action in actions), None)


@routes.get("/dashboard/approvals", summary="Workbench: warnings waiting for approval (待审签), recent rejections",
            roles=None, description=SESSION, responses={"303": PAGE_ANSWERS["303"]})
@html_errors
@signed_in(page=True)
async def inbox(request: web.Request) -> web.Response:
    services = request.app[services_key]
    records, _ = await services.warnings.list(limit=INBOX_SCAN)
    waiting = [r for r in records if r.state is WarningState.PENDING_APPROVAL]
    items = [await review_of(request, r) for r in reversed(waiting)]  # the longest waiting first
    rejected = []
    for r in [r for r in records if r.state is WarningState.REJECTED][:RECENT_REJECTED]:
        entry = _last(await services.audit.entries(r.id), "reject")
        rejected.append({"w": r.summary(), "by": entry.actor if entry else "", "at": entry.at if entry else "",
                         "reason": str(entry.detail.get("reason", "")) if entry else ""})
    return render(request, "dashboard/approvals.html", {"page": "approvals", "items": items, "rejected": rejected,
                                                        "pending_count": len(waiting)})


def _version(form: Mapping[str, Any]) -> int:
    raw = str(form.get("version", ""))
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("invalid form", [{"field": "version", "error": "缺少审阅的版本号 the version reviewed is "
                                                                       "missing"}])
    return int(raw)


@routes.post("/dashboard/warnings/{id}/approve", summary="Workbench: approve the version reviewed (form: csrf, "
             "version; admin: override, reason)", roles=None, params=[WID], description=SESSION,
             responses=FORM_ANSWERS)
@html_errors
@may_act("approve")
async def approve(request: web.Request) -> web.Response:
    form = await read_form(request)
    check_csrf(request, str(form.get("csrf", "")))
    override = bool(form.get("override"))
    try:
        record = await request.app[services_key].lifecycle.approve(
            request.match_info["id"], actor_of(request), version=_version(form), override=override,
            reason=str(form.get("reason", "")))
    except Unfinished as exc:
        record = exc.record
    raise done(request, record.id, "approved" if record.state is not WarningState.ACTIVE else "recorded")


@routes.post("/dashboard/warnings/{id}/reject", summary="Workbench: reject the version reviewed with a reason, or "
             "withdraw one's own draft (form: csrf, version, reason)", roles=None, params=[WID], description=SESSION,
             responses=FORM_ANSWERS)
@html_errors
@signed_in(page=True, roles=("approver", "issuer"))
async def reject(request: web.Request) -> web.Response:
    form = await read_form(request)
    check_csrf(request, str(form.get("csrf", "")))
    record = await request.app[services_key].lifecycle.reject(
        request.match_info["id"], actor_of(request), reason=str(form.get("reason", "")), version=_version(form))
    raise done(request, record.id, "withdrawn" if record.drafter == request[session_key].token.name else "rejected")


async def sheet_of(request: web.Request, record: WarningRecord) -> dict[str, Any]:
    """The approval sheet's facts: who drafted and approved which version when, its content and audience."""
    services = request.app[services_key]
    entries = await services.audit.entries(record.id)
    version = record.issued_version or record.version
    content = await services.warnings.version_content(record.id, version) or record.content
    drafted = next((e for e in entries if e.action in ("draft", "ingest", "update") and e.detail.get("version") == version),
                   None)
    approved = next((e for e in entries if e.action in ("approve", "override")
                     and e.detail.get("version") == version), None)
    issued = next((e for e in entries if e.action == "issue" and e.detail.get("version") == version), None)
    counts = await services.deliveries.counts(record.id)
    doc = coverage(counts)
    if doc["targeted"]:
        audience = {"people": doc["targeted"], "by_region": {k: v.get("targeted", 0) for k, v in doc["by_region"].items()
                                                               if len(k) == 9},
                    "by_role": {k: v.get("targeted", 0) for k, v in doc["by_role"].items()}, "planned": False}
    else:
        preview = await previewer_of(services).of_record(record.with_(version=version, content=content))
        audience = {**preview["audience"], "planned": True}
    return {"w": record.summary(), "version": version, "fields": fields_of(content, _names(request)),
            "drafted": drafted, "approved": approved, "issued": issued, "audience": audience,
            "issuer": services.settings.section("issuer"), "roles_of": record.roles}


@routes.get("/dashboard/warnings/{id}/approval-form", summary="Workbench: the printable 预警信息发布审批单",
            roles=None, params=[WID], description=SESSION, responses=PAGE_ANSWERS)
@html_errors
@signed_in(page=True)
async def approval_sheet(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    reference = request.app.get(reference_key)

    def role_zh(key: str) -> str:
        return reference.roles.label(key, "zh") if reference is not None else key

    return render(request, "dashboard/approval_form.html", {**await sheet_of(request, record), "role_zh": role_zh,
                                                            "names": _names(request), "page": "warnings",
                                                            "now": request.app[services_key].clock.now().isoformat()})


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
