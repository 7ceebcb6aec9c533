"""What every desk page shares: the session and role guard, CSRF on forms, error pages, names and masking."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from contacts.phone import mask_phone
from contacts.reference import Reference
from warning.web.dashboard import current_session, render
from warning.web.dashboard_session import DASHBOARD_ROLES, ROLE_ZH, Session
from warning.web.keys import principal_key, reference_key, session_book_key, session_key, settings_key
from warning.web.routing import ApiRoutes, Handler

routes = ApiRoutes("workbench")
#: who may change the registry (contacts, devices, hazard sites), as in the registry API
ADMIN = ("admin",)
#: who may upload the duty roster, as POST /api/v1/duty
DUTY_WRITERS = ("admin", "issuer")
#: who may read the 发布记录台账 (it names the people who issued and approved each warning)
RECORD_ROLES = ("admin", "issuer", "approver")
CHANNEL_ZH = {"sms": "短信", "voice": "语音"}
DEVICE_KIND_ZH = {"escreen": "电子屏", "broadcast": "应急广播"}
SITE_KIND_ZH = {"reservoir": "水库", "landslide": "滑坡", "debris_flow": "泥石流", "collapse": "崩塌",
                "river_station": "水文站", "flood_point": "内涝点", "other": "其他"}
_SESSION = "A dashboard page (session cookie; a form posts its CSRF token). Roles: "
#: a page's refusals are pages too (HTML); a body too large or a store unavailable are the API's JSON errors
_ERROR_CONTENT = {"text/html": {"schema": {"type": "string"}},
                  "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_WHY = {400: "bad input: the page (or the form, kept as typed) again, with every reason",
        401: "a form sent without a dashboard session (nothing done)",
        403: "a role that may not, or a form without its CSRF token", 404: "no such record",
        409: "changed meanwhile, or a phone or token already registered: the form again", 413: "file too large"}


def form_body(fields: Iterable[str], *, upload: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of a page's form (urlencoded), or of an upload (multipart `file`)."""
    props: dict[str, Any] = {name: {"type": "string"} for name in ("csrf", *fields)}
    if upload:
        props["file"] = {"type": "string", "format": "binary"}
    kind = "multipart/form-data" if upload else "application/x-www-form-urlencoded"
    return {"required": False, "content": {kind: {"schema": {"type": "object", "properties": props}}}}


def _responses(method: str, statuses: Iterable[int]) -> dict[str, Any]:
    moved = "a form that was saved: to the page showing the result" if method == "POST" else "no session: to /login"
    out: dict[str, Any] = {"303": {"description": moved}}
    out.update({str(code): {"description": _WHY[code], "content": _ERROR_CONTENT} for code in sorted({403, *statuses})})
    return out


async def _refusal(request: web.Request, session: Session, allowed: tuple[str, ...]) -> web.Response | None:
    """The page that refuses the request (the role, an unreadable form, the CSRF token); None when it may go on."""
    role = session.token.role
    if role != "admin" and role not in allowed:
        return error_page(request, 403, "您的角色不能执行此操作", "your role may not do this",
                          f"{role_name(role)}；允许 allowed: "
                          f"{', '.join(role_name(r) for r in ('admin', *allowed) if r in ROLE_ZH)}")
    if request.method != "POST":
        return None
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError) as exc:  # a malformed body or part: the client's mistake
        return error_page(request, 400, "表单无效", "malformed form", str(exc)[:200])
    if not request.app[session_book_key].csrf_ok(f"s:{session.sid}", str(form.get("csrf", ""))):
        return error_page(request, 403, "表单已过期或无效，请返回刷新后重试", "the form expired or is not valid; go "
                          "back, reload the page and try again", "CSRF")
    return None


