"""The registry API (DESIGN §4): contacts, import and export, devices, hazard sites, regions, roles."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from contacts.demo import seed_demo
from contacts.directory import ContactFilter
from contacts.export import csv_text, export_rows, xlsx_bytes
from contacts.fields import FieldErrors, parse_active, parse_contact
from contacts.importer import import_contacts
from contacts.model import CheckFlag, Contact, contact_json
from contacts.phone import mask_phone
from contacts.positions import PositionBook, UnknownPosition
from contacts.reference import Reference, RoleBook, UnknownRole
from contacts.regions import InvalidRegionCode, RegionTree, RegionTreeError, query_prefix
from contacts.store import RecordConflict, RedisRegistry
from contacts.tabular import FileProblem, sniff_format
from warning.errors import BadRequest, ConfigError, Conflict, NotFound
from warning.settings import Settings
from warning.web.bodies import read_file_part, read_json
from warning.web.keys import clock_key, redis_key, reference_key, registry_key, settings_key
from warning.web.middlewares import unavailable
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

logger = logging.getLogger(__name__)
routes = ApiRoutes("registry")
ADMIN = ("admin",)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
#: a contacts cursor is the id of the last contact of the previous page
CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTACT_FIELDS = {"name", "phone", "role", "region", "location", "channels", "lang", "supervisor", "active", "position",
                  "needs_check"}
_FILTERS = [query_param("region", "region code prefix (2, 4, 6, 9 or 12 digits)"),
            query_param("role", "role key or label"), query_param("channel", "sms or voice"),
            query_param("active", "true, false or all (default all)"),
            query_param("position", "position (职务) key or label"),
            query_param("needs_check", "true (numbers to check), false or all (default all)")]
#: a contact as POST and PATCH take it (PATCH: any of the fields)
_CONTACT_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    "properties": {
        "name": {"type": "string"}, "phone": {"type": "string", "description": "as people type it; stored E.164"},
        "role": {"type": "string", "description": "role key or label (GET /api/v1/roles)"},
        "region": {"type": "string", "description": "region code, 6, 9 or 12 digits"},
        "location": {"type": "object", "nullable": True,
                     "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
        "channels": {"type": "array", "items": {"type": "string", "enum": ["sms", "voice"]}},
        "lang": {"type": "string"}, "supervisor": {"type": "string", "nullable": True},
        "active": {"type": "boolean"},
        "position": {"type": "string", "nullable": True,
                     "description": "position (职务) key or label (GET /api/v1/positions); absent or empty: the "
                                    "role's default position, else none"},
        "needs_check": {"type": "boolean", "description": "true flags the number for follow-up by hand (reason "
                                                         "manual); false takes the flag off"}}}}}}
_CONTACT_DOC = ("A contact has `position` (职务 key, `none` when it holds none) and `needs_check` (true when its number "
                "needs checking: no answer to a registry check, a send that failed for good, or marked by hand; "
                "`needs_check_reason` {reason, at, detail} says why). A changed phone takes the flag off.")
_FILE_BODY = {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string",
                                                                                      "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string",
                                                                                  "format": "binary"}}}}}}


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _masked(request: web.Request) -> bool:
    return principal(request).role == "viewer"


def _contact_out(request: web.Request, c: Any) -> dict[str, Any]:
    return contact_json(c, phone=mask_phone(c.phone) if _masked(request) else None)


async def read_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("请求体须为 JSON 对象 body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest("字段无效 invalid fields", {k: "未知字段 unknown field" for k in unknown})
    return body


def invalid(exc: FieldErrors) -> BadRequest:
    return BadRequest("字段无效 invalid fields", exc.errors)


def _filters(request: web.Request) -> ContactFilter:
    q, ref = request.query, request.app[reference_key]
    errors: dict[str, str] = {}
    region = role = None
    try:
        region = query_prefix(q["region"]) if q.get("region") else None
    except InvalidRegionCode as exc:
        errors["region"] = str(exc)
    try:
        role = ref.roles.resolve(q["role"]) if q.get("role") else None
    except UnknownRole as exc:
        errors["role"] = str(exc)
    channel = q.get("channel") or None
    if channel not in (None, "sms", "voice"):
        errors["channel"] = "渠道未知 unknown channel (sms, voice)"
    active_text = q.get("active", "all")
    active = None if active_text in ("", "all") else parse_active(active_text, errors)
    position = None
    try:
        position = ref.positions.resolve(q["position"]) if q.get("position") else None
    except UnknownPosition as exc:
        errors["position"] = str(exc)
    check_text = q.get("needs_check", "all")
    needs_check = None if check_text in ("", "all") else _flag_query(check_text, errors)
    if errors:
        raise BadRequest("查询参数无效 invalid query parameters", errors)
    return ContactFilter(region=region, role=role, channel=channel, active=active, position=position,
                         needs_check=needs_check)


def _flag_query(text: str, errors: dict[str, str]) -> bool | None:
    value = {"true": True, "1": True, "是": True, "false": False, "0": False, "否": False}.get(text.casefold())
    if value is None:
        errors["needs_check"] = "应为 true、false 或 all  expected true, false or all"
    return value


def _needs_check(body: dict[str, Any]) -> bool | None:
    """`needs_check` of a body: true flags the number for follow-up by hand, false takes the flag off."""
    value = body.get("needs_check")
    if value is not None and not isinstance(value, bool):
        raise BadRequest("字段无效 invalid fields", {"needs_check": "应为 true 或 false  expected true or false"})
    return value


async def _set_needs_check(request: web.Request, contact: Contact, wanted: bool | None) -> Contact:
    """Flag (by hand) or unflag the contact's number as the body asks; the contact as stored after."""
    registry = request.app[registry_key]
    if wanted is None or wanted == (contact.needs_check is not None):
        return contact
    if wanted:
        flag = CheckFlag("manual", request.app[clock_key].now().isoformat(), principal(request).name)
        await registry.flag_needs_check([(contact.id, flag)])
    else:
        await registry.clear_needs_check([contact.id])
    logger.info("contact %s needs_check set to %s by %s", contact.id, wanted, principal(request).name)
    return await registry.get(contact.id) or contact


