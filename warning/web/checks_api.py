"""汛前核查 over HTTP: start a registry check of a region's contacts, and follow its progress."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from aiohttp import web

from contacts.phone import mask_phone
from contacts.reference import UnknownRole
from contacts.regions import InvalidRegionCode, normalize_code
from warning.errors import ApiError, BadRequest, Conflict, NotFound
from warning.registry_check import MAX_REPLY_WITHIN_S, MIN_REPLY_WITHIN_S, CheckError, CheckSettings, RegistryChecks
from warning.web.bodies import read_json
from warning.web.keys import reference_key, services_key, settings_key
from warning.web.openapi import error_responses
from warning.web.routing import READERS, ApiRoutes, path_param, principal

logger = logging.getLogger(__name__)
routes = ApiRoutes("registry")
#: a check id: chk, the Beijing date, eight hex digits
CHECK_ID = re.compile(r"^chk[0-9]{8}[0-9a-f]{8}$")
FIELDS = {"region", "roles", "reply_within_s"}
MAX_ROLES = 100
BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["region"], "additionalProperties": False,
    "properties": {
        "region": {"type": "string", "description": "region code (6, 9 or 12 digits): its contacts and those below"},
        "roles": {"type": "array", "nullable": True, "minItems": 1, "maxItems": MAX_ROLES, "items": {"type": "string"},
                  "description": "only contacts of these roles (keys or labels); absent or null: every role"},
        "reply_within_s": {"type": "integer", "minimum": MIN_REPLY_WITHIN_S, "maximum": MAX_REPLY_WITHIN_S,
                           "description": "how long people have to answer; default [registry_checks] "
                                          "default_reply_within_s"}}}}}}
ABOUT = ("Sends 「【签名】请回复1确认本号码有效。」 by SMS to every active contact with a mobile number in the region "
         "(and roles), through the normal workers, rate limits and receipts, after every live warning (priority of "
         "drills). A reply 1 (收到, 确认, …) from a number asked confirms it while the check is open, unless a live "
         "warning sent to that person still waits for their confirmation. At the end those whose SMS went out and who "
         "did not answer, and those whose SMS failed, are flagged needs_check; so is any number a send fails on for "
         "good, at any time. A check is not a warning: not in the warnings list, not in any warning's coverage.")


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _checks(request: web.Request) -> RegistryChecks:
    checks: RegistryChecks | None = request.app[services_key].checks
    if checks is None:  # pragma: no cover - the app always runs on the Redis registry
        raise Conflict("核查不可用 registry checks need the Redis registry")
    return checks


def _region(body: dict[str, Any], errors: dict[str, str]) -> str:
    raw = body.get("region")
    if not isinstance(raw, str) or not raw.strip():
        errors["region"] = "行政区划代码为空 missing region code"
        return ""
    try:
        return normalize_code(raw)
    except InvalidRegionCode as exc:
        errors["region"] = str(exc)
        return ""


def _roles(request: web.Request, body: dict[str, Any], errors: dict[str, str]) -> list[str] | None:
    raw = body.get("roles")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ROLES or not all(isinstance(r, str) for r in raw):
        errors["roles"] = f"应为 1–{MAX_ROLES} 个角色的列表 expected a list of 1 to {MAX_ROLES} roles, or null"
        return None
    book = request.app[reference_key].roles
    try:
        return sorted({book.resolve(r) for r in raw})
    except UnknownRole as exc:
        errors["roles"] = str(exc)
        return None


def _within(body: dict[str, Any], default: int, errors: dict[str, str]) -> int:
    raw = body.get("reply_within_s", default)
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_REPLY_WITHIN_S <= raw <= MAX_REPLY_WITHIN_S:
        errors["reply_within_s"] = (f"应为 {MIN_REPLY_WITHIN_S}–{MAX_REPLY_WITHIN_S} 秒的整数 expected whole seconds "
                                    f"from {MIN_REPLY_WITHIN_S} to {MAX_REPLY_WITHIN_S}")
    return raw if isinstance(raw, int) else default


def _shown(request: web.Request, doc: dict[str, Any]) -> dict[str, Any]:
    """The check as the caller may see it: phone numbers masked for viewers, roles and places named."""
    ref = request.app.get(reference_key)
    masked = principal(request).role == "viewer"
    names = {r.code: r.name for r in ref.regions} if ref is not None else {}
    for p in doc["people"]:
        if masked:
            p["phone"] = mask_phone(p["phone"])
        p["role_zh"] = ref.roles.label(p["role"], "zh") if ref is not None else p["role"]
        p["region_name"] = ref.regions.full_name(p["region"]) if ref is not None and len(ref.regions) else \
            names.get(p["region"], "")
    doc["follow_up"] = [p for p in doc["people"] if p["result"] in ("no_reply", "failed")]
    return doc


@routes.post("/api/v1/registry/checks", summary="汛前核查: start a check of a region's contacts", roles=("issuer",),
             request_body=BODY, description=ABOUT,
             responses={"201": {"description": "the check, as GET answers it"}, **error_responses(400, 409)})
async def start_check(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("请求体须为 JSON 对象 body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequest("字段无效 invalid fields", {k: "未知字段 unknown field" for k in unknown})
    errors: dict[str, str] = {}
    region = _region(body, errors)
    roles = _roles(request, body, errors)
    within = _within(body, _checks(request).settings.default_reply_within_s, errors)
    if errors:
        raise BadRequest("字段无效 invalid fields", errors)
    try:
        doc = await _checks(request).start(region=region, roles=roles, reply_within_s=within,
                                           actor=principal(request).name)
    except CheckError as exc:
        raise ApiError(exc.error, exc.detail, status=exc.status) from None
    return web.json_response(_shown(request, doc), status=201, dumps=_dumps)


@routes.get("/api/v1/registry/checks/{id}", summary="汛前核查: a check's progress and its follow-up list",
            roles=READERS, params=[path_param("id", "check id (chk…)")],
            description="`figures` (targeted, sent, delivered, failed, confirmed), each person's `result` (waiting, "
                        "confirmed; at the end no_reply, failed or not_sent), and `follow_up`: those flagged "
                        "needs_check by it. Viewers see phone numbers masked.",
            responses=error_responses(404))
async def get_check(request: web.Request) -> web.Response:
    cid = request.match_info["id"]
    doc = await _checks(request).status(cid) if CHECK_ID.fullmatch(cid) else None
    if doc is None:
        raise NotFound("核查不存在 no such check", cid)
    return web.json_response(_shown(request, doc), dumps=_dumps)


def setup(app: web.Application) -> None:
    """Mount the routes; `[registry_checks]` is read (and checked) now, at start."""
    from warning.web.app import add_routes

    CheckSettings.from_settings(app[settings_key])
    add_routes(app, routes)
