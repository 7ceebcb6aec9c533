"""Request ids, and every error rendered as JSON `{"error", "detail"}` with the right status.

The store's own failures are mapped here, in one place: Redis down, loading, out of memory, read-only
(a replica) or refusing writes after a failed save is a 503 with Retry-After, never a 500; the client
may try again and nothing was half-done on its behalf that it cannot see.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web
from redis import exceptions as redis_errors

from warning.errors import ApiError, CapParseError, ConfigError, DeliveryError, EarlyWarningError, TooManyRequests
from warning.logs import request_id_var
from warning.web.keys import settings_key
from warning.web.routing import Handler

logger = logging.getLogger(__name__)
_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found", 405: "method not allowed",
            409: "conflict", 413: "request body too large", 415: "unsupported media type", 429: "too many requests"}
#: how long a client is asked to wait when the store is unavailable
STORE_RETRY_AFTER_S = 5
#: error replies of a Redis that is up but cannot take the command now: out of memory, a read-only replica,
#: writes stopped after a failed save, a replica without its master, a script running too long, loading
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "MISCONF", "MASTERDOWN", "NOREPLICAS", "BUSY", "LOADING", "TRYAGAIN")
_UNAVAILABLE_TYPES = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.OutOfMemoryError,
                      redis_errors.ReadOnlyError, redis_errors.TryAgainError, redis_errors.ClusterDownError)


def json_error(status: int, error: str, detail: object = None) -> web.Response:
    """A JSON error response carrying the request id."""
    body: dict[str, object] = {"error": error, "request_id": request_id_var.get()}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, dumps=_dumps)


def unavailable(error: str, detail: object) -> web.Response:
    """503 with Retry-After: the store cannot take the request now."""
    response = json_error(503, error, detail)
    response.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
    return response


def store_unavailable(exc: BaseException) -> str | None:
    """Why the store cannot answer now (a short reason), or None when `exc` is not that kind of failure."""
    if isinstance(exc, _UNAVAILABLE_TYPES):
        return _store_reason(exc)
    if isinstance(exc, redis_errors.ResponseError):
        # a reply from inside a script or a transaction keeps its code at the front (EXECABORT names the cause)
        text = str(exc).removeprefix("Transaction discarded because of: ").lstrip("-")
        if text.startswith(_UNAVAILABLE_REPLIES):
            return _store_reason(exc)
    return None


def _store_reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, redis_errors.OutOfMemoryError) or text.startswith("OOM"):
        return "存储空间已满 the store is out of memory"
    if isinstance(exc, redis_errors.ReadOnlyError) or text.startswith(("READONLY", "MISCONF")):
        return "存储暂时只读 the store is read-only"
    return "存储暂不可用 the store is unreachable"


def _literal_methods(request: web.Request) -> list[str] | None:
    """The methods of a literal path, when a request for it was routed to a template in its place.

    `GET /api/v1/contacts/import` would otherwise reach `GET /api/v1/contacts/{id}` with id "import": the
    literal path has its own methods, and any other is a 405 naming them.
    """
    resource = request.match_info.route.resource
    if resource is None or isinstance(resource, web.PlainResource):
        return None
    return _plain_methods(request)


def _plain_methods(request: web.Request) -> list[str] | None:
    """Every method registered for exactly this path (a path may be registered more than once), or None."""
    methods = {route.method for other in request.app.router.resources()
               if isinstance(other, web.PlainResource) and other.canonical == request.path for route in other}
    return sorted(methods) or None


def _dumps(obj: object) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request (and its log lines) with an id, taken from X-Request-Id when sane."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if given and len(given) <= 64 and given.replace("-", "").isalnum() else secrets.token_hex(8)
    token = request_id_var.set(rid)
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        request_id_var.reset(token)


def _api_error(exc: ApiError) -> web.Response:
    response = json_error(exc.status, exc.error, exc.detail)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and aiohttp HTTP errors to JSON; log anything unexpected as a 500."""
    try:
        shadowed = _literal_methods(request)
        if shadowed is not None:
            raise web.HTTPMethodNotAllowed(request.method, shadowed)
        return await handler(request)
    except ApiError as exc:
        return _api_error(exc)
    except CapParseError as exc:
        return json_error(400, "invalid CAP document", [{"path": p, "reason": r} for p, r in exc.problems])
    except (ConfigError, DeliveryError) as exc:
        logger.exception("error handling %s %s", request.method, request.path)
        return json_error(500, "internal error", type(exc).__name__)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            limit = request.app[settings_key].server.max_body_bytes
            return json_error(413, _REASONS[413], f"the limit is {limit} bytes")
        response = json_error(exc.status, _REASONS.get(exc.status, exc.reason.lower()))
        if "Allow" in exc.headers:  # a 405 says which methods the resource has (a literal path: its own)
            literal = _plain_methods(request)
            response.headers["Allow"] = ",".join(literal) if literal else exc.headers["Allow"]
        return response
    except EarlyWarningError as exc:
        logger.exception("unhandled domain error on %s %s", request.method, request.path)
        return json_error(500, "internal error", type(exc).__name__)
    except redis_errors.RedisError as exc:
        reason = store_unavailable(exc)
        if reason is None:
            logger.exception("unhandled store error on %s %s", request.method, request.path)
            return json_error(500, "internal error", type(exc).__name__)
        # one line, no traceback: the store's own log says why; every request would repeat it
        logger.error("store unavailable on %s %s: %s: %s", request.method, request.path, type(exc).__name__,
                     str(exc)[:200])
        return unavailable("服务暂不可用 service unavailable", f"{reason}; retry in {STORE_RETRY_AFTER_S} s")
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error")
