"""The workbench's warning pages (工作台): draft with a live preview, update, cancel.

Pages call the core services (the lifecycle, the previewer) with the signed-in person as the actor, never
another feature's HTTP handler. Every form carries the session's CSRF token; every action is checked on
the server against the same role table the pages use to show or hide their buttons (dashboard.ACTION_ROLES).
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from warning import keys
from warning.drafting import CN_TZ
from warning.errors import ApiError, BadRequest, Forbidden
from warning.lifecycle import Actor, Unfinished
from warning.model import Status
from warning.preview import previewer_of
from warning.record import WarningRecord
from warning.web.bodies import read_form
from warning.web.dashboard import ACTION_ROLES, SESSION, WID, render, signed_in
from warning.web.keys import reference_key, services_key, session_book_key, session_key
from warning.web.routing import ApiRoutes, Handler

logger = logging.getLogger(__name__)
routes = ApiRoutes("workbench")
CSRF_HEADER = "X-CSRF-Token"
#: a submitted draft form is remembered this long, so sending it twice (a double tap, a retry) creates one warning
FORM_TTL_S = 86400
_ONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LEVELS = (("blue", "蓝色", "blue"), ("yellow", "黄色", "yellow"), ("orange", "橙色", "orange"), ("red", "红色", "red"))
DONE = {"submitted": ("已提交，等待审签", "submitted: waiting for approval"),
        "issued": ("已发布，正在发送", "issued: sending now"),
        "approved": ("已审签，正在发送", "approved: sending now"),
        "rejected": ("已驳回", "rejected"), "withdrawn": ("已撤回", "withdrawn"),
        "updated": ("已更新，正在发送", "updated: sending now"),
        "update_pending": ("更新已提交，等待审签", "update submitted: waiting for approval"),
        "cancelled": ("已解除，正在通知已收到的人", "cancelled: everyone who had it is being told"),
        "recorded": ("已记录（测试或草稿，不发送）", "recorded (test or draft: not sent)")}


#: what the pages answer: no session sends a page to /login; the rest is a page saying why
PAGE_ANSWERS = {"303": {"description": "no session: to /login"}, "403": {"description": "a role that may not"},
                "404": {"description": "no such warning"}}
FORM_ANSWERS = {"303": {"description": "done: to the warning's page (no session: to /login)"},
                "400": {"description": "the form again with its problems, or a page saying what is wrong"},
                "403": {"description": "bad CSRF token, or a role that may not"}, "404": {"description": "no such warning"},
                "409": {"description": "things changed: closed, approved, or another version pending"}}
DATA_ANSWERS = {"400": {"description": "malformed form"}, "401": {"description": "no session"},
                "403": {"description": "bad CSRF token, or a role that may not"}, "404": {"description": "no such warning"}}


def form_key(once: str) -> str:
    """String: the warning id a submitted draft form created (or is creating)."""
    return f"{keys.PREFIX}form:{once}"


def done(request: web.Request, warning_id: str, what: str | None = None) -> web.HTTPSeeOther:
    """The redirect after a form: to the warning's page, saying what was done, in the reader's language."""
    query = [f"done={what}"] if what else []
    if request.query.get("lang", "").startswith("en"):
        query.append("lang=en")
    return web.HTTPSeeOther(f"/dashboard/warnings/{warning_id}" + (f"?{'&'.join(query)}" if query else ""))


def actor_of(request: web.Request) -> Actor:
    token = request[session_key].token
    return Actor(token.name, token.role)


def check_csrf(request: web.Request, presented: str) -> None:
    """403 unless `presented` is the session's CSRF token."""
    session, book = request[session_key], request.app[session_book_key]
    if not book.csrf_ok(f"s:{session.sid}", presented):
        raise Forbidden("bad CSRF token", "页面已过期，请刷新后重试 the page expired: reload it and try again")


def error_page(request: web.Request, exc: ApiError) -> web.Response:
    """A person's error as a page (the API answers JSON; a form deserves words and a way back)."""
    detail = exc.detail
    items = [f"{d.get('field', '')}: {d.get('error', '')}" if isinstance(d, Mapping) else str(d)
             for d in (detail if isinstance(detail, list) else [detail] if detail else [])]
    wid = request.match_info.get("id")
    back = f"/dashboard/warnings/{wid}" if wid and exc.status != 404 else ""
    return render(request, "dashboard/error.html", {"status": exc.status, "error": exc.error, "items": items,
                                                    "back": back}, status=exc.status)


