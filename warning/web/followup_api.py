"""Follow-up over HTTP: who is still unconfirmed (for door-to-door), field reports, and the duty roster."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from aiohttp import web

from contacts.duty import check_roster
from contacts.export import csv_text, guard, xlsx_bytes
from contacts.phone import mask_phone
from contacts.tabular import FileProblem, sniff_format
from warning import keys
from warning.errors import BadRequest
from warning.followup import by_place, unconfirmed
from warning.logs import redact
from warning.web.keys import reference_key, registry_key, services_key, settings_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, path_param, principal, query_param

routes = ApiRoutes("follow-up")
WID = path_param("id", "warning id")
COLUMNS = ["乡镇 township", "村/社区 village", "姓名 name", "角色 role", "电话 phone", "已尝试 tried"]


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _names(request: web.Request) -> dict[str, str]:
    ref = request.app.get(reference_key)
    return {r.code: r.name for r in ref.regions} if ref is not None else {}


async def unreached(request: web.Request) -> list[dict[str, Any]]:
    """Every person of the warning who has not confirmed, with the deliveries tried (phones masked for viewers)."""
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    masked = principal(request).role == "viewer"
    return await unconfirmed(services.deliveries, record.id, phone=mask_phone if masked else str)


@routes.get("/api/v1/warnings/{id}/unreached", summary="People still unconfirmed, by township and village",
            roles=READERS, params=[WID, query_param("format", "json (default), csv or xlsx")],
            description="The list for door-to-door follow-up; viewers see phone numbers masked.",
            responses=error_responses(400, 404))
async def get_unreached(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv", "xlsx"):
        raise BadRequest("invalid query", "format must be json, csv or xlsx")
    people = await unreached(request)
    names = _names(request)
    wid = request.match_info["id"]
    if fmt == "json":
        body = {"id": wid, "total": len(people), "townships": by_place(people, names)}
        return web.json_response(body, dumps=_dumps)
    table = [COLUMNS] + [[guard(names.get(p["region"][:9], p["region"][:9])),
                          guard(names.get(p["region"][:12], p["region"][:12]) if len(p["region"]) >= 12 else ""),
                          guard(p["name"]), guard(p["role"]), guard(p["phone"]),
                          "; ".join(f"{t['kind']}:{t['state']}" for t in p["tried"])] for p in people]
    disposition = {"Content-Disposition": f'attachment; filename="unreached-{wid}.{fmt}"'}
    if fmt == "csv":
        return web.Response(text=csv_text(table), content_type="text/csv", charset="utf-8", headers=disposition)
    async def lines() -> AsyncIterator[list[str]]:
        for line in table:
            yield line

    return web.Response(body=await xlsx_bytes(lines(), title="未确认人员"), headers=disposition,
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@routes.get("/api/v1/warnings/{id}/reports", summary="Field reports (回执内容): replies that were not confirmations",
            roles=READERS, params=[WID], description="Viewers see phone numbers in the text masked.",
            responses=error_responses(404))
async def get_reports(request: web.Request) -> web.Response:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    redis: Any = services.redis  # decode_responses=True: the replies are str
    raw = await redis.xrange(keys.reports_key(record.id), "-", "+", count=1000)
    shown = redact if principal(request).role == "viewer" else str  # a report may quote a phone number
    items = [{"id": rid, "at": f.get("at"), "contact": f.get("contact"), "name": f.get("name"),
              "region": f.get("region"), "channel": f.get("channel"), "text": shown(f.get("text") or "")}
             for rid, f in raw]
    return web.json_response({"items": items}, dumps=_dumps)


@routes.get("/api/v1/duty", summary="The duty roster (值班表)", roles=READERS,
            params=[query_param("region", "a region code prefix"), query_param("date", "YYYY-MM-DD")],
            description="Each shift: region, date, start, end, phone, contact_id, name (值班员), leader and "
                        "leader_phone (带班领导). Viewers see phone numbers masked.", responses=error_responses(400))
async def get_duty(request: web.Request) -> web.Response:
    q = request.query
    try:
        day = date.fromisoformat(q["date"]) if q.get("date") else None
    except ValueError:
        raise BadRequest("invalid query", "date must be YYYY-MM-DD") from None
    region = q.get("region", "")
    if region and not region.isdigit():
        raise BadRequest("invalid query", "region must be digits")
    entries = await request.app[services_key].duty.listing(region=region, day=day)
    masked = principal(request).role == "viewer"
    items = []
    for e in entries:
        item = e.to_json()
        for key in ("phone", "leader_phone"):
            if masked and item[key]:
                item[key] = mask_phone(item[key])
        items.append(item)
    return web.json_response({"items": items}, dumps=_dumps)


@routes.post("/api/v1/duty", summary="Import duty roster rows (CSV or XLSX)", roles=("issuer",),
             description="Columns: region (6 or 9 digits), date, start, end (HH:MM; an end not after the start "
                         "runs past midnight), phone or contact_id, name, leader (带班领导) and leader_phone "
                         "(带班领导电话, a mobile), both optional. Nothing is written when a row is bad.",
             responses={"200": {"description": "{accepted, updated, rejected}"}, **error_responses(400, 413)})
async def post_duty(request: web.Request) -> web.Response:
    data = await request.read()
    if not data.strip():
        raise BadRequest("empty body", "send the roster as CSV or XLSX")
    region = str(request.app[settings_key].section("registry").get("default_phone_region", "CN"))
    try:
        fmt = sniff_format(data[:8], "", request.content_type)
        entries, bad = await check_roster(io.BytesIO(data), fmt, ref=request.app.get(reference_key),
                                          directory=request.app[registry_key], default_phone_region=region)
    except FileProblem as exc:
        raise BadRequest("invalid file", str(exc)) from None
    if bad:
        return web.json_response({"accepted": 0, "updated": 0, "rejected": bad}, status=400, dumps=_dumps)
    services = request.app[services_key]
    new, replaced = await services.duty.put(entries, services.clock.now())
    return web.json_response({"accepted": new, "updated": replaced, "rejected": []}, dumps=_dumps)


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
