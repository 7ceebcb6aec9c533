"""The OpenAPI 3 document, built from the routes' own declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warning.web.routing import RouteDoc

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {}, "request_id": {"type": "string"}},
}
_STATUS_TEXT = {"400": "bad input", "401": "no or bad token", "403": "wrong role or bad signature",
                "404": "not found", "409": "conflict", "413": "body too large",
                "422": "unprocessable (an Idempotency-Key reused with another body)", "429": "rate-limited",
                "503": "the store is unavailable (Redis down, out of memory or read-only): retry after Retry-After"}


def build_openapi(docs: Iterable[RouteDoc], *, version: str, server_url: str) -> dict[str, Any]:
    """An OpenAPI 3.0 document with every declared route."""
    paths: dict[str, dict[str, Any]] = {}
    for d in docs:
        op: dict[str, Any] = {
            "summary": d.summary,
            "tags": [d.tag],
            "operationId": f"{d.method.lower()}_{d.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "responses": {"200": {"description": "OK"}, **d.responses},
        }
        if d.description:
            op["description"] = d.description
        if d.params:
            op["parameters"] = list(d.params)
        if d.request_body:
            op["requestBody"] = d.request_body
            # any body can be malformed or too long, whatever the route does with it
            for code in ("400", "413"):
                op["responses"].setdefault(code, {"description": _STATUS_TEXT[code], "content": _json_error()})
        op["responses"].setdefault("503", {"description": _STATUS_TEXT["503"], "content": _json_error(),
                                           "headers": {"Retry-After": {"description": "seconds",
                                                                       "schema": {"type": "integer"}}}})
        if d.roles is not None:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = sorted(set(d.roles) | {"admin"})
            op["responses"].setdefault("401", {"description": _STATUS_TEXT["401"], "content": _json_error()})
            op["responses"].setdefault("403", {"description": _STATUS_TEXT["403"], "content": _json_error()})
            op["responses"].setdefault("429", {"description": "too many failed tokens from this address (Retry-After)",
                                               "content": _json_error()})
        paths.setdefault(d.path, {})[d.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "预警信息发布服务 Early-warning dissemination service", "version": version},
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": dict(sorted(paths.items())),
    }


def _json_error() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def error_responses(*codes: int) -> dict[str, Any]:
    """Response entries for the given error statuses, for a RouteDoc."""
    return {str(c): {"description": _STATUS_TEXT.get(str(c), "error"), "content": _json_error()} for c in codes}
