"""名录 · contacts: search, add, edit, deactivate, upload a sheet (row report), download the template sheet."""

from __future__ import annotations

import io
import logging
from typing import Any

from aiohttp import web
from yarl import URL

from contacts.directory import ContactFilter
from contacts.fields import FieldErrors, parse_contact
from contacts.importer import ImportReport, import_contacts
from contacts.model import Contact
from contacts.phone import InvalidPhoneNumber, normalize_e164
from contacts.reference import Reference, UnknownRole
from contacts.regions import InvalidRegionCode, query_prefix
from contacts.search import ContactQuery, search
from contacts.store import RecordConflict, RedisRegistry
from contacts.tabular import FileProblem, sniff_format
from contacts.template import contact_template
from warning.web.dashboard import render
from warning.web.desk.common import (
    ADMIN,
    CHANNEL_ZH,
    attachment,
    county_of,
    error_page,
    form_body,
    form_text,
    masked,
    may,
    page,
    reference,
    region_choices,
    region_name,
    shown_phone,
    url,
)
from warning.web.keys import clock_key, registry_key, session_key, settings_key
from warning.web.routing import path_param, query_param

logger = logging.getLogger(__name__)
#: contacts per page of a listing without search text
PAGE_SIZE = 50
#: matches shown for a search (narrow it with the filters to see the rest)
SEARCH_LIMIT = 200
_ID = [path_param("id", "contact id")]
_LIST_PARAMS = [query_param("q", "part of a name, or digits of a phone number"),
                query_param("region", "region code prefix"), query_param("role", "role key or label"),
                query_param("active", "true, false, or empty for all"), query_param("cursor", "the next page's cursor")]
#: the contact form's fields
_FORM = form_body(("name", "phone", "role", "region", "lat", "lon", "channels", "lang", "supervisor", "active",
                   "updated"))


def _filters(request: web.Request, ref: Reference) -> tuple[ContactFilter, dict[str, str]]:
    q, errors = request.query, {}
    region = role = None
    try:
        region = query_prefix(q["region"]) if q.get("region") else None
    except InvalidRegionCode as exc:
        errors["region"] = str(exc)
    try:
        role = ref.roles.resolve(q["role"]) if q.get("role") else None
    except UnknownRole as exc:
        errors["role"] = str(exc)
    active = {"": None, "true": True, "false": False}.get(q.get("active", ""), None)
    return ContactFilter(region=region, role=role, active=active), errors


def _row(request: web.Request, c: Contact, ref: Reference, county: str, sups: dict[str, Contact]) -> dict[str, Any]:
    sup = sups.get(c.supervisor or "")
    return {"id": c.id, "name": c.name, "phone": shown_phone(request, c.phone), "role": ref.roles.label(c.role, "zh"),
            "role_en": ref.roles.label(c.role, "en"), "region": c.region, "region_name": region_name(ref, c.region, county),
            "channels": "、".join(CHANNEL_ZH.get(ch, ch) for ch in c.channels), "active": c.active,
            "supervisor": sup.name if sup else ""}


@page("GET", "/dashboard/contacts", "Contacts: search by name, phone, region, role; a page at a time",
      params=_LIST_PARAMS, statuses=(400,))
async def contacts_page(request: web.Request) -> web.Response:
    ref, registry, county = reference(request), request.app[registry_key], county_of(request)
    filters, errors = _filters(request, ref)
    text = request.query.get("q", "").strip()[:64]
    cursor = request.query.get("cursor") or None
    total: int | None = None
    if errors:
        items: list[Contact] = []
        nxt = None
    elif text:
        items, total = await search(registry, ContactQuery(text, filters, masked(request)), SEARCH_LIMIT)
        nxt = None
    else:
        items, nxt = await registry.page(cursor, PAGE_SIZE, filters)
    sups = {s.id: s for s in await registry.get_many(sorted({c.supervisor for c in items if c.supervisor}))}
    q = request.query
    more = url(request, "/dashboard/contacts", region=q.get("region", ""), role=q.get("role", ""),
               active=q.get("active", ""), cursor=nxt or "") if nxt else ""
    return render(request, "desk/contacts.html", {
        "rows": [_row(request, c, ref, county, sups) for c in items], "total": total, "limit": SEARCH_LIMIT,
        "more": more, "errors": errors, "search": q, "roles": list(ref.roles.roles.values()),
        "regions": region_choices(ref, county), "may_edit": may(request, ADMIN), "done": q.get("done", ""),
        "url": lambda path, **kw: url(request, path, **kw)}, status=400 if errors else 200)


# -- add and edit --------------------------------------------------------------------------------

