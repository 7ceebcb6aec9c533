"""A warning's page (跟踪): coverage live, the actions its reader may take, and the follow-through panels.

The panels (the unconfirmed, 叫应, field reports, the chart, the map, the coverage tables) are rendered by the
macros of `templates/dashboard/_panels.html`, on load and again as fragments the page fetches when the live
coverage moves, so the page never asks its reader to reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from warning.audit import AuditEntry
from warning.record import WarningRecord
from warning.web.dashboard import (
    EXPORTS,
    RECORD_ROLES,
    ROLE_NAMES,
    SESSION,
    STATE_ZH,
    WID,
    _document,
    _lang,
    may,
    render,
    signed_in,
)
from warning.web.dashboard_live import grouped, percent
from warning.web.followup_view import ACTION_ZH, FollowView, ReportRules
from warning.web.keys import reference_key, report_rules_key, services_key, session_key
from warning.web.routing import ApiRoutes
from warning.web.workbench import DATA_ANSWERS, DONE, PAGE_ANSWERS

routes = ApiRoutes("workbench")
PANELS = ("unconfirmed", "calls", "reports", "chart", "map", "tables")


def _last(entries: Sequence[AuditEntry], *actions: str) -> AuditEntry | None:
    return next((e for e in reversed(entries) if e.action in actions), None)


async def panel_context(request: web.Request, record: WarningRecord) -> dict[str, Any]:
    """What the panels' macros render: the follow-through view, coverage grouped, labels."""
    services = request.app[services_key]
    reference = request.app.get(reference_key)
    viewer = request[session_key].token.role == "viewer"
    view = await FollowView(services, record, reference=reference, viewer=viewer,
                            rules=request.app[report_rules_key]).build()
    doc = await _document(request, record.id)
    names = {r.code: r.name for r in reference.regions} if reference is not None else {}

    def role_zh(key: str) -> str:
        return reference.roles.label(key, "en" if _lang(request) == "en" else "zh") if reference is not None else key

    return {"view": view, "doc": doc, "g": grouped(doc, reference), "names": names, "role_zh": role_zh,
            "pct": percent, "action_zh": ACTION_ZH, "lang": _lang(request), "w": record.summary()}


@routes.get("/dashboard/warnings/{id}", summary="Dashboard: one warning's coverage, actions, 叫应, reports, chart, map",
            roles=None, params=[WID], description=SESSION, responses=PAGE_ANSWERS)
@signed_in(page=True)
async def warning_page(request: web.Request) -> web.Response:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    session = request[session_key]
    entries = await services.audit.entries(record.id)
    rejection = _last(entries, "reject")
    if rejection is not None and not (record.state.value == "rejected" or rejection.detail.get("version") == record.version):
        rejection = None  # an older rejected update, since followed by other changes
    approved = _last(entries, "approve", "override")
    ctx = await panel_context(request, record)
    done = DONE.get(request.query.get("done", ""))
    return render(request, "dashboard/warning.html", {
        **ctx, "page": "warnings", "state_zh": STATE_ZH, "exports": EXPORTS, "done": done,
        "may_record": session.token.role in RECORD_ROLES, "rejection": rejection, "approved": approved,
        "can_update": may(session, "update") and not record.closed,
        "can_cancel": may(session, "cancel") and not record.closed,
        "can_review": record.state.value == "pending_approval" and (
            may(session, "approve") or record.drafter == session.token.name and may(session, "draft")),
        "role_names": ROLE_NAMES})


@routes.get("/dashboard/warnings/{id}/panels", summary="The warning page's follow-through panels as HTML fragments "
            "(unconfirmed, calls, reports, chart, map, tables)", roles=None, params=[WID], description=SESSION,
            responses={k: v for k, v in DATA_ANSWERS.items() if k != "400"})
@signed_in(page=False)
async def panels(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    ctx = await panel_context(request, record)
    module: Any = aiohttp_jinja2.get_env(request.app).get_template("dashboard/_panels.html").make_module(ctx)
    html = {name: str(getattr(module, name)()) for name in PANELS}
    return web.json_response({"html": html, "unconfirmed": ctx["view"]["unconfirmed"]["total"]},
                             headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes
    from warning.web.keys import settings_key

    app[report_rules_key] = ReportRules.from_settings(app[settings_key])
    add_routes(app, routes)