def html_errors(handler: Handler) -> Handler:
    """Answer ApiErrors of a page action (403, 404, 409, ...) with an HTML page of the same status."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            if session_key not in request:
                raise
            return error_page(request, exc)

    return wrapped


def may_act(action: str, *, page: bool = True) -> Callable[[Handler], Handler]:
    """signed_in() for the roles of an action in ACTION_ROLES."""
    return signed_in(page=page, roles=ACTION_ROLES[action])


def local_input(at: datetime | None) -> str:
    """A time as a datetime-local field shows it, in Beijing time."""
    return at.astimezone(CN_TZ).strftime("%Y-%m-%dT%H:%M") if at else ""


def form_body(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The draft body of POST /api/v1/warnings from the form's fields (times typed in Beijing time)."""
    body: dict[str, Any] = {k: str(form.get(k, "")) for k in ("event", "level", "headline", "description",
                                                              "instruction")}
    body["areas"] = [str(a) for a in form.getall("areas", [])]
    roles = [str(r) for r in form.getall("roles", [])]
    body["roles"] = roles or None
    body["status"] = Status.EXERCISE.value if form.get("exercise") else Status.ACTUAL.value
    expires = str(form.get("expires", "")).strip()
    if expires:
        try:
            at = datetime.fromisoformat(expires)
            body["expires"] = (at.replace(tzinfo=CN_TZ) if at.tzinfo is None else at).isoformat()
        except ValueError:
            body["expires"] = expires  # refused by the draft's own check, with its message
    return body


def values_of(record: WarningRecord) -> dict[str, Any]:
    """The form's values for the current version of a warning (an update starts from it)."""
    info = record.content.info
    return {"event": record.content.event_type or "", "level": record.level.value,
            "headline": (info.headline if info else "") or "", "description": (info.description if info else "") or "",
            "instruction": (info.instruction if info else "") or "", "areas": list(record.content.region_codes),
            "roles": list(record.roles or ()), "exercise": record.is_exercise,
            "expires": local_input(record.expires_at)}


