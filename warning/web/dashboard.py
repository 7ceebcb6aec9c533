"""The coverage dashboard (看板): sign-in, the warning list, live updates and exports, the pages' shared rendering
and role table (a warning's own page is warning_page.py; the workbench's forms workbench.py and approvals.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from warning.coverage import coverage
from warning.errors import BadRequest, Forbidden, NotFound
from warning.logs import register_secret
from warning.settings import Token
from warning.web import delivery_api, followup_api, throttle, warnings_api
from warning.web.bodies import read_form
from warning.web.dashboard_live import LiveStreams, coverage_stream, percent
from warning.web.dashboard_session import (
    COOKIE,
    DASHBOARD_ROLES,
    LOGIN_COOKIE,
    Session,
    SessionBook,
    link_key,
    link_signature,
    revoked_key,
)
from warning.web.desk.today import on_duty_now
from warning.web.keys import (
    clock_key,
    live_streams_key,
    principal_key,
    redis_key,
    services_key,
    session_book_key,
    session_key,
)
from warning.web.openapi import error_responses
from warning.web.routing import ApiRoutes, Handler, Unauthorized, path_param

logger = logging.getLogger(__name__)
routes = ApiRoutes("dashboard")
WID = path_param("id", "warning id")
#: a one-time link's `t`: nonce "." signature, both URL-safe base64
LINK_T = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}")
SESSION = "Signed in with the dashboard's session cookie (POST /login), not a bearer token."
#: what the page's data endpoints answer without a session, for a role that may not, or for no such warning
SESSION_ERRORS = error_responses(401, 403, 404)
RECORD_ROLES = ("admin", "issuer", "approver")
STATE_ZH = {"draft": "草稿", "pending_approval": "待审签", "dispatching": "发送中", "active": "生效中",
            "superseded": "已更新", "cancelled": "已解除", "expired": "已过期", "rejected": "已驳回"}
#: the roles' names as people read them (Chinese, English)
ROLE_NAMES = {"admin": ("管理员", "admin"), "issuer": ("发布员", "issuer"), "approver": ("审签人", "approver"),
              "viewer": ("查看员", "viewer"), "feed": ("数据源", "feed")}
#: what each role may do on the workbench's pages (admin: everything); the server checks the same table, so a
#: page never shows a button its reader may not use. An issuer may also withdraw (reject) their own draft.
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "draft": ("issuer",), "update": ("issuer",), "cancel": ("issuer",), "preview": ("issuer", "approver"),
    "approve": ("approver",), "reject": ("approver",), "override": (), "record": RECORD_ROLES}
EXPORTS = {"deliveries": ("csv", "xlsx"), "unreached": ("csv", "xlsx"), "record": ("csv", "json")}
BEIJING = timezone(timedelta(hours=8), "CST")


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def local_time(iso: str | None, *, seconds: bool = False) -> str:
    """An ISO time as Beijing time (UTC+8, no daylight saving), the way the county office reads it."""
    if not iso:
        return ""
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang", "").startswith("en") else "zh"


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site only (never `//host` or a full URL)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or any(c in raw for c in "\\\r\n\t"):
        return "/dashboard"
    return raw


def may(session: Session | None, action: str) -> bool:
    """Whether the signed-in role may do `action` (ACTION_ROLES; admin may do everything)."""
    if session is None:
        return False
    role = session.token.role
    return role == "admin" or role in ACTION_ROLES.get(action, ())


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """An HTML page with a script nonce and headers that keep it out of frames and off other origins."""
    nonce = secrets.token_urlsafe(12)
    lang = _lang(request)
    session = request.get(session_key)
    ctx = {"lang": lang, "nonce": nonce, "session": session, "request": request, "csrf": _csrf_of(request),
           "may": functools.partial(may, session), "role_names": ROLE_NAMES, "page": _section_of(request.path),
           "pending_count": 0,
           **context}
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers.update({
        "Content-Security-Policy": f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                                   "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                   "form-action 'self'; base-uri 'none'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})
    return response


def _section_of(path: str) -> str:
    """The header menu's entry a page belongs to: /dashboard/contacts/… → contacts (the menu marks it)."""
    parts = path.split("/")
    return parts[2].removesuffix(".xlsx") if len(parts) > 2 and parts[1] == "dashboard" else ""