def _form_of(c: Contact | None, sup_phone: str = "") -> dict[str, Any]:
    if c is None:
        return {"channels": ["sms", "voice"], "lang": "zh-CN", "active": True}
    return {"name": c.name, "phone": c.phone, "role": c.role, "region": c.region,
            "lat": repr(c.location.lat) if c.location else "", "lon": repr(c.location.lon) if c.location else "",
            "channels": list(c.channels), "lang": c.lang, "supervisor": sup_phone, "active": c.active,
            "updated": c.updated}


def _form_values(form: Any) -> dict[str, Any]:
    return {"name": form_text(form, "name"), "phone": form_text(form, "phone"), "role": form_text(form, "role"),
            "region": form_text(form, "region"), "lat": form_text(form, "lat"), "lon": form_text(form, "lon"),
            "channels": [c for c in form.getall("channels", []) if c in CHANNEL_ZH],
            "lang": form_text(form, "lang") or "zh-CN", "supervisor": form_text(form, "supervisor"),
            "active": form.get("active") == "on", "updated": form_text(form, "updated")}


async def _supervisor_id(registry: RedisRegistry, ref: Reference, phone: str, own_id: str,
                         errors: dict[str, str]) -> str | None:
    """The contact id behind the supervisor's phone; a reason in `errors` when it is not another registered person."""
    if not phone:
        return None
    try:
        e164, _ = normalize_e164(phone, ref.default_phone_region)
    except InvalidPhoneNumber as exc:
        errors["supervisor"] = f"上级手机号码无效 invalid supervisor phone: {exc.raw}"
        return None
    sup = await registry.by_phone(e164)
    if sup is None or sup.id == own_id:
        errors["supervisor"] = "上级须为已登记的其他联系人 the supervisor must be another registered contact"
        return None
    return sup.id


def _form_page(request: web.Request, values: dict[str, Any], *, cid: str = "", errors: dict[str, str] | None = None,
               status: int = 200) -> web.Response:
    ref = reference(request)
    return render(request, "desk/contact_form.html", {
        "v": values, "cid": cid, "errors": errors or {}, "roles": list(ref.roles.roles.values()),
        "regions": region_choices(ref, county_of(request)), "channels": CHANNEL_ZH,
        "done": request.query.get("done", ""), "url": lambda path, **kw: url(request, path, **kw)}, status=status)


async def _save(request: web.Request, old: Contact | None) -> web.Response:
    """Validate the form as the API validates a body; write, or show the form again with every reason."""
    app, ref = request.app, reference(request)
    registry = app[registry_key]
    values = _form_values(await request.post())
    errors: dict[str, str] = {}
    if old is not None and values["updated"] != old.updated:
        return _form_page(request, _form_of(old, values["supervisor"]), cid=old.id, status=409, errors={
            "form": "此联系人已被他人修改，下面是最新内容，请重新编辑 someone changed this contact meanwhile; "
                    "here it is as it is now"})
    supervisor = await _supervisor_id(registry, ref, values["supervisor"], old.id if old else "", errors)
    raw = {**{k: values[k] for k in ("name", "phone", "role", "region", "lat", "lon", "lang")},
           "channels": values["channels"], "active": values["active"], "supervisor": supervisor}
    try:
        contact, _ = parse_contact(raw, ref, cid=old.id if old else "")
    except FieldErrors as exc:
        errors = {**exc.errors, **errors}
    if errors:
        return _form_page(request, values, cid=old.id if old else "", errors=errors, status=400)
    try:
        if old is None:
            stored: Contact | None = await registry.create_contact(contact, app[clock_key].now())
        else:
            stored = await registry.update_contact(contact, app[clock_key].now())
    except RecordConflict as exc:
        return _form_page(request, values, cid=old.id if old else "", status=409, errors={
            "phone": f"手机号码已登记（联系人 {exc.owner}） phone number already registered"})
    if stored is None:
        return error_page(request, 404, "联系人不存在", "no such contact", old.id if old else "")
    who = request[session_key].token.name
    logger.info("contact %s %s by %s (dashboard)", stored.id, "added" if old is None else "changed", who)
    raise web.HTTPSeeOther(url(request, f"/dashboard/contacts/{stored.id}/edit", done="added" if old is None
                               else "saved"))


@page("GET", "/dashboard/contacts/new", "Contacts: the form to add one", roles=ADMIN)
async def new_contact(request: web.Request) -> web.Response:
    return _form_page(request, _form_of(None))


@page("POST", "/dashboard/contacts/new", "Contacts: add one (form)", roles=ADMIN, statuses=(409,), body=_FORM)
async def add_contact(request: web.Request) -> web.Response:
    return await _save(request, None)