def page(method: str, path: str, summary: str, *, roles: Iterable[str] = DASHBOARD_ROLES,
         params: Iterable[Mapping[str, Any]] = (), statuses: Iterable[int] = (),
         body: Mapping[str, Any] | None = None) -> Callable[[Handler], Handler]:
    """Declare a desk page: signed-in only (else to /login), the role checked, a POST's CSRF token checked.

    `statuses` are the refusals it may answer besides 403, for the OpenAPI document; `body` its form.
    """
    allowed = tuple(roles)

    def deco(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None and request.method == "GET":
                raise web.HTTPSeeOther(f"/login?next={quote(request.rel_url.path_qs, safe='/')}")
            if session is None:  # a form sent without a session (it ended meanwhile) is not done: say so
                return error_page(request, 401, "登录已过期，表单未提交，请重新登录", "your sign-in has ended and the "
                                  "form was not saved; sign in again", "")
            request[session_key] = session
            request[principal_key] = session.token
            refused = await _refusal(request, session, allowed)
            return refused if refused is not None else await handler(request)

        more = (400, 401, *statuses) if method == "POST" else tuple(statuses)
        routes.route(method, path, summary=summary, roles=None, params=params, request_body=body,
                     responses=_responses(method, more),
                     description=_SESSION + ", ".join(sorted({"admin", *allowed})))(guarded)
        return handler

    return deco


def error_page(request: web.Request, status: int, zh: str, en: str, detail: str = "") -> web.Response:
    """A page that says what went wrong, Chinese first, with the status."""
    return render(request, "desk/error.html", {"status": status, "zh": zh, "en": en, "detail": detail},
                  status=status)


def role_name(role: str) -> str:
    """A token role as the office calls it: `管理员 admin`."""
    return f"{ROLE_ZH.get(role, role)} {role}"


def role_of(request: web.Request) -> str:
    return str(request[session_key].token.role)


def may(request: web.Request, roles: Iterable[str]) -> bool:
    """Whether the signed-in role may do what `roles` allows (admin may do everything)."""
    role = role_of(request)
    return role == "admin" or role in tuple(roles)


def masked(request: web.Request) -> bool:
    """Viewers see phone numbers masked."""
    return role_of(request) == "viewer"


def shown_phone(request: web.Request, phone: str) -> str:
    return mask_phone(phone) if phone and masked(request) else phone


def lang_en(request: web.Request) -> bool:
    return request.query.get("lang", "").startswith("en")


def url(request: web.Request, path: str, **query: str) -> str:
    """A path on this site with its query, keeping ?lang=en."""
    params = {k: v for k, v in query.items() if v}
    if lang_en(request):
        params["lang"] = "en"
    return f"{path}?{urlencode(params)}" if params else path


def county_of(request: web.Request) -> str:
    """The office's own county (`[issuer] code`)."""
    return str(request.app[settings_key].section("issuer").get("code", ""))


def region_name(ref: Reference, code: str, county: str) -> str:
    """A division's name below the county (`潼川镇东街社区`), the county's own name for it, or the code when unknown."""
    path = ref.regions.path(code)
    below = [r.name for r in path if len(r.code) > len(county)] if county else []
    if below:
        return "".join(below)
    return path[-1].name if path and path[-1].code == code else code


def region_choices(ref: Reference, county: str) -> list[tuple[str, str]]:
    """(code, name) of the county, its townships and their villages, for a region picker."""
    out: list[tuple[str, str]] = []
    if county in ref.regions:
        out.append((county, region_name(ref, county, county)))
    for town in ref.regions.children(county) if county else []:
        out.append((town.code, town.name))
        out += [(v.code, f"{town.name}{v.name}") for v in ref.regions.children(town.code)]
    return out


def townships(ref: Reference, county: str) -> list[tuple[str, str]]:
    """(code, name) of the county's townships in the region tree."""
    return [(t.code, t.name) for t in ref.regions.children(county) if len(t.code) == 9] if county else []


def reference(request: web.Request) -> Reference:
    return request.app[reference_key]


def attachment(ascii_name: str, name: str) -> str:
    """A Content-Disposition that names the file in Chinese where the browser can, in ASCII where it cannot."""
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def form_text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value.strip() if isinstance(value, str) else ""