def _csrf_of(request: web.Request) -> str:
    session = request.get(session_key)
    return request.app[session_book_key].csrf(f"s:{session.sid}") if session is not None else ""


async def current_session(request: web.Request) -> Session | None:
    """The request's valid, not signed-out session, or None."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    session = request.app[session_book_key].verify(value, request.app[clock_key].now())
    if session is None or await request.app[redis_key].exists(revoked_key(session.sid)):
        return None
    return session


def signed_in(*, page: bool, roles: Iterable[str] = DASHBOARD_ROLES) -> Callable[[Handler], Handler]:
    """Require a dashboard session: pages redirect to /login, data endpoints answer 401."""
    allowed = tuple(roles)

    def deco(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None:
                if page:
                    raise web.HTTPSeeOther(f"/login?next={quote(request.rel_url.path_qs, safe='/')}")
                raise Unauthorized("no dashboard session", "sign in at /login")
            if session.token.role != "admin" and session.token.role not in allowed:
                raise Forbidden("forbidden", f"role {session.token.role!r} may not do this")
            request[session_key] = session
            request[principal_key] = session.token
            return await handler(request)

        return guarded

    return deco


# ---- sign-in -------------------------------------------------------------------------------
def _login_page(request: web.Request, nonce: str, *, error: str = "", status: int = 200) -> web.Response:
    book = request.app[session_book_key]
    response = render(request, "dashboard/login.html", {"login_csrf": book.csrf(f"login:{nonce}"), "error": error,
                                                        "next": safe_next(request.query.get("next"))}, status=status)
    book.set_cookie(response, LOGIN_COOKIE, nonce, max_age=3600)
    return response


async def _sign_in_paused(request: web.Request, nonce: str, subjects: tuple[str, ...]) -> web.Response | None:
    """The 429 sign-in page (with Retry-After) while an address or a token tried has used up its failures."""
    wait_s = await throttle.SIGN_IN.retry_after_s(request.app[redis_key], request.app[clock_key], *subjects)
    if wait_s is None:
        return None
    response = _login_page(request, nonce, error="尝试次数过多，请稍后再试 Too many attempts; try again later", status=429)
    response.headers["Retry-After"] = str(wait_s)
    return response


@routes.get("/", summary="The dashboard's address", roles=None)
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard")


@routes.get("/login", summary="Dashboard sign-in form (token field)", roles=None)
async def login_form(request: web.Request) -> web.Response:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_page(request, request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(18))


@routes.post("/login", summary="Sign in: sets an HttpOnly session cookie (form: token, csrf, next)", roles=None,
             responses={"303": {"description": "signed in"}, "401": {"description": "unknown token"},
                        "403": {"description": "bad CSRF token, or a token that may not use the dashboard"},
                        "429": {"description": "too many wrong tokens from this address, or this token (Retry-After)"}})
async def login(request: web.Request) -> web.Response:
    book = request.app[session_book_key]
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not book.csrf_ok(f"login:{nonce}", str(form.get("csrf", ""))):
        return _login_page(request, secrets.token_urlsafe(18), error="表单已过期，请重试 The form expired; try again",
                           status=403)
    presented = str(form.get("token", ""))
    subjects = (throttle.address_of(request.remote), throttle.token_tried(presented))
    paused = await _sign_in_paused(request, nonce, subjects)
    if paused is not None:
        return paused
    token = book.find_token(presented)
    if token is None:
        # wrong tokens are counted per address and per token for a while: guessing is not a way in
        await throttle.SIGN_IN.failed(request.app[redis_key], request.app[clock_key], *subjects)
        logger.warning("dashboard sign-in refused: unknown token from %s", request.remote)
        return _login_page(request, nonce, error="令牌无效 Unknown token", status=401)
    if token.role not in DASHBOARD_ROLES:
        return _login_page(request, nonce, error="此令牌不能登录看板 This token cannot use the dashboard", status=403)
    logger.info("dashboard sign-in: %s (%s)", token.name, token.role)
    response = web.HTTPSeeOther(safe_next(str(form.get("next", ""))))
    book.set_cookie(response, COOKIE, book.issue(token, request.app[clock_key].now()), max_age=book.ttl_s)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


@routes.get("/login/link", summary="One-time sign-in link (single use, short-lived, signed)", roles=None,
            params=[{"name": "t", "in": "query", "required": True,
                     "schema": {"type": "string", "pattern": f"^{LINK_T.pattern}$"},
                     "description": "the link's signed nonce"}],
            responses={"303": {"description": "signed in"}, "400": {"description": "not a sign-in link's form"},
                       "403": {"description": "bad, used or expired link"},
                       "429": {"description": "too many bad links from this address, or for this link (Retry-After)"}})
async def login_link(request: web.Request) -> web.Response:
    book = request.app[session_book_key]
    t = request.query.get("t", "")
    if t and not LINK_T.fullmatch(t):
        return _login_page(request, secrets.token_urlsafe(18), error="链接格式无效 The sign-in link is malformed",
                           status=400)
    nonce, _, signature = t.partition(".")
    subjects = (throttle.address_of(request.remote), throttle.token_tried(nonce))
    paused = await _sign_in_paused(request, secrets.token_urlsafe(18), subjects)
    if paused is not None:
        return paused
    token = await _link_token(request, nonce, signature)
    if token is None or token.role not in DASHBOARD_ROLES:
        await throttle.SIGN_IN.failed(request.app[redis_key], request.app[clock_key], *subjects)
        return _login_page(request, secrets.token_urlsafe(18), error="链接无效或已使用 The link is invalid or used",
                           status=403)
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    book.set_cookie(response, COOKIE, book.issue(token, request.app[clock_key].now()), max_age=book.ttl_s)
    raise response


async def _link_token(request: web.Request, nonce: str, signature: str) -> Token | None:
    """The token a one-time link signs in as, using the link up; None (the link left as it was) when its signature
    does not match, and None when it is unknown, expired or already used."""
    redis: Any = request.app[redis_key]  # decode_responses=True: replies are str
    name = await redis.get(link_key(nonce)) if nonce else None
    token = request.app[session_book_key].token_named(name) if name else None
    if token is None or not secrets.compare_digest(link_signature(token, nonce).encode(), signature.encode()):
        return None
    return token if await redis.getdel(link_key(nonce)) == name else None  # a second use at the same moment loses


@routes.post("/logout", summary="Sign out (form: csrf)", roles=None, description=SESSION,
             responses={"303": {"description": "signed out"}, "403": {"description": "bad CSRF token"}})
@signed_in(page=True)
async def logout(request: web.Request) -> web.Response:
    session, book = request[session_key], request.app[session_book_key]
    form = await read_form(request)
    if not book.csrf_ok(f"s:{session.sid}", str(form.get("csrf", ""))):
        raise Forbidden("bad CSRF token", "reload the page and try again")
    remaining = max(1, session.expires - int(request.app[clock_key].now().timestamp()))
    await request.app[redis_key].set(revoked_key(session.sid), "1", ex=remaining)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# ---- pages ---------------------------------------------------------------------------------
@routes.get("/dashboard", summary="Dashboard: the warnings with their coverage", roles=None, description=SESSION)
@signed_in(page=True)
async def index(request: web.Request) -> web.Response:
    services = request.app[services_key]
    records, _ = await services.warnings.list(limit=100)
    counts = await asyncio.gather(*(services.deliveries.counts(r.id) for r in records))
    items = [{"w": r.summary(), "c": coverage(c)} for r, c in zip(records, counts, strict=True)]
    pending = sum(1 for r in records if r.state.value == "pending_approval")
    feeds = await services.feeds.panel() if services.feeds is not None else {}
    duty = await on_duty_now(request.app, masked=request[principal_key].role == "viewer")
    return render(request, "dashboard/index.html", {"items": items, "state_zh": STATE_ZH, "pct": percent,
                                                    "page": "warnings", "pending_count": pending,
                                                    "feeds_panel": feeds, "duty": duty})


async def _document(request: web.Request, warning_id: str) -> dict[str, Any]:
    services = request.app[services_key]
    record = await services.lifecycle.get(warning_id)
    doc = coverage(await services.deliveries.counts(record.id))
    doc.update(id=record.id, state=record.state.value, version=record.version, exercise=record.is_exercise,
               at=local_time(services.clock.now().isoformat(), seconds=True))  # Beijing time: no browser clock
    return doc


# ---- data the page fetches (same origin, session cookie) ----------------------------------
@routes.get("/dashboard/warnings/{id}/coverage", summary="Coverage document for the page (session cookie)",
            roles=None, params=[WID], description=SESSION, responses=SESSION_ERRORS)
@signed_in(page=False)
async def coverage_json(request: web.Request) -> web.Response:
    return web.json_response(await _document(request, request.match_info["id"]), dumps=_dumps)


@routes.get("/dashboard/warnings/{id}/events", summary="Live coverage as server-sent events (event: coverage)",
            roles=None, params=[WID], description=SESSION, responses=SESSION_ERRORS)
@signed_in(page=False)
async def events(request: web.Request) -> web.StreamResponse:
    warning_id = request.match_info["id"]
    await request.app[services_key].lifecycle.get(warning_id)  # 404 before the stream starts
    app = request.app
    return await coverage_stream(request, warning_id, lambda: _document(request, warning_id), redis=app[redis_key],
                                 clock=app[clock_key], streams=app[live_streams_key])


@routes.get("/dashboard/warnings/{id}/export/{what}", summary="Exports for the page: deliveries, unreached, record",
            roles=None, params=[WID, path_param("what", "deliveries, unreached or record"),
                                {"name": "format", "in": "query", "schema": {"type": "string"},
                                 "description": "csv or xlsx (record: csv or json)"}],
            description=SESSION, responses={**SESSION_ERRORS, **error_responses(400)})
@signed_in(page=False)
async def export(request: web.Request) -> web.StreamResponse:
    what, fmt = request.match_info["what"], request.query.get("format", "csv")
    if what not in EXPORTS:
        raise NotFound("not found", f"no export named {what!r}")
    if fmt not in EXPORTS[what]:
        raise BadRequest("invalid query", f"format must be one of {', '.join(EXPORTS[what])}")
    if what == "deliveries":
        return await delivery_api.list_deliveries(request)
    if what == "unreached":
        return await followup_api.get_unreached(request)
    if request[session_key].token.role not in RECORD_ROLES:
        raise Forbidden("forbidden", "the full record is for issuers and approvers")
    return await warnings_api.export_record(request)


async def _close_streams(app: web.Application) -> None:
    await app[live_streams_key].close_all(app)


def setup(app: web.Application) -> None:
    """Routes, templates, the session signer and the registry of live streams."""
    from warning.web.app import add_routes
    from warning.web.keys import settings_key

    settings = app[settings_key]
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(settings.templates_dir)), autoescape=True)
    env.filters["local"] = local_time
    app[session_book_key] = SessionBook.from_settings(settings)
    if settings.server.session_secret:
        register_secret(settings.server.session_secret)
    app[live_streams_key] = LiveStreams()
    app.on_shutdown.append(_close_streams)
    add_routes(app, routes)