async def _contact_or_page(request: web.Request) -> Contact | web.Response:
    contact = await request.app[registry_key].get(request.match_info["id"])
    if contact is None:
        return error_page(request, 404, "联系人不存在", "no such contact", request.match_info["id"])
    return contact


@page("GET", "/dashboard/contacts/{id}/edit", "Contacts: one contact's form", roles=ADMIN, params=_ID,
      statuses=(404,))
async def edit_contact(request: web.Request) -> web.Response:
    found = await _contact_or_page(request)
    if isinstance(found, web.Response):
        return found
    sup = await request.app[registry_key].get(found.supervisor) if found.supervisor else None
    return _form_page(request, _form_of(found, sup.phone if sup else ""), cid=found.id)


@page("POST", "/dashboard/contacts/{id}/edit", "Contacts: save one contact (form)", roles=ADMIN, params=_ID,
      statuses=(404, 409), body=_FORM)
async def save_contact(request: web.Request) -> web.Response:
    found = await _contact_or_page(request)
    return found if isinstance(found, web.Response) else await _save(request, found)


@page("POST", "/dashboard/contacts/{id}/active", "Contacts: deactivate (active=false) or reactivate one (form)",
      roles=ADMIN, params=_ID, statuses=(404,), body=form_body(("active", "back")))
async def set_active(request: web.Request) -> web.Response:
    found = await _contact_or_page(request)
    if isinstance(found, web.Response):
        return found
    form = await request.post()
    value = form_text(form, "active")
    if value not in ("true", "false"):
        return error_page(request, 400, "操作无效", "invalid action", "active: true or false")
    app = request.app
    await app[registry_key].update_contact(found.with_changes(active=value == "true"), app[clock_key].now())
    logger.info("contact %s %s by %s (dashboard)", found.id, "reactivated" if value == "true" else "deactivated",
                request[session_key].token.name)
    back = URL(form_text(form, "back"))
    target = back if not back.is_absolute() and back.path == "/dashboard/contacts" else URL("/dashboard/contacts")
    raise web.HTTPSeeOther(str(target.update_query(done="activated" if value == "true" else "deactivated")))


# -- upload and template -------------------------------------------------------------------------

@page("GET", "/dashboard/contacts/import", "Contacts: the sheet upload form", roles=ADMIN)
async def import_form(request: web.Request) -> web.Response:
    return render(request, "desk/import.html", {"report": None, "url": lambda path, **kw: url(request, path, **kw)})


@page("POST", "/dashboard/contacts/import", "Contacts: upload a sheet (multipart `file`); the row report",
      roles=ADMIN, statuses=(413,), body=form_body((), upload=True))
async def import_sheet(request: web.Request) -> web.Response:
    upload = (await request.post()).get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    name = upload.filename if isinstance(upload, web.FileField) else ""
    ctx: dict[str, Any] = {"report": None, "filename": name, "url": lambda path, **kw: url(request, path, **kw)}
    if not data.strip():
        return render(request, "desk/import.html", {**ctx, "problem": "请选择要上传的文件（文件为空） choose a file "
                                                                      "to upload (the file is empty)"}, status=400)
    app = request.app
    batch_rows = int(app[settings_key].section("registry").get("import_batch_rows", 1000))
    try:
        fmt = sniff_format(data[:8], name, upload.content_type if isinstance(upload, web.FileField) else "")
        report = await import_contacts(io.BytesIO(data), fmt, app[registry_key], reference(request),
                                       now=app[clock_key].now(), batch_rows=batch_rows)
    except FileProblem as exc:
        return render(request, "desk/import.html", {**ctx, "problem": str(exc)}, status=400)
    logger.info("contacts import by %s (dashboard): %d accepted, %d updated, %d rejected",
                request[session_key].token.name, report.accepted, report.updated, len(report.rejected))
    return render(request, "desk/import.html", {**ctx, "report": _report(report)})


def _report(report: ImportReport) -> dict[str, Any]:
    doc = report.as_dict()
    return {**doc, "rows": report.rows}


@page("GET", "/dashboard/contacts/template.{fmt}",
      "Contacts: the sheet template (Chinese headers, an example row that imports as it stands)", roles=ADMIN,
      params=[path_param("fmt", "xlsx or csv")], statuses=(404,))
async def template(request: web.Request) -> web.Response:
    fmt = request.match_info["fmt"]
    if fmt not in ("xlsx", "csv"):
        return error_page(request, 404, "没有这种格式的模板", "no template in that format", "xlsx, csv")
    body, content_type = contact_template(reference(request), county_of(request), fmt)
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store",
                                            "Content-Disposition": attachment(f"contacts-template.{fmt}",
                                                                              f"联系人导入模板.{fmt}")})
