"""Review before and at approval over HTTP: the preview of a draft or an update, and rejection (驳回)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from warning.errors import BadRequest
from warning.lifecycle import Actor
from warning.preview import previewer_of
from warning.web.bodies import read_json
from warning.web.keys import services_key
from warning.web.openapi import error_responses
from warning.web.routing import ApiRoutes, path_param, principal
from warning.web.warnings_api import MAX_DRAFT_BYTES

routes = ApiRoutes("warnings")
WID = path_param("id", "warning id")
#: who may preview: whoever drafts, and whoever reviews (admin may call anything)
PREVIEW_ROLES = ("issuer", "approver")
#: who may reject: approvers; an issuer only their own draft (a withdrawal, checked by the lifecycle)
REJECT_ROLES = ("approver", "issuer")
PREVIEW_ANSWER = {"200": {"description": "the preview", "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "description": "false when the draft would be refused (problems of severity error)"},
        "needs_approval": {"type": "boolean", "nullable": True},
        "level": {"type": "string"}, "sms_limit": {"type": "integer", "description": "the level's SMS part limit"},
        "audience": {"type": "object", "nullable": True, "properties": {
            "people": {"type": "integer", "description": "people (人)"},
            "by_role": {"type": "object", "additionalProperties": {"type": "integer"}},
            "by_region": {"type": "object", "additionalProperties": {"type": "integer"},
                          "description": "people by township (9-digit code; a county-level contact by its own code)"},
            "devices": {"type": "integer"},
            "by_channel": {"type": "object", "additionalProperties": {"type": "integer"},
                           "description": "messages (条) by channel kind"}}},
        "texts": {"type": "array", "items": {"type": "object", "properties": {
            "channel": {"type": "string"}, "kind": {"type": "string", "enum": ["alert", "update", "cancel"]},
            "lang": {"type": "string"}, "text": {"type": "string"}, "chars": {"type": "integer"},
            "segments": {"type": "integer", "nullable": True, "description": "SMS parts (null for other channels)"}}}},
        "problems": {"type": "array", "items": {"type": "object", "properties": {
            "code": {"type": "string", "enum": ["invalid", "empty_audience", "sms_too_long", "no_instruction",
                                                "no_channel"]},
            "severity": {"type": "string", "enum": ["error", "warning"]}, "message": {"type": "string"},
            "field": {"type": "string"}}}}}}}}}}
REJECT_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["reason"],
    "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 500, "description": "why (shown to the drafter)"},
        "version": {"type": "integer", "minimum": 1,
                    "description": "the version reviewed; 409 when another one is pending now. Without it only the "
                                   "version first submitted is rejected"}}}}}}


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _body(request: web.Request) -> Any:
    """The JSON body (a draft's size at most); 400 when it is not JSON, 413 when too large."""
    return await read_json(request, max_bytes=MAX_DRAFT_BYTES)


def version_of(body: dict[str, Any]) -> int | None:
    """The `version` reviewed, when given (an integer ≥ 1)."""
    version = body.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadRequest("invalid body", [{"field": "version", "error": "应为审阅的版本号 expected the version number "
                                                                       "you reviewed (an integer ≥ 1)"}])
    return version


@routes.post("/api/v1/warnings/preview", summary="Preview a draft: its audience and each channel's exact text "
             "(nothing is stored or sent)", roles=PREVIEW_ROLES,
             description="Takes the body of POST /api/v1/warnings. A draft with wrong fields is answered 200 with "
                         "`ok: false` and each field's problem; a body that is not a JSON object is a 400. The "
                         "reply code, drawn when the warning is stored, is shown as a placeholder of the same length.",
             request_body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
             responses={**PREVIEW_ANSWER, **error_responses(400)})
async def preview(request: web.Request) -> web.Response:
    doc = await previewer_of(request.app[services_key]).of_body(await _body(request))
    return web.json_response(doc, dumps=_dumps)


@routes.post("/api/v1/warnings/{id}/preview", summary="Preview an update of a warning: audience (the old and the "
             "new) and texts", roles=PREVIEW_ROLES, params=[WID],
             description="Takes the body of POST /api/v1/warnings/{id}/update; nothing is stored or sent.",
             request_body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
             responses={**PREVIEW_ANSWER, **error_responses(400, 404)})
async def preview_update(request: web.Request) -> web.Response:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    doc = await previewer_of(services).of_body(await _body(request), update_of=record)
    return web.json_response(doc, dumps=_dumps)


@routes.post("/api/v1/warnings/{id}/reject", summary="Reject the version waiting for approval, with a reason (驳回)",
             roles=REJECT_ROLES, params=[WID], request_body=REJECT_BODY,
             description="An approver (or admin) rejects; the drafter may withdraw their own draft (an issuer may "
                         "not reject anyone else's). A new warning becomes `rejected` (closed, nothing sent); a "
                         "rejected update leaves the warning at the version people were sent, restated as a new "
                         "version. 409 when nothing waits for approval, or the version reviewed is no longer the "
                         "one pending.",
             responses=error_responses(400, 403, 404, 409))
async def reject(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("invalid body", "expected a JSON object")
    token = principal(request)
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise BadRequest("invalid body", [{"field": "reason", "error": "请写明驳回理由 give the reason as text"}])
    record = await request.app[services_key].lifecycle.reject(
        request.match_info["id"], Actor(token.name, token.role), reason=reason, version=version_of(body))
    return web.json_response(record.summary(), dumps=_dumps)


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
