"""Parse CAP 1.2 (and 1.1) XML into an EarlyWarning, refusing hostile documents; every problem with its path.

Decisions, for real feeds:
- The root must be `alert` in the CAP 1.2 or 1.1 namespace, prefixed or default. A document with no
  namespace at all is accepted as CAP 1.2 (several Chinese provincial feeds omit it); any other
  namespace is refused. Elements in foreign namespaces (extensions, an XML signature) are ignored.
- DTDs of any kind, entities and external references are refused (defusedxml); the size cap is checked
  before any parsing. GB2312/GBK/GB18030 documents are re-encoded to UTF-8 first (expat cannot read them).
- Text is trimmed. A missing `language` is zh-CN when the info's text is Chinese, else CAP's en-US.
- `severity` may hold the Chinese profile's colour words (Red, 红色...): they give the level and are
  normalised to the CAP word (Extreme...). CAP 1.1's certainty "Very Likely" becomes "Likely".
- Geocodes named GB2260, GB/T 2260, ADCODE, 行政区划代码 or areaCode (any case) give region codes of 6, 9 or
  12 digits; 12- and 9-digit codes padded with trailing zero groups are shortened (510722000000 → 510722,
  510722100000 → 510722100). The national GB/T 35965.1 form, a `<geocode>` holding a comma-separated list of
  codes and no valueName, is read as GB2260 geocodes.
- The national form's `<eventType>` (its event code, e.g. 11B03) is kept as an eventCode named eventType,
  which classifies the event like any eventCode; an info with an eventType needs no `<event>`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from contacts.safe_text import unsafe_reason
from warning.errors import CapParseError
from warning.model import (
    CATEGORIES,
    CERTAINTIES,
    RESPONSE_TYPES,
    SEVERITIES,
    URGENCIES,
    Area,
    Circle,
    EarlyWarning,
    Info,
    Level,
    MsgType,
    Point,
    Reference,
    Resource,
    Scope,
    Status,
    choose_info,
    is_region_geocode,
    region_code,
)
from warning.reference import EventType, default_event_types, match_event_type

CAP_NAMESPACES = {"urn:oasis:names:tc:emergency:cap:1.2": "1.2", "urn:oasis:names:tc:emergency:cap:1.1": "1.1"}
DEFAULT_MAX_BYTES = 1024 * 1024
#: at most this many <area> blocks in one <info>, and points in one <polygon> (drafts obey the same)
MAX_AREAS = 100
MAX_POLYGON_POINTS = 10_000
#: CAP times outside this span are refused: nothing real is sent before, or expires after, it
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
#: text elements shown to people: one line each, except those that may hold line breaks
SHOWN_LINES = ("event", "headline", "senderName", "areaDesc")
SHOWN_TEXTS = ("description", "instruction")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']")
_CJK = re.compile(r"[\u3400-\u9fff]")
_FORBIDDEN_ID = re.compile(r"[\s,<&]")
_LIST = re.compile(r"[\s,，、;；]+")
T = TypeVar("T")


def parse_cap(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
              event_types: Mapping[str, EventType] | None = None) -> EarlyWarning:
    """A CAP document as an EarlyWarning, or CapParseError listing every (path, reason)."""
    if len(data) > max_bytes:
        raise CapParseError([("alert", f"文档过大 document too large: more than {max_bytes} bytes")])
    root = _load(_to_utf8(data))
    ns = _namespace(root)
    reader = _Reader(ns)
    warning = reader.alert(root)
    if reader.problems or warning is None:
        raise CapParseError(reader.problems)
    types = default_event_types() if event_types is None else event_types
    return _classify(warning, types)


def _to_utf8(data: bytes) -> bytes:
    match = _ENCODING.match(data[:200])
    if not match or match.group(1).decode().casefold() not in ("gb2312", "gbk", "gb18030"):
        return data
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CapParseError([("alert", f"bytes are not {match.group(1).decode()}: {exc.reason}")]) from None
    head = match.group(0).decode("ascii", "replace")
    return ('<?xml version="1.0" encoding="UTF-8"' + text[len(head):]).encode("utf-8")


def _load(data: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        kind = type(exc).__name__.replace("Forbidden", "").lower() or "construct"
        reason = f"拒绝不安全的 XML refused unsafe XML ({kind}): DTDs, entities and external references are not allowed"
        raise CapParseError([("alert", reason)]) from None
    except ParseError as exc:
        raise CapParseError([("alert", f"XML 格式错误 not well-formed XML: {exc}")]) from None
    except (LookupError, ValueError) as exc:  # an encoding expat cannot read: unknown, multi-byte, not text
        declared = _ENCODING.match(data[:200])
        name = declared.group(1).decode() if declared else "?"
        reason = f"不支持的字符编码 unsupported encoding {name!r} ({exc}); use UTF-8 or GB18030"
        raise CapParseError([("alert", reason)]) from None
    return root


def _namespace(root: Element) -> str:
    tag = root.tag
    ns, local = (tag[1:].split("}", 1) if tag.startswith("{") else ("", tag))
    if local != "alert":
        raise CapParseError([(local, f"根元素应为 alert: the root element is <{local}>, not <alert>")])
    if ns and ns not in CAP_NAMESPACES:
        raise CapParseError([("alert", f"不支持的命名空间 unsupported namespace {ns!r} (CAP 1.2 or 1.1 expected)")])
    return ns


class _Reader:
    """Walks the tree once, collecting values and every problem with its path."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.problems: list[tuple[str, str]] = []

    def bad(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    def _q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}" if self.ns else name

    def all(self, el: Element, name: str) -> list[Element]:
        return el.findall(self._q(name))

    def text(self, el: Element, name: str, path: str, *, required: bool = False) -> str | None:
        found = self.all(el, name)
        if len(found) > 1:
            self.bad(f"{path}/{name}", f"出现 {len(found)} 次 appears {len(found)} times, at most once")
        value = (found[0].text or "").strip() if found else ""
        if not value:
            if required:
                self.bad(f"{path}/{name}", "缺少必填元素 required element missing or empty")
            return None
        if name in SHOWN_LINES or name in SHOWN_TEXTS:
            reason = unsafe_reason(value, multiline=name in SHOWN_TEXTS)
            if reason is not None:
                self.bad(f"{path}/{name}", reason)
        return value

    def texts(self, el: Element, name: str) -> tuple[str, ...]:
        return tuple(t for t in ((e.text or "").strip() for e in self.all(el, name)) if t)

    def enum(self, el: Element, name: str, path: str, convert: Callable[[str], T]) -> T | None:
        value = self.text(el, name, path, required=True)
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError:
            self.bad(f"{path}/{name}", f"取值无效 invalid value {value!r}")
            return None

    def time(self, el: Element, name: str, path: str, *, required: bool = False) -> datetime | None:
        value = self.text(el, name, path, required=required)
        return None if value is None else self.parse_time(value, f"{path}/{name}")

    def parse_time(self, value: str, path: str) -> datetime | None:
        match = _TIME.match(value)
        if not match:
            self.bad(path, f"时间格式无效 not a CAP dateTime: {value!r} (e.g. 2024-07-01T08:00:00+08:00)")
            return None
        if not match.group(2):
            self.bad(path, f"时间缺少时区 time has no zone: {value!r} (e.g. 2024-07-01T08:00:00+08:00)")
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            self.bad(path, f"日期不存在 no such date or time: {value!r}")
            return None
        if not EARLIEST_TIME <= when <= LATEST_TIME:
            self.bad(path, f"时间超出范围 time out of range: {value!r} (1970–2099)")
            return None
        return when

    def ident(self, el: Element, name: str, path: str) -> str:
        value = self.text(el, name, path, required=True) or ""
        if _FORBIDDEN_ID.search(value):
            self.bad(f"{path}/{name}", f"不得含空格、逗号、< 或 & must not contain spaces, commas, < or &: {value!r}")
        return value

    def alert(self, el: Element) -> EarlyWarning | None:
        p = "alert"
        identifier, sender = self.ident(el, "identifier", p), self.ident(el, "sender", p)
        sent = self.time(el, "sent", p, required=True)
        status = self.enum(el, "status", p, Status)
        msg_type = self.enum(el, "msgType", p, MsgType)
        scope = self.enum(el, "scope", p, Scope)
        restriction, addresses = self.text(el, "restriction", p), self.text(el, "addresses", p)
        if scope is Scope.RESTRICTED and not restriction:
            self.bad(f"{p}/restriction", "scope 为 Restricted 时必填 required when scope is Restricted")
        if scope is Scope.PRIVATE and not addresses:
            self.bad(f"{p}/addresses", "scope 为 Private 时必填 required when scope is Private")
        references = self.references(self.text(el, "references", p), f"{p}/references")
        infos = tuple(self.info(e, f"{p}/info[{i}]") for i, e in enumerate(self.all(el, "info"), 1))
        if sent is None or status is None or msg_type is None or scope is None:
            return None
        return EarlyWarning(
            identifier=identifier, sender=sender, sent=sent, status=status, msg_type=msg_type, scope=scope,
            infos=infos, source=self.text(el, "source", p), restriction=restriction, addresses=addresses,
            codes=self.texts(el, "code"), note=self.text(el, "note", p), references=references,
            incidents=self.text(el, "incidents", p),
        )

    def references(self, value: str | None, path: str) -> tuple[Reference, ...]:
        out = []
        for n, triple in enumerate((value or "").split(), 1):
            parts = triple.split(",")
            if len(parts) != 3 or not all(parts):
                self.bad(path, f"第 {n} 项应为 sender,identifier,sent: reference {n} {triple!r} is not "
                               "sender,identifier,sent")
                continue
            sent = self.parse_time(parts[2], f"{path}[{n}]")
            if sent is not None:
                out.append(Reference(parts[0], parts[1], sent))
        return tuple(out)

    def info(self, el: Element, p: str) -> Info:
        categories = self.texts(el, "category")
        if not categories:
            self.bad(f"{p}/category", "缺少必填元素 required element missing or empty")
        for c in categories:
            if c not in CATEGORIES:
                self.bad(f"{p}/category", f"取值无效 invalid value {c!r}")
        responses = self.texts(el, "responseType")
        for r in responses:
            if r not in RESPONSE_TYPES:
                self.bad(f"{p}/responseType", f"取值无效 invalid value {r!r}")
        national_type = self.text(el, "eventType", p)
        event = self.text(el, "event", p, required=national_type is None) or ""
        headline, description = self.text(el, "headline", p), self.text(el, "description", p)
        language = self.text(el, "language", p) or _guess_language(event, headline, description)
        return Info(
            language=language, categories=categories, event=event,
            urgency=self.enum(el, "urgency", p, _choice(URGENCIES)) or "",
            severity=self.enum(el, "severity", p, _severity) or "",
            certainty=self.enum(el, "certainty", p, _certainty) or "",
            response_types=responses, audience=self.text(el, "audience", p),
            event_codes=self.pairs(el, "eventCode", p) + ((("eventType", national_type),) if national_type else ()),
            effective=self.time(el, "effective", p),
            onset=self.time(el, "onset", p), expires=self.time(el, "expires", p),
            sender_name=self.text(el, "senderName", p), headline=headline, description=description,
            instruction=self.text(el, "instruction", p), web=self.text(el, "web", p),
            contact=self.text(el, "contact", p), parameters=self.pairs(el, "parameter", p),
            resources=tuple(self.resource(e, f"{p}/resource[{i}]") for i, e in enumerate(self.all(el, "resource"), 1)),
            areas=self.areas(el, p),
        )

    def areas(self, el: Element, p: str) -> tuple[Area, ...]:
        found = self.all(el, "area")
        if len(found) > MAX_AREAS:
            self.bad(f"{p}/area", f"区域过多 at most {MAX_AREAS} areas in one info, this one has {len(found)}")
            return ()
        return tuple(self.area(e, f"{p}/area[{i}]") for i, e in enumerate(found, 1))

    def pairs(self, el: Element, name: str, p: str) -> tuple[tuple[str, str], ...]:
        out = []
        for i, e in enumerate(self.all(el, name), 1):
            key = self.text(e, "valueName", f"{p}/{name}[{i}]", required=True)
            value = self.text(e, "value", f"{p}/{name}[{i}]", required=True)
            if key and value:
                out.append((key, value))
        return tuple(out)

    def geocodes(self, el: Element, p: str) -> tuple[tuple[str, str], ...]:
        """CAP's valueName/value pairs; a `<geocode>` with text and no children is the national form, a list of
        region codes separated by commas."""
        out: list[tuple[str, str]] = []
        for i, e in enumerate(self.all(el, "geocode"), 1):
            if len(e) == 0 and (e.text or "").strip():
                out += [("GB2260", code) for code in _LIST.split((e.text or "").strip()) if code]
                continue
            key = self.text(e, "valueName", f"{p}/geocode[{i}]", required=True)
            value = self.text(e, "value", f"{p}/geocode[{i}]", required=True)
            if key and value:
                out.append((key, value))
        return tuple(out)

    def resource(self, el: Element, p: str) -> Resource:
        size = self.text(el, "size", p)
        if size is not None and not size.isdigit():
            self.bad(f"{p}/size", f"应为整数字节数 not a whole number of bytes: {size!r}")
        return Resource(desc=self.text(el, "resourceDesc", p, required=True) or "",
                        mime_type=self.text(el, "mimeType", p, required=True) or "",
                        size=int(size) if size and size.isdigit() else None, uri=self.text(el, "uri", p),
                        deref_uri=self.text(el, "derefUri", p), digest=self.text(el, "digest", p))

    def area(self, el: Element, p: str) -> Area:
        desc = self.text(el, "areaDesc", p, required=True) or ""
        polygons = tuple(ring for i, e in enumerate(self.all(el, "polygon"), 1)
                         if (ring := self.polygon((e.text or "").strip(), f"{p}/polygon[{i}]")) is not None)
        circles = tuple(c for i, e in enumerate(self.all(el, "circle"), 1)
                        if (c := self.circle((e.text or "").strip(), f"{p}/circle[{i}]")) is not None)
        geocodes = self.geocodes(el, p)
        codes: dict[str, None] = {}
        for i, (name, value) in enumerate(geocodes, 1):
            if is_region_geocode(name):
                code = region_code(value)
                if code is None:
                    self.bad(f"{p}/geocode[{i}]/value", f"行政区划代码应为 6、9 或 12 位数字 a region code has 6, 9 "
                                                         f"or 12 digits: {value!r}")
                else:
                    codes[code] = None
        altitude, ceiling = self.number(el, "altitude", p), self.number(el, "ceiling", p)
        if ceiling is not None and altitude is None:
            self.bad(f"{p}/ceiling", "有 ceiling 时须有 altitude: ceiling needs altitude")
        return Area(desc=desc, polygons=polygons, circles=circles, geocodes=geocodes, region_codes=tuple(codes),
                    altitude=altitude, ceiling=ceiling)

    def number(self, el: Element, name: str, p: str) -> float | None:
        value = self.text(el, name, p)
        if value is None:
            return None
        number = _float(value)
        if number is None:
            self.bad(f"{p}/{name}", f"应为数字 not a number: {value!r}")
        return number

    def point(self, pair: str, path: str, n: int) -> Point | None:
        lat_lon = pair.split(",")
        numbers = [_float(v) for v in lat_lon] if len(lat_lon) == 2 else []
        if len(numbers) != 2 or numbers[0] is None or numbers[1] is None:
            self.bad(path, f"第 {n} 个点应为 纬度,经度: point {n} {pair!r} is not lat,lon")
            return None
        lat, lon = numbers[0], numbers[1]
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.bad(path, f"第 {n} 个点超出范围 point {n} ({lat}, {lon}) is outside lat -90..90, lon -180..180")
            return None
        return (lat, lon)

    def polygon(self, text: str, path: str) -> tuple[Point, ...] | None:
        raw = text.split()
        if len(raw) > MAX_POLYGON_POINTS:
            self.bad(path, f"多边形点数过多 a polygon has at most {MAX_POLYGON_POINTS} points, this one {len(raw)}")
            return None
        points = [self.point(pair, path, n) for n, pair in enumerate(raw, 1)]
        if any(pt is None for pt in points):
            return None
        ring = tuple(pt for pt in points if pt is not None)
        if len(ring) < 4:
            self.bad(path, f"多边形至少 4 个点 a polygon needs at least 4 points (a closed ring), it has {len(ring)}")
            return None
        if ring[0] != ring[-1]:
            self.bad(path, f"多边形未闭合 polygon not closed: the first point {ring[0]} differs from the last "
                           f"{ring[-1]}")
            return None
        return ring

    def circle(self, text: str, path: str) -> Circle | None:
        parts = text.split()
        radius = _float(parts[1]) if len(parts) == 2 else None
        centre = self.point(parts[0], path, 1) if len(parts) == 2 else None
        if len(parts) != 2 or centre is None:
            if len(parts) != 2:
                self.bad(path, f"圆应为 '纬度,经度 半径' a circle is 'lat,lon radius_km': {text!r}")
            return None
        if radius is None or radius < 0:
            self.bad(path, f"半径应为非负数 radius must be a number ≥ 0 km: {parts[1]!r}")
            return None
        return Circle(centre[0], centre[1], radius)


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(value)
        return value
    return check


def _severity(value: str) -> str:
    if value in SEVERITIES:
        return value
    level = Level.from_severity(value)
    if level is None:
        raise ValueError(value)
    return level.cap_severity


def _certainty(value: str) -> str:
    return "Likely" if value == "Very Likely" else _choice(CERTAINTIES)(value)


def _guess_language(*texts: str | None) -> str:
    return "zh-CN" if any(t and _CJK.search(t) for t in texts) else "en-US"


def _infos_chosen_first(w: EarlyWarning) -> Iterator[Info]:
    chosen = choose_info(w.infos)
    if chosen is not None:
        yield chosen
    yield from (i for i in w.infos if i is not chosen)


def _classify(w: EarlyWarning, types: Mapping[str, EventType]) -> EarlyWarning:
    chosen = choose_info(w.infos)
    level = Level.from_severity(chosen.severity) if chosen else None
    event_type = next((t for i in _infos_chosen_first(w) if (t := match_event_type(i, types))), None)
    return w.with_(level=level, event_type=event_type)
