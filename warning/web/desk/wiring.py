"""Mounting the desk pages: their routes, and the demo county's duty roster when the demo starts on an empty one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from contacts.demo import demo_roster
from contacts.duty import LOCAL_TZ
from warning.web.desk import contacts, duty, issue_log_page, registry  # noqa: F401  (each declares its pages)
from warning.web.desk.common import routes
from warning.web.keys import reference_key, registry_key, services_key, settings_key

logger = logging.getLogger(__name__)
#: the demo roster covers this week and the next
DEMO_ROSTER_DAYS = 14


async def demo_roster_ctx(app: web.Application) -> AsyncIterator[None]:
    """In the demo, a roster with nothing this week or the next gets two weeks of shifts from this Monday, so the
    duty pages and the home page show something whenever the demo is started."""
    settings, services = app[settings_key], app[services_key]
    today = services.clock.now().astimezone(LOCAL_TZ).date()
    monday = today - timedelta(days=today.weekday())
    if settings.demo and not await services.duty.between(monday, monday + timedelta(days=DEMO_ROSTER_DAYS - 1)):
        county = str(settings.section("issuer").get("code", ""))
        registry, ref = app[registry_key], app[reference_key]
        officers = await registry.get_many(sorted(await registry.ids_in_regions([county], ["duty_officer"])))
        leaders = await registry.get_many(sorted(await registry.ids_in_regions([county], ["cadre"])))
        towns = [t.code for t in ref.regions.children(county) if len(t.code) == 9]
        entries = demo_roster(county, towns, officers, leaders, monday, DEMO_ROSTER_DAYS)
        await services.duty.put(entries, services.clock.now())
        logger.info("demo duty roster seeded: %d shifts", len(entries))
    yield


@jinja2.pass_context
def plain(context: Any, zh: str, en: str) -> str:
    """The text in the page's language only, for attributes, buttons and options (where `t` would put markup)."""
    return en if context.get("lang") == "en" else zh


@jinja2.pass_context
def bilingual(context: Any, zh: str, en: str) -> Markup:
    """The page's language first, the other small beside it: the layout's `t`, for macros imported from a file."""
    first, other, other_lang = (en, zh, "zh-CN") if context.get("lang") == "en" else (zh, en, "en")
    return Markup('{} <small class="alt" lang="{}">{}</small>').format(first, other_lang, other)


def setup(app: web.Application) -> None:
    """Add the desk's routes (after the dashboard, whose templates and session signer they use), the `plain` helper
    of its templates, and the demo's roster once the core services are up."""
    from warning.web.app import add_routes

    aiohttp_jinja2.get_env(app).globals.update(plain=plain, bilingual=bilingual)
    add_routes(app, routes)
    app.cleanup_ctx.append(demo_roster_ctx)
