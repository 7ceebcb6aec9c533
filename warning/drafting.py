"""From the office's JSON draft (POST /api/v1/warnings) to a checked EarlyWarning."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from contacts.safe_text import unsafe_reason
from warning.cap import LATEST_TIME, MAX_AREAS, MAX_POLYGON_POINTS
from warning.cap_emit import twelve_digits
from warning.errors import BadRequest
from warning.model import Area, Circle, EarlyWarning, Info, Level, MsgType, Reference, Scope, Status
from warning.reference import EventType
from warning.wording import MAX_SUMMARY_CHARS, SUMMARY_PARAM

CN_TZ = timezone(timedelta(hours=8))
_REGION = re.compile(r"^\d{6}(\d{3}){0,2}$")
MAX_TEXT = {"headline": 200, "description": 2000, "instruction": 1000, "sms_summary": MAX_SUMMARY_CHARS}
#: fields that may hold line breaks; the headline is one line
MULTILINE = ("description", "instruction")


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked draft: the fields of DESIGN §4 `POST /api/v1/warnings`."""

    event_type: EventType
    level: Level
    headline: str
    description: str
    instruction: str
    areas: tuple[str, ...]
    polygon: tuple[tuple[float, float], ...] | None
    circle: Circle | None
    roles: tuple[str, ...] | None
    sites: tuple[str, ...]
    status: Status
    expires: datetime | None
    #: the issuer's own text for SMS in place of the description ("" none)
    sms_summary: str = ""


def _text(body: Mapping[str, Any], name: str, problems: list[dict[str, str]], *, required: bool) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            problems.append({"field": name, "error": "缺少 missing"})
        return ""
    if not isinstance(value, str):
        problems.append({"field": name, "error": "应为文本 expected a string"})
        return ""
    if len(value) > MAX_TEXT.get(name, 2000):
        problems.append({"field": name, "error": f"过长 longer than {MAX_TEXT.get(name, 2000)} characters"})
    elif (reason := unsafe_reason(value.strip(), multiline=name in MULTILINE)) is not None:
        problems.append({"field": name, "error": reason})
    return value.strip()


def _summary(body: Mapping[str, Any], problems: list[dict[str, str]]) -> str:
    """The issuer's own SMS text: no 【】, which only the signature may hold (SMS platforms refuse a second pair)."""
    text = _text(body, "sms_summary", problems, required=False)
    if "【" in text or "】" in text:
        problems.append({"field": "sms_summary", "error": "不能含【】（短信签名以外不得有【】） must not contain 【 or 】"})
    return text


def _event(body: Mapping[str, Any], event_types: Mapping[str, EventType], problems: list[dict[str, str]]
           ) -> EventType | None:
    raw = body.get("event")
    if not isinstance(raw, str) or not raw.strip():
        problems.append({"field": "event", "error": "缺少预警类型 missing event type"})
        return None
    key = raw.strip()
    if key in event_types:
        return event_types[key]
    for et in event_types.values():
        if key in et.names or key.removesuffix("预警") in et.names:
            return et
    problems.append({"field": "event", "error": f"未知预警类型 unknown event type {key!r}"})
    return None


def _level(body: Mapping[str, Any], et: EventType | None, problems: list[dict[str, str]]) -> Level | None:
    raw = body.get("level")
    level = Level.from_severity(raw) if isinstance(raw, str) else None
    if level is None:
        problems.append({"field": "level", "error": "预警级别应为 blue|yellow|orange|red level must be blue, yellow, "
                                                    "orange or red"})
        return None
    if et is not None and not et.allows(level):
        allowed = ", ".join(lv.value for lv in et.levels)
        problems.append({"field": "level", "error": f"{et.name_zh}没有{level.zh}预警 {et.name_en} has no {level.value} "
                                                    f"level (allowed: {allowed})"})
    return level


def _points(raw: Any, problems: list[dict[str, str]]) -> tuple[tuple[float, float], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) < 3:
        problems.append({"field": "polygon", "error": "多边形至少3个点 a polygon needs at least 3 [lat, lon] points"})
        return None
    if len(raw) > MAX_POLYGON_POINTS:
        problems.append({"field": "polygon", "error": f"多边形点数过多 a polygon has at most {MAX_POLYGON_POINTS} "
                                                      f"points, this one {len(raw)}"})
        return None
    points = []
    for i, p in enumerate(raw):
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
                or not (-90 <= p[0] <= 90 and -180 <= p[1] <= 180)):
            problems.append({"field": f"polygon[{i}]", "error": "应为 [纬度, 经度] expected [lat, lon] in range"})
            return None
        points.append((float(p[0]), float(p[1])))
    if points[0] != points[-1]:
        points.append(points[0])
    if len(points) < 4:
        problems.append({"field": "polygon", "error": "多边形至少3个不同的点 a polygon needs 3 distinct points"})
        return None
    return tuple(points)


