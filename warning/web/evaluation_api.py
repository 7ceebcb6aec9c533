"""演练评估 over HTTP: a warning's evaluation as JSON, XLSX, or a printable page (also on the dashboard)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from contacts.export import guard
from contacts.phone import mask_phone
from warning.errors import BadRequest
from warning.evaluation import Labels, duration_zh, evaluate, sheets, tried_zh
from warning.web.dashboard import local_time, render, signed_in
from warning.web.keys import reference_key, services_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, path_param, principal, query_param

routes = ApiRoutes("follow-up")
pages = ApiRoutes("dashboard")
WID = path_param("id", "warning id")
FORMATS = ("json", "xlsx", "html")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ABOUT = ("For any warning; `drill` says whether it was an exercise (CAP status Exercise), and the title follows "
         "(演练评估报告 / 预警发布评估报告). Coverage as GET .../coverage; time to confirm per person from the send of "
         "the version their confirmation was counted on: median, 90th percentile (nearest rank), confirmed within "
         "5 and 15 minutes, a histogram; who never confirmed by township and village with what was tried. "
         "Viewers see phone numbers masked.")


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def document(request: web.Request) -> dict[str, Any]:
    """The evaluation of the warning named in the path, labelled for the caller (phones masked for viewers)."""
    services = request.app[services_key]
    record = await services.lifecycle.get(request.match_info["id"])
    ref = request.app.get(reference_key)
    names = {r.code: r.name for r in ref.regions} if ref is not None else {}
    masked = principal(request).role == "viewer"
    labels = Labels(regions=names, role=(lambda k: ref.roles.label(k, "zh")) if ref is not None else str,
                    phone=mask_phone if masked else str)
    return await evaluate(services.deliveries, services.redis, record, labels=labels, now=services.clock.now())


def workbook(tables: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> bytes:
    """Sheets as an XLSX workbook; text cells are made inert for spreadsheets, numbers stay numbers."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, rows in tables:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append([guard(c) if isinstance(c, str) else c for c in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def page(request: web.Request, doc: Mapping[str, Any]) -> web.Response:
    """The printable report (A4, Chinese first, Beijing time)."""
    return render(request, "dashboard/evaluation.html", {"doc": doc, "duration": duration_zh, "tried": tried_zh})


@routes.get("/api/v1/warnings/{id}/evaluation", summary="演练评估: a warning's evaluation (JSON, XLSX or a printable page)",
            roles=READERS, params=[WID, query_param("format", "json (default), xlsx or html (the printable page)",
                                                    schema={"type": "string", "enum": list(FORMATS)})],
            description=ABOUT, responses=error_responses(400, 404))
async def get_evaluation(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise BadRequest("查询参数无效 invalid query parameters", {"format": "json, xlsx, html"})
    doc = await document(request)
    if fmt == "json":
        return web.json_response(doc, dumps=_dumps)
    if fmt == "html":
        return page(request, doc)
    name = f"evaluation-{doc['id']}.xlsx"
    return web.Response(body=workbook(sheets(doc, local_time)), content_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@pages.get("/dashboard/warnings/{id}/evaluation", summary="Dashboard: the printable evaluation (演练评估) of a warning",
           roles=None, params=[WID], description="Signed in with the dashboard's session cookie.",
           responses={"303": {"description": "no session: to /login"}, **error_responses(403, 404)})
@signed_in(page=True)
async def evaluation_page(request: web.Request) -> web.Response:
    return page(request, await document(request))


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
    add_routes(app, pages)
