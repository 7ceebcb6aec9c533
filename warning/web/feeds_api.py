"""Feeds on the web: their health, gauge readings, the cancellations gauges propose, and a hazard site's page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from contacts.model import HazardSite
from warning.errors import BadRequest, Forbidden, NotFound
from warning.feeds.chart import charts
from warning.feeds.service import FeedService
from warning.lifecycle import Actor
from warning.web.bodies import read_form
from warning.web.contacts_api import json_ok
from warning.web.dashboard import SESSION, STATE_ZH, render, signed_in
from warning.web.keys import reference_key, registry_key, services_key, session_book_key, session_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, path_param, principal, query_param

routes = ApiRoutes("feeds")
SITE = path_param("site", "hazard site id")
HOURS = query_param("hours", "hours of readings, 1 to 72 (default 24)", schema={"type": "integer", "minimum": 1,
                                                                              "maximum": 72})  # MAX_HOURS
#: the page's `hours`: a page without a session sends the browser to sign in before it reads its query, so the
#: document does not promise a 400 for a bad value there (the page shows one once signed in)
HOURS_PAGE = query_param("hours", "hours of readings, 1 to 72 (default 24)")
#: the readings a page or a listing shows: at most three days (what a feed keeps by default)
MAX_HOURS = 72
DECIDERS = ("issuer", "admin")
KIND_ZH = {"reservoir": "水库", "landslide": "滑坡", "debris_flow": "泥石流", "collapse": "崩塌",
           "river_station": "水文（水位）站", "flood_point": "内涝点", "other": "其他"}


def _feeds(request: web.Request) -> FeedService:
    feeds = request.app[services_key].feeds
    if feeds is None:  # built with the services; absent only in a process built without them
        raise NotFound("没有信息源 no feeds")
    return feeds


def _hours(request: web.Request) -> int:
    raw = request.query.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_HOURS:
        raise BadRequest("invalid query", f"hours must be a whole number from 1 to {MAX_HOURS}")
    return int(raw)


def _places(request: web.Request, codes: tuple[str, ...]) -> dict[str, str]:
    """Division names of the codes (places are named, never given as codes alone)."""
    tree = request.app[reference_key].regions
    return {c: r.name for c in codes if (r := tree.get(c)) is not None}


async def _site(request: web.Request, sid: str) -> HazardSite:
    site = await request.app[registry_key].site(sid)
    if site is None:
        raise NotFound("隐患点不存在 no such hazard site", sid)
    return site


@routes.get("/api/v1/feeds", summary="Polled feeds and their health", roles=READERS,
            description="{items: [{name, kind, url, last_success, last_error, seen, issued, held, skipped, lag_s, "
                        "stale, stale_after_s, last_heard, last_error_at, failures, interval_s, headers (names only), "
                        "skipped_by_reason, recent_skips}]}. lag_s: now − the newest alert `sent` (or reading) of the "
                        "feed. stale: silent (nothing heard: no answer from a CAP feed, no new reading from a gauge "
                        "feed) for more than stale_after_s. Credentials in the URL and header values are never shown.")
async def list_feeds(request: web.Request) -> web.Response:
    return json_ok({"items": [s.to_json() for s in await _feeds(request).statuses()]})


@routes.get("/api/v1/sites/{site}/readings", summary="A gauge-watched site's readings and thresholds",
            roles=READERS, params=[SITE, HOURS], responses=error_responses(400, 404))
async def site_readings(request: web.Request) -> web.Response:
    hours = _hours(request)  # the query first: a bad one is a 400 whatever the site
    site = await _site(request, request.match_info["site"])
    feeds, now = _feeds(request), request.app[services_key].clock.now()
    series = await feeds.gauges.series(site.station, since=now - timedelta(hours=hours)) if site.station else []
    state = await feeds.gauges.state(site.id)
    return json_ok({"site": site.id, "station": site.station or None,
                    "thresholds": site.thresholds.as_dict() if site.thresholds else None,
                    "warning": state.warning_id if state else None,
                    "items": [{"time": r.time.isoformat(), "water_level_m": r.water_level_m, "rain_mm": r.rain_mm}
                              for r in series]})


@routes.get("/api/v1/gauges/proposals", summary="Cancellations proposed by gauges, waiting for a person",
            roles=READERS, description="A gauge whose readings stayed below every threshold for the feed's "
                                       "clear_after_s proposes cancelling its site's warning; never automatic.")
async def list_proposals(request: web.Request) -> web.Response:
    return json_ok({"items": [p.to_json() for p in await _feeds(request).proposals.list()]})


@routes.post("/api/v1/gauges/proposals/{site}/confirm", summary="Confirm a proposed cancellation: the warning is "
             "cancelled (解除) as any cancellation is", roles=("issuer",), params=[SITE],
             responses=error_responses(404, 409))
async def confirm_proposal(request: web.Request) -> web.Response:
    token = principal(request)
    record = await _feeds(request).proposals.confirm(request.match_info["site"], Actor(token.name, token.role))
    return json_ok(record.summary())


@routes.post("/api/v1/gauges/proposals/{site}/dismiss", summary="Keep the warning: the proposal is dropped (proposed "
             "again only after the readings rise above and fall again)", roles=("issuer",), params=[SITE],
             responses=error_responses(404))
async def dismiss_proposal(request: web.Request) -> web.Response:
    token = principal(request)
    await _feeds(request).proposals.dismiss(request.match_info["site"], Actor(token.name, token.role))
    return json_ok({"site": request.match_info["site"], "dismissed": True})


@routes.get("/dashboard/sites/{site}", summary="Dashboard: a hazard site, its gauge's readings against its "
            "thresholds, and a proposed cancellation", roles=None, params=[SITE, HOURS_PAGE], description=SESSION,
            responses={"303": {"description": "no session: to /login"}, **error_responses(400, 403, 404)})
@signed_in(page=True)
async def site_page(request: web.Request) -> web.Response:
    hours = _hours(request)  # the query first: a bad one is a 400 whatever the site
    site = await _site(request, request.match_info["site"])
    feeds, services = _feeds(request), request.app[services_key]
    now = services.clock.now()
    start = now - timedelta(hours=hours)
    series = await feeds.gauges.series(site.station, since=start) if site.station else []
    state = await feeds.gauges.state(site.id)
    record = await services.warnings.get(state.warning_id) if state and state.warning_id else None
    feed = feeds.config(state.feed) if state else None
    levels = dict(feed.gauge.levels) if feed and feed.gauge else None
    proposal = next((p for p in await feeds.proposals.list() if p.site_id == site.id), None)
    context: dict[str, Any] = {
        "site": site, "hours": hours, "charts": charts(series, site.thresholds, start=start, end=now, levels=levels),
        "latest": series[-1] if series else None, "warning": record.summary() if record else None,
        "proposal": proposal, "may_decide": request[session_key].token.role in DECIDERS, "kind_zh": KIND_ZH,
        "state_zh": STATE_ZH,
        "places": _places(request, (site.region, *site.downstream)),
    }
    return render(request, "dashboard/site.html", context)


@routes.post("/dashboard/sites/{site}/proposal", summary="Dashboard: confirm or dismiss a proposed cancellation (form: "
             "csrf, action=confirm|dismiss)", roles=None, params=[SITE], description=SESSION,
             responses={"303": {"description": "done; back to the site's page"}, **error_responses(400, 403, 404, 409)})
@signed_in(page=True, roles=DECIDERS)
async def decide_proposal(request: web.Request) -> web.Response:
    session = request[session_key]
    form = await read_form(request)
    if not request.app[session_book_key].csrf_ok(f"s:{session.sid}", str(form.get("csrf", ""))):
        raise Forbidden("bad CSRF token", "reload the page and try again")
    action, sid = str(form.get("action", "")), request.match_info["site"]
    actor = Actor(session.token.name, session.token.role)
    if action == "confirm":
        await _feeds(request).proposals.confirm(sid, actor)
    elif action == "dismiss":
        await _feeds(request).proposals.dismiss(sid, actor)
    else:
        raise BadRequest("invalid form", "action must be confirm or dismiss")
    raise web.HTTPSeeOther(f"/dashboard/sites/{sid}")


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
