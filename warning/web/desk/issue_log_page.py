"""台账 · the 发布记录台账 page and its XLSX: every warning of a period, who issued and approved it, and how far it got."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from warning.issue_log import (
    BEIJING,
    MAX_PERIOD_DAYS,
    MEASURES,
    IssueLogRow,
    issue_log,
    issue_log_xlsx,
    period_bounds,
    warnings_between,
)
from warning.web.dashboard import render
from warning.web.desk.common import RECORD_ROLES, attachment, page, reference, url
from warning.web.keys import services_key, session_key
from warning.web.routing import query_param

logger = logging.getLogger(__name__)
_PERIOD = [query_param("from", "first day, YYYY-MM-DD (Beijing); default: the first of this month"),
           query_param("to", "last day, YYYY-MM-DD (Beijing); default: today")]


def _period(request: web.Request) -> tuple[date, date, str]:
    """The period asked for, and what is wrong with it ('' when nothing)."""
    today_d = request.app[services_key].clock.now().astimezone(BEIJING).date()
    q = request.query
    try:
        first = date.fromisoformat(q["from"]) if q.get("from") else today_d.replace(day=1)
        last = date.fromisoformat(q["to"]) if q.get("to") else today_d
    except ValueError:
        return today_d.replace(day=1), today_d, "日期无效 invalid date (YYYY-MM-DD)"
    if first > last:
        return first, last, "开始日期晚于结束日期 the first day is after the last"
    if (last - first).days >= MAX_PERIOD_DAYS:
        return first, last, f"期间最长 {MAX_PERIOD_DAYS} 天 a period is at most {MAX_PERIOD_DAYS} days"
    return first, last, ""


async def _rows(request: web.Request, first: date, last: date) -> list[IssueLogRow]:
    services = request.app[services_key]
    ref = reference(request)
    start, end = period_bounds(first, last)
    records = await warnings_between(services.warnings, start, end)
    return await issue_log(records, audit=services.audit, deliveries=services.deliveries,
                           names={r.code: r.name for r in ref.regions}, role_label=lambda k: ref.roles.label(k, "zh"),
                           needs_approval=services.policy.needs_approval)


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


@page("GET", "/dashboard/issue-log", "发布记录台账: the warnings of a period with issuer, approver, times, audience, "
      "coverage and confirmation rates", roles=RECORD_ROLES, params=_PERIOD, statuses=(400,))
async def issue_log_page(request: web.Request) -> web.Response:
    first, last, problem = _period(request)
    rows = [] if problem else await _rows(request, first, last)
    ctx: dict[str, Any] = {"rows": rows, "first": first, "last": last, "problem": problem, "pct": _pct,
                           "measures": MEASURES, "url": lambda p, **kw: url(request, p, **kw),
                           "xlsx": url(request, "/dashboard/issue-log.xlsx", **{"from": first.isoformat(),
                                                                               "to": last.isoformat()}),
                           "last_month": _last_month(first)}
    return render(request, "desk/issue_log.html", ctx, status=400 if problem else 200)


def _last_month(first: date) -> tuple[str, str]:
    end = first.replace(day=1) - timedelta(days=1)
    return end.replace(day=1).isoformat(), end.isoformat()


@page("GET", "/dashboard/issue-log.xlsx", "发布记录台账 as XLSX (one row per warning; counts and rates are numbers)",
      roles=RECORD_ROLES, params=_PERIOD, statuses=(400,))
async def issue_log_file(request: web.Request) -> web.Response:
    first, last, problem = _period(request)
    if problem:
        return render(request, "desk/error.html", {"status": 400, "zh": "期间无效", "en": "invalid period",
                                                   "detail": problem}, status=400)
    rows = await _rows(request, first, last)
    body = issue_log_xlsx(rows, first, last, request.app[services_key].clock.now())
    logger.info("issue log %s..%s (%d warnings) exported by %s", first, last, len(rows), request[session_key].token.name)
    span = f"{first:%Y%m%d}-{last:%Y%m%d}"
    return web.Response(body=body, headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Cache-Control": "no-store",
        "Content-Disposition": attachment(f"issue-log-{span}.xlsx", f"发布记录台账_{span}.xlsx")})
