"""Warnings over HTTP: draft, approve, update, cancel, CAP in and out, the Atom feed, audit and record."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from aiohttp import web

from warning.cap_emit import FeedEntry, atom_feed
from warning.errors import BadRequest, NotFound
from warning.issuer import cap_document
from warning.lifecycle import Actor, Unfinished
from warning.model import Scope, Status, WarningState
from warning.record import WarningRecord
from warning.web import idempotent
from warning.web.bodies import parse_json, read_bytes, read_json
from warning.web.idempotent import Answer
from warning.web.keys import services_key, settings_key
from warning.web.openapi import error_responses
from warning.web.routing import (
    READERS,
    ApiRoutes,
    int_query,
    path_param,
    pattern_doc,
    pattern_query,
    principal,
    query_param,
)

routes = ApiRoutes("warnings")
#: a draft (and any other warning action's body) is at most this much JSON
MAX_DRAFT_BYTES = 1024 * 1024
MAX_VERSION = 10**6
#: a list cursor: the created timestamp of the last warning of the previous page (finite, not negative)
CURSOR = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
WID = path_param("id", "warning id")
DRAFT_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["event", "level", "headline"],
    "properties": {
        "event": {"type": "string", "description": "event type key or Chinese name (rainstorm, 暴雨, …)"},
        "level": {"type": "string", "enum": ["blue", "yellow", "orange", "red"]},
        "headline": {"type": "string"}, "description": {"type": "string"}, "instruction": {"type": "string"},
        "areas": {"type": "array", "items": {"type": "string"}, "description": "region codes (6, 9 or 12 digits)"},
        "polygon": {"type": "array", "nullable": True, "items": {"type": "array", "items": {"type": "number"}}},
        "circle": {"type": "object", "nullable": True},
        "roles": {"type": "array", "nullable": True, "items": {"type": "string"}},
        "sites": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string", "enum": ["Actual", "Exercise", "Test"]},
        "sms_summary": {"type": "string", "maxLength": 70,
                        "description": "短信摘要: the issuer's own short text for SMS, in place of the description "
                                       "(kept as the CAP parameter EW_SMS_SUMMARY); no 【】"},
        "expires": {"type": "string", "format": "date-time"}}}}}}


APPROVE_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {
        "version": {"type": "integer", "minimum": 1,
                    "description": "the version the approver reviewed; 409 when another one is pending now. Without "
                                   "it only the version first submitted is approved"},
        "override": {"type": "boolean", "description": "admin break-glass: approve without a second person"},
        "reason": {"type": "string", "description": "the written reason of an override (at least 10 characters)"}}}}}}
#: a change stored whose planning failed midway: said with the answer, so nobody sends the request again
UNFINISHED_NOTE = ("已记录，发送计划未完成，将由后台自动补全，请勿重复提交 recorded; planning its messages was interrupted and is "
                   "completed automatically: do not send the request again")


def _actor(request: web.Request) -> Actor:
    token = principal(request)
    return Actor(token.name, token.role)


async def _json(request: web.Request) -> Any:
    return await read_json(request, max_bytes=MAX_DRAFT_BYTES)


def _unfinished(record: WarningRecord) -> dict[str, Any]:
    return {**record.summary(), "note": UNFINISHED_NOTE}


async def _stored(request: web.Request, wid: str) -> dict[str, Any] | None:
    """What is stored under the id a failed or crashed create reserved (None: nothing), noting unfinished planning."""
    warnings = request.app[services_key].warnings
    record = await warnings.get(wid)
    if record is None:
        return None
    if record.state is WarningState.DISPATCHING and await warnings.planned_version(wid) != record.version:
        return _unfinished(record)
    return record.summary()


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


@routes.post("/api/v1/warnings", summary="Draft a warning (orange and red wait for approval)", roles=("issuer",),
             params=[idempotent.PARAM], request_body=DRAFT_BODY,
             responses={"201": {"description": "created (a repeat with the same Idempotency-Key: the first answer)"},
                        **error_responses(400, 409, 422)})
async def create_warning(request: web.Request) -> web.Response:
    raw = await read_bytes(request, max_bytes=MAX_DRAFT_BYTES)
    body = parse_json(raw)
    lifecycle = request.app[services_key].lifecycle
    actor = _actor(request)

    async def run(wid: str) -> Answer:
        try:
            record = await lifecycle.draft(body, actor, warning_id=wid)
        except Unfinished as exc:
            return 201, _unfinished(exc.record)
        return 201, record.summary()

    async def stored(wid: str) -> Answer | None:
        found = await _stored(request, wid)
        return (201, found) if found is not None else None

    return await idempotent.once(request, raw, lifecycle.new_id(), run, stored)


@routes.get("/api/v1/warnings", summary="List warnings, newest first", roles=READERS,
            params=[query_param("state", "only this state", schema={"type": "string",
                                                                     "enum": [s.value for s in WarningState]}),
                    query_param("limit", "page size, 1–200 (default 50)",
                                schema={"type": "integer", "minimum": 1, "maximum": 200}),
                    query_param("cursor", "from the previous page's next_cursor (a timestamp)",
                                schema={"type": "string", "pattern": pattern_doc(CURSOR)})],
            responses=error_responses(400))
async def list_warnings(request: web.Request) -> web.Response:
    q = request.query
    limit = int_query(q, "limit", 50, lo=1, hi=200)
    cursor = pattern_query(q, "cursor", CURSOR, "应为上一页的 next_cursor expected a next_cursor (a timestamp)")
    before = float(cursor) if cursor is not None else None
    state = q.get("state")
    if state and state not in {s.value for s in WarningState}:
        raise BadRequest("invalid query", f"unknown state {state!r}")
    records, nxt = await request.app[services_key].warnings.list(limit=limit, before=before)
    items = [r.summary() for r in records if not state or r.state.value == state]
    return web.json_response({"items": items, "next_cursor": str(nxt) if nxt is not None else None}, dumps=_dumps)


@routes.get("/api/v1/warnings/{id}", summary="One warning", roles=READERS, params=[WID],
            responses=error_responses(404))
async def get_warning(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    body = record.summary()
    body["content"] = record.content.to_json()
    return web.json_response(body, dumps=_dumps)


def _version(body: dict[str, Any]) -> int | None:
    version = body.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadRequest("invalid body", [{"field": "version", "error": "应为审阅的版本号 expected the version number "
                                                                       "you reviewed (an integer ≥ 1)"}])
    return version


async def _changed(change: Awaitable[WarningRecord]) -> web.Response:
    """Answer a person's change; one stored whose planning failed midway is answered with what was stored."""
    try:
        record = await change
    except Unfinished as exc:
        return web.json_response(_unfinished(exc.record), dumps=_dumps)
    return web.json_response(record.summary(), dumps=_dumps)