def _values_from(body: Mapping[str, Any], form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {**body, "roles": body.get("roles") or [], "exercise": bool(form.get("exercise")),
            "expires": str(form.get("expires", ""))}


def form_context(request: web.Request, values: Mapping[str, Any], *, record: WarningRecord | None = None,
                 problems: list[str] | None = None) -> dict[str, Any]:
    """What the draft (or update) form needs: event types and their levels and guides, the region tree, roles."""
    services = request.app[services_key]
    reference = request.app[reference_key]
    county = str(services.settings.section("issuer").get("code", ""))
    tree = reference.regions
    towns = [{"code": t.code, "name": t.name, "villages": [{"code": v.code, "name": v.name}
                                                           for v in tree.children(t.code)]}
             for t in tree.children(county)] if county in tree else []
    events = [{"key": et.key, "zh": et.name_zh, "en": et.name_en, "levels": [lv.value for lv in et.levels],
               "guide": et.guide_zh} for et in services.event_types.values()]
    policy = {lv: {"approval": services.policy.for_level(lv).approval,
                   "expiry_h": round(services.policy.for_level(lv).default_expiry_s / 3600, 1)} for lv, _, _ in LEVELS}
    roles = [(k, reference.roles.label(k, "zh"), reference.roles.label(k, "en")) for k in reference.roles.roles]
    return {"page": "draft" if record is None else "warnings", "v": values, "record": record, "events": events,
            "levels": LEVELS, "towns": towns, "county": {"code": county, "name": tree.name(county) or county},
            "roles": roles, "policy": policy, "problems": problems or [], "once": secrets.token_urlsafe(18),
            "now_local": local_input(services.clock.now())}


@routes.get("/dashboard/draft", summary="Workbench: the draft form with its live preview (起草)", roles=None,
            params=[{"name": "from", "in": "query", "schema": {"type": "string"},
                     "description": "a warning whose content the form starts from (e.g. a rejected one)"}],
            description=SESSION, responses=PAGE_ANSWERS)
@html_errors
@may_act("draft")
async def draft_form(request: web.Request) -> web.Response:
    values: dict[str, Any] = {"level": "", "areas": [], "roles": []}
    source = request.query.get("from")
    if source:
        record = await request.app[services_key].lifecycle.get(source)
        values = {**values_of(record), "expires": ""}
    return render(request, "dashboard/draft.html", form_context(request, values))


async def _reserve(request: web.Request, once: str) -> str | None:
    """The warning id this form submission is to create; None when the same form was sent before (answered)."""
    services = request.app[services_key]
    redis: Any = services.redis
    wid = services.lifecycle.new_id()
    if await redis.set(form_key(once), wid, nx=True, ex=FORM_TTL_S):
        return wid
    return None


@routes.post("/dashboard/draft", summary="Workbench: submit a draft (form; pending approval or sent)", roles=None,
             description=SESSION, responses=FORM_ANSWERS)
@html_errors
@may_act("draft")
async def draft_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    check_csrf(request, str(form.get("csrf", "")))
    once = str(form.get("once", ""))
    if not _ONCE.match(once):
        raise BadRequest("invalid form", "表单缺少提交标识，请刷新后重试 the form has no submission id: reload it")
    body = form_body(form)
    lifecycle = request.app[services_key].lifecycle
    wid = await _reserve(request, once)
    if wid is None:  # sent twice: the first submission's warning
        redis: Any = request.app[services_key].redis
        first = await redis.get(form_key(once))
        if first and await request.app[services_key].warnings.get(first) is not None:
            raise done(request, first)
        raise BadRequest("already submitted", "此表单正在提交中，请稍候查看预警列表 this form is being submitted; look at "
                                              "the list in a moment")
    try:
        record = await lifecycle.draft(body, actor_of(request), warning_id=wid)
    except Unfinished as exc:
        record = exc.record
    except BadRequest as exc:
        await request.app[services_key].redis.delete(form_key(once))
        problems = [f"{d.get('field', '')}: {d.get('error', '')}" for d in exc.detail] if isinstance(
            exc.detail, list) else [str(exc.detail)]
        return render(request, "dashboard/draft.html",
                      form_context(request, _values_from(body, form), problems=problems), status=400)
    raise done(request, record.id, "submitted" if record.state.value == "pending_approval" else (
        "recorded" if record.state.value == "active" else "issued"))


async def _preview(request: web.Request, update_of: WarningRecord | None) -> web.Response:
    form = await read_form(request)
    presented = request.headers.get(CSRF_HEADER) or str(form.get("csrf", ""))
    check_csrf(request, presented)
    doc = await previewer_of(request.app[services_key]).of_body(form_body(form), update_of=update_of)
    return web.json_response(doc, dumps=_dumps)


def _dumps(obj: object) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


@routes.post("/dashboard/preview", summary="Workbench: preview of the draft form (form fields; CSRF; JSON answer as "
             "POST /api/v1/warnings/preview)", roles=None, description=SESSION, responses=DATA_ANSWERS)
@may_act("preview", page=False)
async def draft_preview(request: web.Request) -> web.Response:
    return await _preview(request, None)


@routes.post("/dashboard/warnings/{id}/preview", summary="Workbench: preview of an update form of a warning",
             roles=None, params=[WID], description=SESSION, responses=DATA_ANSWERS)
@may_act("preview", page=False)
async def update_preview(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    return await _preview(request, record)


@routes.get("/dashboard/warnings/{id}/update", summary="Workbench: the update form, prefilled with the current "
            "version", roles=None, params=[WID], description=SESSION,
            responses={**PAGE_ANSWERS, "400": {"description": "the warning is closed"}})
@html_errors
@may_act("update")
async def update_form(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    if record.closed:
        raise BadRequest("warning closed", "预警已结束，不能更新 the warning is closed: it cannot be updated")
    return render(request, "dashboard/draft.html", form_context(request, values_of(record), record=record))


@routes.post("/dashboard/warnings/{id}/update", summary="Workbench: submit an update (form)", roles=None,
             params=[WID], description=SESSION, responses=FORM_ANSWERS)
@html_errors
@may_act("update")
async def update_submit(request: web.Request) -> web.Response:
    lifecycle = request.app[services_key].lifecycle
    record = await lifecycle.get(request.match_info["id"])
    form = await read_form(request)
    check_csrf(request, str(form.get("csrf", "")))
    body = form_body(form)
    try:
        after = await lifecycle.update(record.id, body, actor_of(request))
    except Unfinished as exc:
        after = exc.record
    except BadRequest as exc:
        problems = [f"{d.get('field', '')}: {d.get('error', '')}" for d in exc.detail] if isinstance(
            exc.detail, list) else [str(exc.detail)]
        return render(request, "dashboard/draft.html",
                      form_context(request, _values_from(body, form), record=record, problems=problems), status=400)
    raise done(request, after.id, "update_pending" if after.state.value == "pending_approval" else "updated")


@routes.post("/dashboard/warnings/{id}/cancel", summary="Workbench: cancel (解除) with a reason (form)", roles=None,
             params=[WID], description=SESSION, responses=FORM_ANSWERS)
@html_errors
@may_act("cancel")
async def cancel_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    check_csrf(request, str(form.get("csrf", "")))
    reason = str(form.get("reason", "")).strip()
    if not reason:
        raise BadRequest("invalid form", [{"field": "reason", "error": "请写明解除理由 give the reason"}])
    lifecycle = request.app[services_key].lifecycle
    try:
        record = await lifecycle.cancel(request.match_info["id"], actor_of(request), reason=reason)
    except Unfinished as exc:
        record = exc.record
    raise done(request, record.id, "cancelled")


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
