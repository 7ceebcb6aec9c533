"""Route tables that carry their own documentation and the roles allowed to call them.

Each feature module declares `routes = ApiRoutes("tag")` and decorates its handlers; the app
registers the tables, the auth check wraps each handler, and the OpenAPI document is built from
the same declarations, so a route cannot exist undocumented.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from warning.errors import ApiError, BadRequest, Forbidden
from warning.settings import Token
from warning.web.keys import clock_key, principal_key, redis_key, settings_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: every API role; admin may call anything a role may call
ALL_ROLES = ("admin", "issuer", "approver", "viewer", "feed")
READERS = ("admin", "issuer", "approver", "viewer")


class Unauthorized(ApiError):
    """401: no token, or not a token we know."""

    status = 401


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says about one route."""

    method: str
    path: str
    summary: str
    roles: tuple[str, ...] | None  # None: no bearer token (public, or the provider's own scheme)
    tag: str
    description: str = ""
    params: tuple[Mapping[str, Any], ...] = ()
    request_body: Mapping[str, Any] | None = None
    responses: Mapping[str, Any] = field(default_factory=dict)


def authenticate(request: web.Request) -> Token:
    """The token behind the request's `Authorization: Bearer`, compared in constant time."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("missing bearer token")
    presented_b = presented.strip().encode()
    found: Token | None = None
    for token in request.app[settings_key].tokens:
        # compare against every token, so timing says nothing about which one (or whether any) matched
        if hmac.compare_digest(token.token.encode(), presented_b):
            found = token
    if found is None:
        raise Unauthorized("invalid token")
    return found


async def authenticate_throttled(request: web.Request) -> Token | web.Response:
    """authenticate(); but after too many 401s from the request's address, the 429 (with Retry-After) to answer
    instead, whatever the token (a right guess must look like any other), until the window of `throttle.API` ends."""
    from warning.web import throttle
    from warning.web.middlewares import json_error

    redis, clock = request.app[redis_key], request.app[clock_key]
    address = throttle.address_of(request.remote)
    wait_s = await throttle.API.retry_after_s(redis, clock, address)
    if wait_s is not None:
        response = json_error(429, "too many requests",
                              f"尝试次数过多，请 {wait_s} 秒后再试 too many failed attempts; retry in {wait_s} s")
        response.headers["Retry-After"] = str(wait_s)
        return response
    try:
        return authenticate(request)
    except Unauthorized:
        await throttle.API.failed(redis, clock, address)
        raise


def principal(request: web.Request) -> Token:
    """The authenticated caller of this request."""
    token: Token | None = request.get(principal_key)
    if token is None:
        raise Unauthorized("missing bearer token")
    return token


def _guard(handler: Handler, roles: tuple[str, ...]) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        token = await authenticate_throttled(request)
        if isinstance(token, web.StreamResponse):  # the address is paused
            return token
        if token.role != "admin" and token.role not in roles:
            raise Forbidden("forbidden", f"role {token.role!r} may not do this; allowed: {', '.join(roles)}")
        request[principal_key] = token
        return await handler(request)

    return guarded


class ApiRoutes:
    """A RouteTableDef whose entries carry their docs and allowed roles."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.table = web.RouteTableDef()
        self.docs: list[RouteDoc] = []

    def route(self, method: str, path: str, *, summary: str, roles: Iterable[str] | None,
              description: str = "", params: Iterable[Mapping[str, Any]] = (),
              request_body: Mapping[str, Any] | None = None,
              responses: Mapping[str, Any] | None = None) -> Callable[[Handler], Handler]:
        """Declare a route: the decorated handler is registered, guarded and documented."""
        roles_t = tuple(roles) if roles is not None else None

        def deco(handler: Handler) -> Handler:
            wrapped = _guard(handler, roles_t) if roles_t is not None else handler
            self.table.route(method, path)(wrapped)
            self.docs.append(RouteDoc(method.upper(), path, summary, roles_t, self.tag, description,
                                      tuple(params), request_body, dict(responses or {})))
            return handler

        return deco

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


def query_param(name: str, description: str, *, schema: Mapping[str, Any] | None = None,
                required: bool = False) -> dict[str, Any]:
    """An OpenAPI query parameter."""
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": dict(schema or {"type": "string"})}


def int_query(query: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    """A whole-number query parameter within [lo, hi] (absent: `default`); 400 naming it otherwise (empty too)."""
    text = query.get(name)
    if text is None:
        return default
    if len(text) > 12 or not text.isascii() or not text.isdigit() or not lo <= int(text) <= hi:
        raise BadRequest("查询参数无效 invalid query parameters",
                         {name: f"应为 {lo}–{hi} 的整数 expected a whole number from {lo} to {hi}"})
    return int(text)


def pattern_query(query: Mapping[str, str], name: str, pattern: re.Pattern[str], expected: str) -> str | None:
    """A query parameter that must match `pattern` whole (None when absent or empty: a first page's cursor);
    400 naming it otherwise. The document's pattern for it is `pattern_doc(pattern)`."""
    text = query.get(name, "")
    if text == "":
        return None
    if not pattern.fullmatch(text):
        raise BadRequest("查询参数无效 invalid query parameters", {name: expected})
    return text


def pattern_doc(pattern: re.Pattern[str]) -> str:
    """The OpenAPI `pattern` of a parameter read by pattern_query: the pattern whole, or nothing."""
    return f"^({pattern.pattern.removeprefix('^').removesuffix('$')})?$"


def path_param(name: str, description: str) -> dict[str, Any]:
    """An OpenAPI path parameter."""
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}