def _circle(raw: Any, problems: list[dict[str, str]]) -> Circle | None:
    if raw is None:
        return None
    try:
        c = Circle(float(raw["lat"]), float(raw["lon"]), float(raw["radius_km"]))
    except (TypeError, KeyError, ValueError):
        problems.append({"field": "circle", "error": "应为 {lat, lon, radius_km} expected {lat, lon, radius_km}"})
        return None
    if not (-90 <= c.lat <= 90 and -180 <= c.lon <= 180 and 0 < c.radius_km <= 500):
        problems.append({"field": "circle", "error": "超出范围 out of range"})
        return None
    return c


def _strings(body: Mapping[str, Any], name: str, problems: list[dict[str, str]]) -> tuple[str, ...] | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        problems.append({"field": name, "error": "应为文本列表 expected a list of strings"})
        return None
    return tuple(dict.fromkeys(v.strip() for v in raw))


def _expires(raw: Any, now: datetime, problems: list[dict[str, str]]) -> datetime | None:
    if raw is None:
        return None
    try:
        expires = datetime.fromisoformat(str(raw))
    except ValueError:
        problems.append({"field": "expires", "error": "应为 ISO 8601 时间 expected an ISO 8601 time"})
        return None
    if expires.tzinfo is None:
        problems.append({"field": "expires", "error": "需要时区 needs a time zone, e.g. +08:00"})
    elif expires <= now:
        problems.append({"field": "expires", "error": "已过期 is in the past"})
    elif expires > LATEST_TIME:
        problems.append({"field": "expires", "error": f"时间超出范围 later than {LATEST_TIME.isoformat()}"})
    else:
        return expires
    return None


def parse_draft(body: Any, *, event_types: Mapping[str, EventType], roles: Mapping[str, Any], now: datetime
                ) -> Draft:
    """Check every field; all problems are reported at once (400 with a list)."""
    if not isinstance(body, Mapping):
        raise BadRequest("invalid body", "expected a JSON object")
    problems: list[dict[str, str]] = []
    et = _event(body, event_types, problems)
    level = _level(body, et, problems)
    headline = _text(body, "headline", problems, required=True)
    description = _text(body, "description", problems, required=False)
    instruction = _text(body, "instruction", problems, required=False)
    sms_summary = _summary(body, problems)
    areas = _strings(body, "areas", problems) or ()
    if len(areas) > MAX_AREAS:
        problems.append({"field": "areas", "error": f"区域过多 at most {MAX_AREAS} areas, {len(areas)} given"})
    for code in areas[:MAX_AREAS]:
        if not _REGION.match(code):
            problems.append({"field": "areas", "error": f"行政区划代码应为6、9或12位数字 bad region code {code!r}"})
    polygon = _points(body.get("polygon"), problems)
    circle = _circle(body.get("circle"), problems)
    role_list = _strings(body, "roles", problems)
    for role in role_list or ():
        if role not in roles:
            problems.append({"field": "roles", "error": f"未知角色 unknown role {role!r}"})
    sites = _strings(body, "sites", problems) or ()
    if not areas and polygon is None and circle is None and not sites:
        problems.append({"field": "areas", "error": "需要区域、多边形、圆或隐患点 give areas, a polygon, a circle or sites"})
    status_raw = body.get("status", "Actual")
    status = Status(status_raw) if status_raw in ("Actual", "Exercise", "Test") else None
    if status is None:
        problems.append({"field": "status", "error": "应为 Actual、Exercise 或 Test"})
    expires = _expires(body.get("expires"), now, problems)
    if problems or et is None or level is None or status is None:
        raise BadRequest("invalid warning", problems)
    return Draft(et, level, headline, description, instruction, areas, polygon, circle, role_list, sites, status,
                 expires, sms_summary)


def build_content(draft: Draft, *, identifier: str, sender: str, sender_name: str, now: datetime,
                  expires: datetime, msg_type: MsgType = MsgType.ALERT,
                  references: Sequence[Reference] = (), area_desc: str = "") -> EarlyWarning:
    """The CAP content of a manual warning (zh-CN, times in +08:00)."""
    sent = now.astimezone(CN_TZ).replace(microsecond=0)
    area = Area(desc=area_desc or "指定区域",
                polygons=(draft.polygon,) if draft.polygon else (),
                circles=(draft.circle,) if draft.circle else (),
                geocodes=tuple(("GB2260", twelve_digits(c)) for c in draft.areas), region_codes=draft.areas)
    urgent = draft.level.rank >= Level.ORANGE.rank
    info = Info(
        language="zh-CN", categories=(draft.event_type.category,), event=draft.event_type.name_zh,
        urgency="Immediate" if urgent else "Expected", severity=draft.level.cap_severity,
        certainty="Likely", response_types=("Prepare",),
        event_codes=(("EW_EVENT", draft.event_type.key),), effective=sent,
        expires=expires.astimezone(CN_TZ).replace(microsecond=0), sender_name=sender_name,
        headline=draft.headline, description=draft.description or None, instruction=draft.instruction or None,
        parameters=(("EW_LEVEL", draft.level.value),
                    *(((SUMMARY_PARAM, draft.sms_summary),) if draft.sms_summary else ())), areas=(area,),
    )
    return EarlyWarning(identifier=identifier, sender=sender, sent=sent, status=draft.status, msg_type=msg_type,
                        scope=Scope.PUBLIC, infos=(info,), references=tuple(references), level=draft.level,
                        event_type=draft.event_type.key)
