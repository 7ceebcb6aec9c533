"""Coverage, deliveries (with export) and /metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from contacts.addresses import mask_credentials
from contacts.export import csv_text, guard, xlsx_bytes
from contacts.phone import mask_phone
from warning.coverage import coverage
from warning.delivery import DeliveryState
from warning.delivery_store import Row
from warning.errors import BadRequest
from warning.web.keys import services_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, int_query, path_param, principal, query_param

routes = ApiRoutes("deliveries")
DEFAULT_PAGE, MAX_PAGE = 200, 1000
#: deliveries looked at per JSON page at most (a filter that matches few answers a short page, not a long wait)
MAX_SCAN = 10_000
MAX_CURSOR = 10**9
WID = path_param("id", "warning id")
COLUMNS_ZH = ["投递编号", "版本", "接收对象", "姓名", "角色", "行政区划", "渠道类型", "通道", "地址", "状态", "尝试次数",
              "服务商编号", "原因", "更新时间"]
COLUMNS_EN = ["delivery", "version", "recipient", "name", "role", "region", "kind", "channel", "address", "state",
              "attempts", "provider_ref", "reason", "updated_at"]


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _names(request: web.Request) -> dict[str, str]:
    from warning.web.keys import reference_key

    ref = request.app.get(reference_key)
    return {r.code: r.name for r in ref.regions} if ref is not None else {}


@routes.get("/api/v1/warnings/{id}/coverage", summary="Delivery coverage: funnel by channel, region and role",
            roles=READERS, params=[WID], responses=error_responses(404))
async def get_coverage(request: web.Request) -> web.Response:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    doc = coverage(await services.deliveries.counts(record.id), region_names=_names(request))
    doc.update(id=record.id, state=record.state.value, version=record.version, exercise=record.is_exercise)
    return web.json_response(doc, dumps=_dumps)


def _row(row: Row, masked: bool, *, sheet: bool = False, admin: bool = False) -> list[str]:
    """One delivery as cells: phones masked when `masked` (viewers), a device URL's credentials unless `admin`;
    `sheet` makes text cells inert for spreadsheets."""
    d = row.delivery
    address = d.address
    if address.startswith("+"):
        address = mask_phone(address) if masked else address
    elif not admin:
        address = mask_credentials(address)
    cell = guard if sheet else str
    return [d.id, str(d.version), d.recipient_id, cell(row.name), row.role, row.region, d.kind, d.channel,
            cell(address), d.state.value, str(d.attempts), d.provider_ref or "", cell(d.error or ""),
            d.updated_at.isoformat() if d.updated_at else ""]


def _query(q: Mapping[str, str]) -> tuple[str | None, str | None, str, str, int, int]:
    """state, kind, region prefix, format, limit, offset — checked."""
    state, kind, region, fmt = q.get("state"), q.get("kind"), q.get("region", ""), q.get("format", "json")
    if state and state not in {s.value for s in DeliveryState}:
        raise BadRequest("invalid query", f"unknown state {state!r}")
    if fmt not in ("json", "csv", "xlsx"):
        raise BadRequest("invalid query", "format must be json, csv or xlsx")
    limit = int_query(q, "limit", DEFAULT_PAGE, lo=1, hi=MAX_PAGE)
    offset = int_query(q, "cursor", 0, lo=0, hi=MAX_CURSOR)
    return state, kind, region, fmt, limit, offset


@routes.get("/api/v1/warnings/{id}/deliveries", summary="Deliveries of a warning (filters; JSON, CSV or XLSX)",
            roles=READERS, params=[WID, query_param("state", "delivery state"), query_param("kind", "channel kind"),
                                   query_param("region", "region code prefix"),
                                   query_param("format", "json (default), csv or xlsx"),
                                   query_param("limit", f"JSON page size, 1–{MAX_PAGE} (default {DEFAULT_PAGE})",
                                               schema={"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                                   query_param("cursor", "next_cursor of the previous page (an offset)",
                                               schema={"type": "integer", "minimum": 0, "maximum": MAX_CURSOR})],
            description="A page may hold fewer than `limit` items when filters are given: at most "
                        f"{MAX_SCAN} deliveries are looked at per request; go on while `next_cursor` is not null.",
            responses=error_responses(400, 404))
async def list_deliveries(request: web.Request) -> web.StreamResponse:
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    q = request.query
    state, kind, region, fmt, limit, offset = _query(q)
    masked, admin = principal(request).role == "viewer", principal(request).role == "admin"
    ids = await services.deliveries.ids(record.id)

    def keep(row: Row) -> bool:
        return ((not state or row.delivery.state.value == state) and (not kind or row.delivery.kind == kind)
                and row.region.startswith(region))

    if fmt == "json":
        items: list[dict[str, Any]] = []
        pos, end = offset, min(len(ids), offset + max(limit, MAX_SCAN))
        while pos < end and len(items) < limit:  # each round moves pos on by at least one: the loop ends
            chunk = ids[pos:min(pos + limit, end)]
            pos += len(chunk)
            at = {did: i for i, did in enumerate(chunk)}
            for row in await services.deliveries.rows(record.id, chunk):
                if keep(row):
                    items.append(dict(zip(COLUMNS_EN, _row(row, masked, admin=admin), strict=True)))
                    if len(items) == limit:  # the next page starts right after this delivery
                        pos -= len(chunk) - at.get(row.delivery.id, len(chunk) - 1) - 1
                        break
        return web.json_response({"items": items, "next_cursor": str(pos) if pos < len(ids) else None},
                                 dumps=_dumps)

    async def rows() -> AsyncIterator[list[str]]:
        yield COLUMNS_EN if q.get("lang", "zh").startswith("en") else COLUMNS_ZH
        for i in range(0, len(ids), 1000):
            for row in await services.deliveries.rows(record.id, ids[i:i + 1000]):
                if keep(row):
                    yield _row(row, masked, sheet=True, admin=admin)

    name = f"deliveries-{record.id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "xlsx":
        return web.Response(body=await xlsx_bytes(rows(), title="投递明细"), headers=headers,
                            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    text = csv_text([r async for r in rows()])
    return web.Response(text="\ufeff" + text, content_type="text/csv", charset="utf-8", headers=headers)


@routes.get("/metrics", summary="Prometheus metrics", roles=None)
async def metrics(request: web.Request) -> web.Response:
    services = request.app[services_key]
    await services.metrics.refresh(services.redis, services.channels, services.clock.now())
    if services.feeds is not None:
        await services.feeds.statuses()  # sets the feeds' lag and silence gauges from the shared health
    return web.Response(body=services.metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
