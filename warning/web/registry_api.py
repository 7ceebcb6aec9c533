"""The registry API's reference and endpoint parts: devices, hazard sites, regions and roles."""

from __future__ import annotations

import io
import logging
from typing import Any

from aiohttp import web

from contacts.fields import FieldErrors, parse_device, parse_site
from contacts.model import HazardSite, device_json, site_json
from contacts.regions import InvalidRegionCode, query_prefix
from contacts.site_import import import_sites
from contacts.store import RecordConflict
from contacts.tabular import FileProblem, sniff_format
from warning.bootstrap import devices_allow_loopback
from warning.errors import BadRequest, Conflict, NotFound
from warning.web.contacts_api import _FILE_BODY, _upload, invalid, json_ok, read_body
from warning.web.keys import clock_key, reference_key, registry_key, settings_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, path_param, principal, query_param

logger = logging.getLogger(__name__)
routes = ApiRoutes("registry")
ADMIN = ("admin",)
DEVICE_FIELDS = {"name", "kind", "region", "address", "location", "token", "active"}
SITE_FIELDS = {"name", "kind", "region", "location", "contacts", "station", "thresholds", "downstream"}
_JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_ID = [path_param("id", "record id")]
_CREATED = {"201": {"description": "created"}}


def _prefixes(request: web.Request) -> list[str] | None:
    text = request.query.get("region", "")
    try:
        return [query_prefix(text)] if text else None
    except InvalidRegionCode as exc:
        raise BadRequest("查询参数无效 invalid query parameters", {"region": str(exc)}) from None


def _show_token(request: web.Request) -> bool:
    return principal(request).role == "admin"


# -- devices -------------------------------------------------------------------------------------

@routes.get("/api/v1/devices", summary="List devices (e-screens, loudspeakers)", roles=READERS,
            params=[query_param("region", "region code prefix"), query_param("kind", "escreen or broadcast")],
            description="The acknowledgment token, and credentials in a device's address, are shown to admins only.", responses=error_responses(400))
async def list_devices(request: web.Request) -> web.Response:
    registry, prefixes = request.app[registry_key], _prefixes(request)
    kind = request.query.get("kind") or None
    devices = (await registry.devices_in_regions(prefixes, kind, active_only=False) if prefixes
               else [d for d in await registry.all_devices() if kind in (None, d.kind)])
    return json_ok({"items": [device_json(d, show_token=_show_token(request)) for d in devices]})


@routes.post("/api/v1/devices", summary="Add a device", roles=ADMIN, request_body=_JSON_BODY,
             responses={**_CREATED, **error_responses(400, 409)})
async def create_device(request: web.Request) -> web.Response:
    app = request.app
    try:
        device = parse_device(await read_body(request, DEVICE_FIELDS), app[reference_key],
                              allow_loopback=devices_allow_loopback(app[settings_key]))
        stored = await app[registry_key].put_device(device, app[clock_key].now(), create=True)
    except FieldErrors as exc:
        raise invalid(exc) from None
    except RecordConflict:
        raise Conflict("设备令牌已被使用 device token already in use") from None
    assert stored is not None
    logger.info("device %s added by %s", stored.id, principal(request).name)
    return json_ok(device_json(stored, show_token=True), status=201)


async def _device_or_404(request: web.Request) -> Any:
    device = await request.app[registry_key].device(request.match_info["id"])
    if device is None:
        raise NotFound("设备不存在 no such device", request.match_info["id"])
    return device


@routes.get("/api/v1/devices/{id}", summary="One device", roles=READERS, params=_ID, responses=error_responses(404))
async def get_device(request: web.Request) -> web.Response:
    return json_ok(device_json(await _device_or_404(request), show_token=_show_token(request)))


@routes.patch("/api/v1/devices/{id}", summary="Change some fields of a device", roles=ADMIN, params=_ID,
              request_body=_JSON_BODY, responses=error_responses(400, 404, 409))
async def patch_device(request: web.Request) -> web.Response:
    app, old = request.app, await _device_or_404(request)
    merged = {**device_json(old, show_token=True), **await read_body(request, DEVICE_FIELDS)}
    try:
        device = parse_device(merged, app[reference_key], did=old.id,
                              allow_loopback=devices_allow_loopback(app[settings_key]))
        stored = await app[registry_key].put_device(device, app[clock_key].now(), create=False)
    except FieldErrors as exc:
        raise invalid(exc) from None
    except RecordConflict:
        raise Conflict("设备令牌已被使用 device token already in use") from None
    if stored is None:
        raise NotFound("设备不存在 no such device", old.id)
    return json_ok(device_json(stored, show_token=True))


@routes.delete("/api/v1/devices/{id}", summary="Remove a device", roles=ADMIN, params=_ID,
               responses=error_responses(404))
async def delete_device(request: web.Request) -> web.Response:
    old = await _device_or_404(request)
    await request.app[registry_key].delete_device(old.id)
    logger.info("device %s removed by %s", old.id, principal(request).name)
    return json_ok({"id": old.id, "deleted": True})


# -- hazard sites --------------------------------------------------------------------------------

async def _checked_site(request: web.Request, raw: dict[str, Any], sid: str) -> HazardSite:
    try:
        site = parse_site(raw, request.app[reference_key], sid=sid)
    except FieldErrors as exc:
        raise invalid(exc) from None
    found = {c.id for c in await request.app[registry_key].get_many(list(site.contacts))}
    missing = [c for c in site.contacts if c not in found]
    if missing:
        raise BadRequest("字段无效 invalid fields", {"contacts": f"联系人不存在 unknown contact ids: {', '.join(missing)}"})
    return site