@routes.post("/api/v1/warnings/{id}/approve", summary="Approve the reviewed version (a second person); admin override "
             "with a reason", roles=("approver",), params=[WID], request_body=APPROVE_BODY,
             responses=error_responses(400, 403, 404, 409))
async def approve_warning(request: web.Request) -> web.Response:
    body = await _json(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise BadRequest("invalid body", "expected a JSON object")
    override = body.get("override", False) is True
    return await _changed(request.app[services_key].lifecycle.approve(
        request.match_info["id"], _actor(request), version=_version(body), override=override,
        reason=str(body.get("reason", ""))))


@routes.post("/api/v1/warnings/{id}/update", summary="Issue a new version (CAP Update)", roles=("issuer",),
             params=[WID], request_body=DRAFT_BODY, responses=error_responses(400, 404, 409))
async def update_warning(request: web.Request) -> web.Response:
    return await _changed(request.app[services_key].lifecycle.update(request.match_info["id"], await _json(request),
                                                                     _actor(request)))


@routes.post("/api/v1/warnings/{id}/cancel", summary="Cancel (解除): everyone who was sent it is told",
             roles=("issuer",), params=[WID], responses=error_responses(404, 409))
async def cancel_warning(request: web.Request) -> web.Response:
    body = await _json(request) if request.can_read_body else {}
    reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
    return await _changed(request.app[services_key].lifecycle.cancel(request.match_info["id"], _actor(request),
                                                                     reason=reason))


@routes.post("/api/v1/cap", summary="Take in a CAP 1.2 document from a feed or a peer (the feed is the token)",
             roles=("feed",), params=[idempotent.PARAM],
             description="The feed is the caller's token: its name is the feed's name, and `[[feeds]] auto_issue` "
                         "says which levels go out without a person. A CAP Update or Cancel may only follow "
                         "warnings of the same feed and CAP sender (else 409).",
             request_body={"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}},
             responses={"202": {"description": "accepted: {id, duplicate, state}"},
                        **error_responses(400, 409, 413, 422)})
async def post_cap(request: web.Request) -> web.Response:
    if "feed" in request.query:
        raise BadRequest("invalid query", "来源由令牌确定，不接受 ?feed= the feed is the token's name; ?feed= is not "
                                          "accepted")
    data = await request.read()
    if not data.strip():
        raise BadRequest("empty body", "send the CAP document as application/xml")
    lifecycle = request.app[services_key].lifecycle
    actor = _actor(request)

    async def run(wid: str) -> Answer:
        try:
            res = await lifecycle.ingest(data, actor, warning_id=wid)
        except Unfinished as exc:
            return 202, {"id": exc.record.id, "duplicate": False, "state": exc.record.state.value,
                         "note": UNFINISHED_NOTE}
        body: dict[str, Any] = {"id": res.id, "duplicate": res.duplicate}
        if res.state:
            body["state"] = res.state
        if res.note:
            body["note"] = res.note
        return 202, body

    async def stored(wid: str) -> Answer | None:
        found = await _stored(request, wid)
        if found is None:
            return None
        return 202, {"id": found["id"], "duplicate": False, "state": found["state"],
                     **({"note": found["note"]} if "note" in found else {})}

    return await idempotent.once(request, data, lifecycle.new_id(), run, stored)


async def _cap_of(request: web.Request, record: WarningRecord) -> bytes:
    version = int_query(request.query, "version", 0, lo=1, hi=MAX_VERSION)  # 0: absent, the current one
    content = record.content
    if version:
        found = await request.app[services_key].warnings.version_content(record.id, version)
        if found is None:
            raise NotFound("not found", f"no version {version}")
        content = found
    services = request.app[services_key]
    return cap_document(content, services.messages.issuer, services.event_types)


@routes.get("/api/v1/warnings/{id}/cap", summary="The warning as CAP 1.2 XML (?version=n)", roles=READERS,
            params=[WID, query_param("version", "an earlier version (1, 2, …)",
                                     schema={"type": "integer", "minimum": 1, "maximum": MAX_VERSION})],
            responses=error_responses(400, 404))
async def get_cap(request: web.Request) -> web.Response:
    record = await request.app[services_key].lifecycle.get(request.match_info["id"])
    return web.Response(body=await _cap_of(request, record), content_type="application/cap+xml", charset="utf-8")


def _public(record: WarningRecord) -> bool:
    return (record.content.scope is Scope.PUBLIC and record.content.status is Status.ACTUAL
            and record.issued_version > 0 and record.state in (WarningState.DISPATCHING, WarningState.ACTIVE,
                                                               WarningState.CANCELLED))


@routes.get("/feeds/cap/{id}.xml", summary="A public warning's CAP document (linked from the Atom feed)", roles=None,
            params=[WID], responses=error_responses(404))
async def public_cap(request: web.Request) -> web.Response:
    record = await request.app[services_key].warnings.get(request.match_info["id"])
    if record is None or not _public(record):
        raise NotFound("not found", "no such public warning")
    services = request.app[services_key]
    return web.Response(body=cap_document(record.content, services.messages.issuer, services.event_types),
                        content_type="application/cap+xml", charset="utf-8")


@routes.get("/feeds/cap.atom", summary="Active public warnings as an Atom feed of CAP", roles=None)
async def cap_atom(request: web.Request) -> web.Response:
    services = request.app[services_key]
    settings = request.app[settings_key]
    base = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    entries = []
    for wid in await services.warnings.active_ids():
        record = await services.warnings.get(wid)
        if record is None or not _public(record) or record.state is WarningState.CANCELLED:
            continue
        entries.append(FeedEntry(warning=record.content, cap_url=f"{base}/feeds/cap/{record.id}.xml",
                                 updated=record.updated_at))
    issuer = settings.section("issuer")
    body = atom_feed(entries, feed_url=f"{base}/feeds/cap.atom", title=f"{issuer.get('name', '')} 预警信息",
                     updated=services.clock.now())
    return web.Response(body=body, content_type="application/atom+xml", charset="utf-8")


@routes.get("/api/v1/warnings/{id}/audit", summary="The warning's audit log", roles=READERS, params=[WID],
            responses=error_responses(404))
async def get_audit(request: web.Request) -> web.Response:
    services = request.app[services_key]
    await services.lifecycle.get(request.match_info["id"])
    entries = await services.audit.entries(request.match_info["id"])
    return web.json_response({"items": [e.to_json() for e in entries]}, dumps=_dumps)


@routes.get("/api/v1/warnings/{id}/record", summary="The full record for the archive (JSON or CSV)",
            roles=("issuer", "approver"), params=[WID, query_param("format", "json (default) or csv")],
            responses=error_responses(400, 404))
async def export_record(request: web.Request) -> web.StreamResponse:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("invalid query", "format must be json or csv")
    entries = await services.audit.entries(record.id)
    await services.audit.record(record.id, "export", principal(request).name, format=fmt)
    if fmt == "json":
        versions = []
        for v in range(1, record.version + 1):
            content = await services.warnings.version_content(record.id, v)
            versions.append({"version": v, "content": content.to_json() if content else None})
        body = {"warning": record.summary(), "versions": versions, "audit": [e.to_json() for e in entries],
                "coverage": await services.deliveries.counts(record.id)}
        return web.json_response(body, dumps=_dumps, headers={
            "Content-Disposition": f'attachment; filename="warning-{record.id}.json"'})
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel opens UTF-8 CSV correctly only with a BOM
    writer = csv.writer(buf)
    writer.writerow(["时间 at", "操作 action", "操作人 actor", "详情 detail"])
    for e in entries:
        writer.writerow([e.at, e.action, e.actor, json.dumps(e.detail, ensure_ascii=False)])
    return web.Response(text=buf.getvalue(), content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="warning-{record.id}.csv"'})


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the core services on the app's Redis and registry; start workers and timers unless told not to."""
    from warning.web.app import build_app_services, start_background

    services = build_app_services(app)
    app[services_key] = services
    tasks = await start_background(app, services)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in services.channels.values():
            await channel.aclose()


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
    app.cleanup_ctx.append(services_ctx)
