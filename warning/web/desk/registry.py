"""设备 · 隐患点: devices (e-screens, loudspeakers) and hazard sites — list, add, edit."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from contacts.addresses import mask_credentials
from contacts.fields import FieldErrors, parse_device, parse_site
from contacts.model import DEVICE_KINDS, SITE_KINDS, Device, HazardSite, device_json, site_json
from contacts.phone import InvalidPhoneNumber, normalize_e164
from contacts.store import RecordConflict, RedisRegistry
from warning.bootstrap import devices_allow_loopback
from warning.web.dashboard import render
from warning.web.desk.common import (
    ADMIN,
    DEVICE_KIND_ZH,
    SITE_KIND_ZH,
    county_of,
    error_page,
    form_body,
    form_text,
    may,
    page,
    reference,
    region_choices,
    region_name,
    shown_phone,
    url,
)
from warning.web.keys import clock_key, registry_key, session_key, settings_key
from warning.web.routing import path_param

logger = logging.getLogger(__name__)
_ID = [path_param("id", "record id")]
#: a site's own page of readings, when the service has one (the site list links to it)
SITE_PAGE = "/dashboard/sites/{id}"
_CONTACT_ID = re.compile(r"^c[0-9a-f]{12}$")
_DEVICE_FORM = form_body(("name", "kind", "region", "address", "lat", "lon", "token", "active"))
_SITE_FORM = form_body(("name", "kind", "region", "lat", "lon", "keepers"))


def _links(request: web.Request) -> Callable[..., str]:
    return lambda path, **kw: url(request, path, **kw)


def _done(request: web.Request) -> str:
    return request.query.get("done", "")


# -- devices -------------------------------------------------------------------------------------

@page("GET", "/dashboard/devices", "Devices: e-screens and loudspeakers")
async def devices_page(request: web.Request) -> web.Response:
    ref, county, admin = reference(request), county_of(request), may(request, ADMIN)
    devices = sorted(await request.app[registry_key].all_devices(), key=lambda d: (d.region, d.kind, d.name))
    rows = [{"id": d.id, "name": d.name, "kind": DEVICE_KIND_ZH.get(d.kind, d.kind), "kind_en": d.kind,
             "region": d.region, "region_name": region_name(ref, d.region, county), "active": d.active,
             "address": d.address if admin else mask_credentials(d.address)} for d in devices]
    return render(request, "desk/devices.html", {"rows": rows, "may_edit": admin, "done": _done(request),
                                                 "url": _links(request)})


def _device_values(d: Device | None) -> dict[str, Any]:
    if d is None:
        return {"kind": "escreen", "active": True}
    return {"name": d.name, "kind": d.kind, "region": d.region, "address": d.address, "token": d.token,
            "lat": repr(d.location.lat) if d.location else "", "lon": repr(d.location.lon) if d.location else "",
            "active": d.active}


def _device_form(request: web.Request, values: Mapping[str, Any], *, did: str = "",
                 errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    ref = reference(request)
    return render(request, "desk/device_form.html", {
        "v": values, "did": did, "errors": errors or {}, "kinds": [(k, DEVICE_KIND_ZH[k]) for k in DEVICE_KINDS],
        "regions": region_choices(ref, county_of(request)), "done": _done(request), "url": _links(request)},
        status=status)


async def _save_device(request: web.Request, old: Device | None) -> web.Response:
    app = request.app
    form = await request.post()
    values: dict[str, Any] = {k: form_text(form, k) for k in ("name", "kind", "region", "address", "token", "lat",
                                                              "lon")}
    values["active"] = form.get("active") == "on"
    # an edit starts from the stored record (as PATCH does), so fields this form does not show are kept
    raw = {**(device_json(old, show_token=True) if old else {}), **values, "location": None}
    try:
        device = parse_device(raw, reference(request), did=old.id if old else "",
                              allow_loopback=devices_allow_loopback(app[settings_key]))
        stored = await app[registry_key].put_device(device, app[clock_key].now(), create=old is None)
    except FieldErrors as exc:
        return _device_form(request, values, did=old.id if old else "", errors=exc.errors, status=400)
    except RecordConflict:
        return _device_form(request, values, did=old.id if old else "", status=409,
                            errors={"token": "设备令牌已被使用 device token already in use"})
    if stored is None:
        return error_page(request, 404, "设备不存在", "no such device", old.id if old else "")
    logger.info("device %s %s by %s (dashboard)", stored.id, "added" if old is None else "changed",
                request[session_key].token.name)
    raise web.HTTPSeeOther(url(request, f"/dashboard/devices/{stored.id}/edit",
                               done="added" if old is None else "saved"))


@page("GET", "/dashboard/devices/new", "Devices: the form to add one", roles=ADMIN)
async def new_device(request: web.Request) -> web.Response:
    return _device_form(request, _device_values(None))


@page("POST", "/dashboard/devices/new", "Devices: add one (form)", roles=ADMIN, statuses=(409,), body=_DEVICE_FORM)
async def add_device(request: web.Request) -> web.Response:
    return await _save_device(request, None)


async def _found(request: web.Request, get: Callable[[str], Awaitable[Any]], zh: str, en: str) -> Any:
    record = await get(request.match_info["id"])
    return record if record is not None else error_page(request, 404, zh, en, request.match_info["id"])


@page("GET", "/dashboard/devices/{id}/edit", "Devices: one device's form", roles=ADMIN, params=_ID, statuses=(404,))
async def edit_device(request: web.Request) -> web.Response:
    found = await _found(request, request.app[registry_key].device, "设备不存在", "no such device")
    if isinstance(found, web.Response):
        return found
    return _device_form(request, _device_values(found), did=found.id)


@page("POST", "/dashboard/devices/{id}/edit", "Devices: save one device (form)", roles=ADMIN, params=_ID,
      statuses=(404, 409), body=_DEVICE_FORM)
async def save_device(request: web.Request) -> web.Response:
    found = await _found(request, request.app[registry_key].device, "设备不存在", "no such device")
    return found if isinstance(found, web.Response) else await _save_device(request, found)


# -- hazard sites --------------------------------------------------------------------------------

def _has_site_page(app: web.Application) -> bool:
    return any(r.canonical == SITE_PAGE for r in app.router.resources())


@page("GET", "/dashboard/sites", "Hazard sites: reservoirs, landslide points, river stations and their keepers")
async def sites_page(request: web.Request) -> web.Response:
    ref, county, registry = reference(request), county_of(request), request.app[registry_key]
    sites = sorted(await registry.all_sites(), key=lambda s: (s.region, s.name))
    people = {c.id: c for c in await registry.get_many(sorted({cid for s in sites for cid in s.contacts}))}
    rows = [{"id": s.id, "name": s.name, "kind": SITE_KIND_ZH.get(s.kind, s.kind), "kind_en": s.kind,
             "region": s.region, "region_name": region_name(ref, s.region, county),
             "location": f"{s.location.lat:.5f}, {s.location.lon:.5f}" if s.location else "",
             "keepers": [(people[c].name, shown_phone(request, people[c].phone)) for c in s.contacts if c in people]}
            for s in sites]
    return render(request, "desk/sites.html", {"rows": rows, "may_edit": may(request, ADMIN), "done": _done(request),
                                               "site_page": _has_site_page(request.app), "url": _links(request)})


async def _site_values(registry: RedisRegistry, s: HazardSite | None) -> dict[str, Any]:
    if s is None:
        return {"kind": "landslide", "keepers": ""}
    people = {c.id: c for c in await registry.get_many(list(s.contacts))}
    return {"name": s.name, "kind": s.kind, "region": s.region,
            "lat": repr(s.location.lat) if s.location else "", "lon": repr(s.location.lon) if s.location else "",
            "keepers": "\n".join(people[c].phone if c in people else c for c in s.contacts)}


def _site_form(request: web.Request, values: Mapping[str, Any], *, sid: str = "",
               errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    ref = reference(request)
    return render(request, "desk/site_form.html", {
        "v": values, "sid": sid, "errors": errors or {}, "kinds": [(k, SITE_KIND_ZH[k]) for k in SITE_KINDS],
        "regions": region_choices(ref, county_of(request)), "done": _done(request), "url": _links(request),
        "site_page": _has_site_page(request.app)}, status=status)


async def _keeper_ids(request: web.Request, text: str, errors: dict[str, str]) -> list[str]:
    """The contact ids of the keepers, one a line, by phone number or contact id; every unknown line in `errors`."""
    registry, ref = request.app[registry_key], reference(request)
    ids, bad = [], []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if _CONTACT_ID.match(line):
            found = await registry.get(line)
        else:
            try:
                found = await registry.by_phone(normalize_e164(line, ref.default_phone_region)[0])
            except InvalidPhoneNumber:
                found = None
        if found is None:
            bad.append(line[:24])
        else:
            ids.append(found.id)
    if bad:
        errors["contacts"] = f"不是已登记的联系人 not registered contacts: {', '.join(bad)}"
    return ids


async def _save_site(request: web.Request, old: HazardSite | None) -> web.Response:
    app = request.app
    form = await request.post()
    values = {k: form_text(form, k) for k in ("name", "kind", "region", "lat", "lon", "keepers")}
    errors: dict[str, str] = {}
    keepers = await _keeper_ids(request, values["keepers"], errors)
    raw = {**(site_json(old) if old else {}), **{k: values[k] for k in ("name", "kind", "region", "lat", "lon")},
           "location": None, "contacts": keepers}
    try:
        site = parse_site(raw, reference(request), sid=old.id if old else "")
    except FieldErrors as exc:
        errors = {**exc.errors, **errors}
    if errors:
        return _site_form(request, values, sid=old.id if old else "", errors=errors, status=400)
    stored = await app[registry_key].put_site(site, app[clock_key].now(), create=old is None)
    if stored is None:
        return error_page(request, 404, "隐患点不存在", "no such hazard site", old.id if old else "")
    logger.info("site %s %s by %s (dashboard)", stored.id, "added" if old is None else "changed",
                request[session_key].token.name)
    raise web.HTTPSeeOther(url(request, f"/dashboard/sites/{stored.id}/edit", done="added" if old is None else "saved"))


@page("GET", "/dashboard/sites/new", "Hazard sites: the form to add one", roles=ADMIN)
async def new_site(request: web.Request) -> web.Response:
    return _site_form(request, await _site_values(request.app[registry_key], None))


@page("POST", "/dashboard/sites/new", "Hazard sites: add one (form)", roles=ADMIN, body=_SITE_FORM)
async def add_site(request: web.Request) -> web.Response:
    return await _save_site(request, None)


@page("GET", "/dashboard/sites/{id}/edit", "Hazard sites: one site's form", roles=ADMIN, params=_ID, statuses=(404,))
async def edit_site(request: web.Request) -> web.Response:
    found = await _found(request, request.app[registry_key].site, "隐患点不存在", "no such hazard site")
    if isinstance(found, web.Response):
        return found
    return _site_form(request, await _site_values(request.app[registry_key], found), sid=found.id)


@page("POST", "/dashboard/sites/{id}/edit", "Hazard sites: save one site (form)", roles=ADMIN, params=_ID,
      statuses=(404,), body=_SITE_FORM)
async def save_site(request: web.Request) -> web.Response:
    found = await _found(request, request.app[registry_key].site, "隐患点不存在", "no such hazard site")
    return found if isinstance(found, web.Response) else await _save_site(request, found)