@routes.get("/api/v1/sites", summary="List hazard sites (reservoirs, landslide points, river stations)",
            roles=READERS, params=[query_param("region", "region code prefix")], responses=error_responses(400))
async def list_sites(request: web.Request) -> web.Response:
    registry, prefixes = request.app[registry_key], _prefixes(request)
    sites = await registry.sites_in_regions(prefixes) if prefixes else await registry.all_sites()
    return json_ok({"items": [site_json(s) for s in sites]})


@routes.post("/api/v1/sites", summary="Add a hazard site", roles=ADMIN, request_body=_JSON_BODY,
             responses={**_CREATED, **error_responses(400)})
async def create_site(request: web.Request) -> web.Response:
    site = await _checked_site(request, await read_body(request, SITE_FIELDS), "")
    stored = await request.app[registry_key].put_site(site, request.app[clock_key].now(), create=True)
    assert stored is not None
    logger.info("site %s added by %s", stored.id, principal(request).name)
    return json_ok(site_json(stored), status=201)


async def _site_or_404(request: web.Request) -> HazardSite:
    site = await request.app[registry_key].site(request.match_info["id"])
    if site is None:
        raise NotFound("隐患点不存在 no such hazard site", request.match_info["id"])
    return site


@routes.get("/api/v1/sites/{id}", summary="One hazard site", roles=READERS, params=_ID,
            responses=error_responses(404))
async def get_site(request: web.Request) -> web.Response:
    return json_ok(site_json(await _site_or_404(request)))


@routes.patch("/api/v1/sites/{id}", summary="Change some fields of a hazard site", roles=ADMIN, params=_ID,
              request_body=_JSON_BODY, responses=error_responses(400, 404))
async def patch_site(request: web.Request) -> web.Response:
    old = await _site_or_404(request)
    site = await _checked_site(request, {**site_json(old), **await read_body(request, SITE_FIELDS)}, old.id)
    stored = await request.app[registry_key].put_site(site, request.app[clock_key].now(), create=False)
    if stored is None:
        raise NotFound("隐患点不存在 no such hazard site", old.id)
    return json_ok(site_json(stored))


@routes.delete("/api/v1/sites/{id}", summary="Remove a hazard site", roles=ADMIN, params=_ID,
               responses=error_responses(404))
async def delete_site(request: web.Request) -> web.Response:
    old = await _site_or_404(request)
    await request.app[registry_key].delete_site(old.id)
    return json_ok({"id": old.id, "deleted": True})


@routes.post("/api/v1/sites/import", summary="Import hazard sites from CSV or XLSX (gauge stations, thresholds)",
             roles=ADMIN, request_body=_FILE_BODY, responses=error_responses(400, 413),
             description="Columns name/名称, kind/类型, region/行政区划代码, lat/纬度, lon/经度, contacts/责任人 (contact "
                         "ids or phones), station/测站编码, warning_level_m/警戒水位, guarantee_level_m/保证水位, "
                         "rain_prepare_mm_1h/准备转移雨量1h, rain_evacuate_mm_3h/立即转移雨量3h (any window), downstream/"
                         "下游村, id/编号. A row updates the site of its `id`, else the site watching its station, else "
                         "adds one. Answers {accepted, updated, rejected: [{row, error}]} (header = row 1); a refused "
                         "row changes nothing.")
async def import_sites_file(request: web.Request) -> web.Response:
    data, filename, content_type = await _upload(request)
    if not data.strip():
        raise BadRequest("文件为空 the file is empty")
    app = request.app
    try:
        report = await import_sites(io.BytesIO(data), sniff_format(data[:8], filename, content_type),
                                    app[registry_key], app[reference_key], now=app[clock_key].now())
    except FileProblem as exc:
        raise BadRequest("文件无法导入 file cannot be imported", str(exc)) from None
    logger.info("sites import by %s: %d accepted, %d updated, %d rejected", principal(request).name,
                report.accepted, report.updated, len(report.rejected))
    return json_ok(report.as_dict())


# -- reference data ------------------------------------------------------------------------------

@routes.get("/api/v1/regions", summary="Regions of the configured tree: the children of `parent`", roles=READERS,
            params=[query_param("parent", "a region code; absent: the top of the tree")],
            responses=error_responses(404))
async def list_regions(request: web.Request) -> web.Response:
    tree = request.app[reference_key].regions
    parent = request.query.get("parent") or None
    if parent is not None and parent not in tree:
        raise NotFound("区划不在区划表中 region not in the region tree", parent)
    return json_ok({"parent": parent, "items": [
        {"code": r.code, "name": r.name, "parent": r.parent, "full_name": tree.full_name(r.code),
         "children": len(tree.children(r.code))} for r in tree.children(parent)]})


@routes.get("/api/v1/roles", summary="Contact roles with their Chinese and English labels", roles=READERS)
async def list_roles(request: web.Request) -> web.Response:
    roles = request.app[reference_key].roles.roles.values()
    return json_ok({"items": [{"key": r.key, "label_zh": r.label_zh, "label_en": r.label_en,
                             "aliases": list(r.aliases)} for r in roles]})


@routes.get("/api/v1/positions", summary="Positions (职务) with their Chinese and English labels", roles=READERS,
            description="A position is what a contact answers for in the 叫应 chain (主要负责人, 包村干部, …); `none` is "
                        "no position. `roles`: a contact of one of these roles whose position is not given holds this "
                        "one.")
async def list_positions(request: web.Request) -> web.Response:
    positions = request.app[reference_key].positions.positions.values()
    return json_ok({"items": [{"key": p.key, "label_zh": p.label_zh, "label_en": p.label_en,
                               "aliases": list(p.aliases), "roles": list(p.roles)} for p in positions]})
