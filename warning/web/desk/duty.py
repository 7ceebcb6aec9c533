"""值班 · the duty roster: a week by county and township, the upload with its row report, the template sheet."""

from __future__ import annotations

import io
import logging
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from contacts.duty import LOCAL_TZ, check_roster
from contacts.tabular import FileProblem, sniff_format
from contacts.template import duty_template
from warning.web.dashboard import render
from warning.web.desk.common import (
    DUTY_WRITERS,
    attachment,
    county_of,
    error_page,
    form_body,
    masked,
    may,
    page,
    reference,
    url,
)
from warning.web.desk.today import duty_regions, people_of, shift_of
from warning.web.keys import registry_key, services_key, session_key, settings_key
from warning.web.routing import path_param, query_param

logger = logging.getLogger(__name__)
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _today(request: web.Request) -> date:
    return request.app[services_key].clock.now().astimezone(LOCAL_TZ).date()


def _monday(request: web.Request) -> tuple[date, str]:
    """The Monday of the week asked for (?week=any date of it), this week's otherwise; and a problem, if any."""
    text = request.query.get("week", "")
    try:
        day = date.fromisoformat(text) if text else _today(request)
    except ValueError:
        return _today(request) - timedelta(days=_today(request).weekday()), (
            f"日期无效 invalid date: {text[:20]!r} (YYYY-MM-DD)")
    return day - timedelta(days=day.weekday()), ""


@page("GET", "/dashboard/duty", "Duty roster: one week by county and township (值班员, 带班领导)",
      params=[query_param("week", "any date of the week (YYYY-MM-DD); this week by default")], statuses=(400,))
async def week_page(request: web.Request) -> web.Response:
    monday, problem = _monday(request)
    days = [monday + timedelta(days=i) for i in range(7)]
    services = request.app[services_key]
    now = services.clock.now()
    entries = await services.duty.between(days[0], days[-1])
    people = await people_of(request.app[registry_key], entries)
    hide = masked(request)
    grid: dict[tuple[str, date], list[Any]] = {}
    for e in entries:
        grid.setdefault((e.region, e.day), []).append(shift_of(e, people, masked=hide, at=now))
    regions = duty_regions(request.app, sorted({e.region for e in entries}))
    rows = [{"code": code, "name": name, "county": len(code) == 6,
             "days": [grid.get((code, d), []) for d in days]} for code, name in regions]
    return render(request, "desk/duty.html", {
        "rows": rows, "days": [{"date": d, "zh": WEEKDAYS_ZH[i], "en": WEEKDAYS_EN[i], "today": d == _today(request)}
                               for i, d in enumerate(days)],
        "monday": monday, "prev": url(request, "/dashboard/duty", week=(monday - timedelta(days=7)).isoformat()),
        "next": url(request, "/dashboard/duty", week=(monday + timedelta(days=7)).isoformat()),
        "this_week": url(request, "/dashboard/duty"), "problem": problem, "shifts": len(entries),
        "may_upload": may(request, DUTY_WRITERS), "url": lambda path, **kw: url(request, path, **kw)},
        status=400 if problem else 200)


@page("GET", "/dashboard/duty/upload", "Duty roster: the upload form", roles=DUTY_WRITERS)
async def upload_form(request: web.Request) -> web.Response:
    return render(request, "desk/duty_upload.html", {"report": None, "url": lambda p, **kw: url(request, p, **kw)})


@page("POST", "/dashboard/duty/upload", "Duty roster: upload a sheet (multipart `file`); all rows or none, with "
      "the row report", roles=DUTY_WRITERS, statuses=(413,), body=form_body((), upload=True))
async def upload(request: web.Request) -> web.Response:
    upload = (await request.post()).get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    name = upload.filename if isinstance(upload, web.FileField) else ""
    ctx: dict[str, Any] = {"report": None, "filename": name, "url": lambda p, **kw: url(request, p, **kw)}
    if not data.strip():
        return render(request, "desk/duty_upload.html", {**ctx, "problem": "请选择要上传的文件（文件为空） choose a "
                                                                           "file to upload (the file is empty)"},
                      status=400)
    app = request.app
    phone_region = str(app[settings_key].section("registry").get("default_phone_region", "CN"))
    try:
        fmt = sniff_format(data[:8], name, upload.content_type if isinstance(upload, web.FileField) else "")
        entries, bad = await check_roster(io.BytesIO(data), fmt, ref=reference(request),
                                          directory=app[registry_key], default_phone_region=phone_region)
    except FileProblem as exc:
        return render(request, "desk/duty_upload.html", {**ctx, "problem": str(exc)}, status=400)
    if bad:
        return render(request, "desk/duty_upload.html", {**ctx, "report": {"accepted": 0, "updated": 0,
                                                                            "rejected": bad}}, status=400)
    services = app[services_key]
    new, replaced = await services.duty.put(entries, services.clock.now())
    logger.info("duty roster upload by %s (dashboard): %d new, %d replaced", request[session_key].token.name, new,
                replaced)
    first = min((e.day for e in entries), default=None)
    return render(request, "desk/duty_upload.html", {**ctx, "report": {"accepted": new, "updated": replaced,
                                                                        "rejected": []},
                                                     "week": url(request, "/dashboard/duty",
                                                                 week=first.isoformat() if first else "")})


@page("GET", "/dashboard/duty/template.{fmt}",
      "Duty roster: the sheet template (Chinese headers, example rows that import as they stand)",
      roles=DUTY_WRITERS, params=[path_param("fmt", "xlsx or csv")], statuses=(404,))
async def template(request: web.Request) -> web.Response:
    fmt = request.match_info["fmt"]
    if fmt not in ("xlsx", "csv"):
        return error_page(request, 404, "没有这种格式的模板", "no template in that format", "xlsx, csv")
    body, content_type = duty_template(reference(request), county_of(request), _today(request), fmt)
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store",
                                            "Content-Disposition": attachment(f"duty-template.{fmt}",
                                                                              f"值班表模板.{fmt}")})
