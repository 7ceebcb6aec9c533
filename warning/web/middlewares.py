"""Request ids, and every error rendered as JSON `{"error", "detail"}` with the right status."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from warning.errors import ApiError, CapParseError, ConfigError, DeliveryError, EarlyWarningError, TooManyRequests
from warning.logs import request_id_var
from warning.web.keys import settings_key
from warning.web.routing import Handler

logger = logging.getLogger(__name__)
_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found", 405: "method not allowed",
            409: "conflict", 413: "request body too large", 415: "unsupported media type", 429: "too many requests"}


def json_error(status: int, error: str, detail: object = None) -> web.Response:
    """A JSON error response carrying the request id."""
    body: dict[str, object] = {"error": error, "request_id": request_id_var.get()}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, dumps=_dumps)


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and aiohttp HTTP errors to JSON; log anything unexpected as a 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = json_error(exc.status, exc.error, exc.detail)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
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
        return json_error(exc.status, _REASONS.get(exc.status, exc.reason.lower()))
    except EarlyWarningError as exc:
        logger.exception("unhandled domain error on %s %s", request.method, request.path)
        return json_error(500, "internal error", type(exc).__name__)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error")