def _limit(request: web.Request) -> int:
    return int_query(request.query, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)


# -- contacts ------------------------------------------------------------------------------------

@routes.get("/api/v1/contacts", summary="List contacts, filtered, a page at a time", roles=READERS,
            params=[*_FILTERS, query_param("limit", f"page size, 1–{MAX_LIMIT} (default {DEFAULT_LIMIT})",
                                           schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    query_param("cursor", "next_cursor of the previous page (a contact id)",
                                schema={"type": "string", "pattern": pattern_doc(CURSOR)})],
            description="Viewers see phone numbers masked (138****8000).", responses=error_responses(400))
async def list_contacts(request: web.Request) -> web.Response:
    registry = request.app[registry_key]
    after = pattern_query(request.query, "cursor", CURSOR, "应为上一页的 next_cursor expected a next_cursor (a contact id)")
    items, cursor = await registry.page(after, _limit(request), _filters(request))
    return json_ok({"items": [_contact_out(request, c) for c in items], "next_cursor": cursor})


async def _check_supervisor(registry: RedisRegistry, sup: str | None, cid: str) -> None:
    if sup and (sup == cid or await registry.get(sup) is None):
        raise BadRequest("字段无效 invalid fields", {"supervisor": "上级不是已登记的其他联系人 supervisor must be "
                                                                 "another registered contact id"})


@routes.post("/api/v1/contacts", summary="Add a contact", roles=ADMIN, request_body=_CONTACT_BODY,
             description=_CONTACT_DOC,
             responses={"201": {"description": "created"}, **error_responses(400, 409)})
async def create_contact(request: web.Request) -> web.Response:
    app = request.app
    body = await read_body(request, CONTACT_FIELDS)
    flag = _needs_check(body)
    try:
        contact, notes = parse_contact(body, app[reference_key])
    except FieldErrors as exc:
        raise invalid(exc) from None
    await _check_supervisor(app[registry_key], contact.supervisor, "")
    try:
        stored = await app[registry_key].create_contact(contact, app[clock_key].now())
    except RecordConflict as exc:
        raise Conflict("手机号码已登记 phone number already registered", {"phone": exc.owner}) from None
    logger.info("contact %s added by %s", stored.id, principal(request).name)
    stored = await _set_needs_check(request, stored, flag)
    return json_ok({**_contact_out(request, stored), "notes": notes}, status=201)


@routes.get("/api/v1/contacts/export", summary="Export contacts as CSV or XLSX", roles=ADMIN,
            params=[query_param("format", "csv (default) or xlsx"), query_param("lang", "zh (default) or en"),
                    *_FILTERS], responses=error_responses(400))
async def export_contacts(request: web.Request) -> web.StreamResponse:
    fmt, lang = request.query.get("format", "csv"), request.query.get("lang", "zh")
    if fmt not in ("csv", "xlsx") or lang not in ("zh", "en"):
        raise BadRequest("查询参数无效 invalid query parameters", {"format": "csv, xlsx", "lang": "zh, en"})
    rows = export_rows(request.app[registry_key], request.app[reference_key], _filters(request), lang)
    logger.info("contacts exported by %s as %s", principal(request).name, fmt)
    if fmt == "xlsx":
        return web.Response(body=await xlsx_bytes(rows), headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": 'attachment; filename="contacts.xlsx"'})
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="contacts.csv"'})
    await response.prepare(request)
    await response.write("\ufeff".encode())  # so that Excel reads the file as UTF-8
    chunk: list[list[str]] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) >= 1000:
            await response.write(csv_text(chunk).encode())
            chunk = []
    await response.write(csv_text(chunk).encode())
    await response.write_eof()
    return response


async def _contact_or_404(request: web.Request) -> Any:
    contact = await request.app[registry_key].get(request.match_info["id"])
    if contact is None:
        raise NotFound("联系人不存在 no such contact", request.match_info["id"])
    return contact


_ID = [path_param("id", "record id")]


@routes.get("/api/v1/contacts/{id}", summary="One contact", roles=READERS, params=_ID,
            responses=error_responses(404))
async def get_contact(request: web.Request) -> web.Response:
    return json_ok(_contact_out(request, await _contact_or_404(request)))


@routes.patch("/api/v1/contacts/{id}", summary="Change some fields of a contact", roles=ADMIN, params=_ID,
              request_body=_CONTACT_BODY, description=_CONTACT_DOC, responses=error_responses(400, 404, 409))
async def patch_contact(request: web.Request) -> web.Response:
    app, old = request.app, await _contact_or_404(request)
    body = await read_body(request, CONTACT_FIELDS)
    flag = _needs_check(body)
    merged = {**contact_json(old), **body}
    try:
        contact, notes = parse_contact(merged, app[reference_key], cid=old.id)
    except FieldErrors as exc:
        raise invalid(exc) from None
    await _check_supervisor(app[registry_key], contact.supervisor, old.id)
    try:
        stored = await app[registry_key].update_contact(contact, app[clock_key].now())
    except RecordConflict as exc:
        raise Conflict("手机号码已登记 phone number already registered", {"phone": exc.owner}) from None
    if stored is None:
        raise NotFound("联系人不存在 no such contact", old.id)
    logger.info("contact %s changed by %s", old.id, principal(request).name)
    if flag is None and stored.phone != old.phone and stored.needs_check is not None:
        flag = False  # a corrected number: the flag was about the old one
    stored = await _set_needs_check(request, stored, flag)
    return json_ok({**_contact_out(request, stored), "notes": notes})


@routes.delete("/api/v1/contacts/{id}", summary="Deactivate a contact (purge=true erases it)", roles=ADMIN,
               params=[*_ID, query_param("purge", "true: erase the record and its phone (personal data)")],
               description="By default the contact is kept, inactive, so past warnings stay explainable; "
                           "purge=true removes it and every index entry of it.", responses=error_responses(404))
async def delete_contact(request: web.Request) -> web.Response:
    app, old = request.app, await _contact_or_404(request)
    if request.query.get("purge", "").lower() in ("1", "true", "yes"):
        await app[registry_key].delete_contact(old.id)
        logger.info("contact %s erased by %s", old.id, principal(request).name)
        return json_ok({"id": old.id, "purged": True})
    await app[registry_key].update_contact(old.with_changes(active=False), app[clock_key].now())
    logger.info("contact %s deactivated by %s", old.id, principal(request).name)
    return json_ok({"id": old.id, "active": False})


# -- import --------------------------------------------------------------------------------------

async def _upload(request: web.Request) -> tuple[bytes, str, str]:
    """The uploaded file: the raw body, or the multipart part named `file`, within the body limit."""
    limit = request.app[settings_key].server.max_body_bytes
    if request.content_type != "multipart/form-data":
        return await request.read(), "", request.content_type
    found = await read_file_part(request, "file", limit)
    if found is not None:
        return found
    raise BadRequest("缺少文件 missing file", "send the file as the body, or as the multipart field 'file'")


@routes.post("/api/v1/contacts/import", summary="Import contacts from CSV or XLSX (upsert by phone)", roles=ADMIN,
             request_body=_FILE_BODY, responses=error_responses(400, 413),
             description="Answers {accepted, updated, unchanged, rejected: [{row, error}], warnings: [{row, warning}]}"
                         "; rows are numbered as a spreadsheet shows them (header = row 1).")
async def import_file(request: web.Request) -> web.Response:
    data, filename, content_type = await _upload(request)
    if not data.strip():
        raise BadRequest("文件为空 the file is empty")
    app = request.app
    batch_rows = int(app[settings_key].section("registry").get("import_batch_rows", 1000))
    try:
        fmt = sniff_format(data[:8], filename, content_type)
        report = await import_contacts(io.BytesIO(data), fmt, app[registry_key], app[reference_key],
                                       now=app[clock_key].now(), batch_rows=batch_rows)
    except FileProblem as exc:
        raise BadRequest("文件无法导入 file cannot be imported", str(exc)) from None
    logger.info("contacts import by %s: %d accepted, %d updated, %d rejected", principal(request).name,
                report.accepted, report.updated, len(report.rejected))
    if report.interrupted is not None:
        logger.error("contacts import by %s stopped by the store after %d rows: %s", principal(request).name,
                     len(report.written), report.interrupted)
        return unavailable("导入中途失败，存储不可用 import stopped midway: the store failed",
                           {**report.as_dict(), "retry": "存储恢复后重新导入同一文件（按手机号匹配，不会重复） import "
                                                         "the same file again once the store is back: rows are "
                                                         "matched by phone, none is doubled"})
    return json_ok(report.as_dict())


# -- wiring --------------------------------------------------------------------------------------

def build_reference(settings: Settings) -> Reference:
    """Roles and the region tree from the settings; ConfigError naming the key when they are bad."""
    source = settings.sources[-1]
    try:
        roles = RoleBook.from_config(settings.section("roles"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, "roles", str(exc)) from None
    if not roles.keys():
        raise ConfigError(source, "roles", "no contact roles configured")
    try:
        positions = PositionBook.from_config(settings.section("positions"), roles.keys())
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, "positions", str(exc)) from None
    registry = settings.section("registry")
    path = str(registry.get("regions_csv", "") or "")
    try:
        tree = RegionTree.from_csv(path) if path else RegionTree()
    except RegionTreeError as exc:
        raise ConfigError(source, "registry.regions_csv", str(exc)) from None
    batch = registry.get("import_batch_rows", 1000)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(source, "registry.import_batch_rows", f"expected a positive integer, got {batch!r}")
    return Reference(roles=roles, regions=tree, default_phone_region=str(registry.get("default_phone_region", "CN")),
                     positions=positions)


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    """The registry on the app's Redis; the demo county's people when the demo runs on an empty registry."""
    settings, ref = app[settings_key], app[reference_key]
    registry = RedisRegistry(app[redis_key])
    app[registry_key] = registry
    if settings.demo and await registry.count() == 0:
        n = int(settings.section("demo").get("contacts", 300))
        county = str(settings.section("issuer").get("code", "510722"))
        seeded = await seed_demo(registry, ref.regions, n, now=app[clock_key].now(), roles=ref.roles.keys(),
                                 positions=ref.positions.keys(), county=county)
        logger.info("demo registry seeded: %s", seeded)
    yield


def setup(app: web.Application) -> None:
    """Mount the registry routes; the registry opens after Redis."""
    from warning.web import registry_api
    from warning.web.app import add_routes

    app[reference_key] = build_reference(app[settings_key])
    add_routes(app, routes)
    add_routes(app, registry_api.routes)
    app.cleanup_ctx.append(registry_ctx)

