"""Validation of what people type (API bodies, spreadsheet rows) into registry values."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from contacts.addresses import names_local_target
from contacts.model import (
    DEFAULT_CHANNELS,
    DEVICE_KINDS,
    MAX_RAIN_WINDOW_S,
    SITE_KINDS,
    Contact,
    Device,
    HazardSite,
    Location,
    Thresholds,
    rain_window_s,
)
from contacts.phone import InvalidPhoneNumber, normalize_e164
from contacts.positions import UnknownPosition
from contacts.reference import Reference, UnknownRole
from contacts.regions import InvalidRegionCode, normalize_code
from contacts.safe_text import unsafe_reason

_SPLIT = re.compile(r"[,，;；、|/\s]+")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_LANG_WORDS = {"中文": "zh-CN", "汉语": "zh-CN", "普通话": "zh-CN", "英文": "en", "英语": "en", "english": "en"}
_CHANNEL_WORDS = {"sms": "sms", "短信": "sms", "voice": "voice", "语音": "voice", "电话": "voice", "call": "voice"}
_DEVICE_WORDS = {"escreen": "escreen", "电子屏": "escreen", "显示屏": "escreen", "led": "escreen",
                 "broadcast": "broadcast", "广播": "broadcast", "大喇叭": "broadcast", "村村响": "broadcast",
                 "应急广播": "broadcast", "loudspeaker": "broadcast"}
_SITE_WORDS = {"水库": "reservoir", "滑坡": "landslide", "泥石流": "debris_flow", "崩塌": "collapse",
               "水文站": "river_station", "水位站": "river_station", "内涝点": "flood_point", "其他": "other"}
_STATION = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")
_THRESHOLD_KEYS = ("warning_level_m", "guarantee_level_m", "rain_prepare_mm", "rain_evacuate_mm")
_TRUE = {"1", "true", "yes", "y", "是", "启用", "有效"}
_FALSE = {"0", "false", "no", "n", "否", "停用", "无效"}
MAX_NAME_CHARS = 64
#: Redis GEO cannot index latitudes beyond ±85.05112878 (Web Mercator)
MAX_GEO_LAT = 85.05112878


class FieldErrors(ValueError):
    """Input with one or more bad fields: field → reason (Chinese first, English after)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet that stored a phone or a code as a number
    return str(value).strip()


def parse_location(raw: Mapping[str, Any], errors: dict[str, str]) -> Location | None:
    """`location: {lat, lon}` or flat `lat`, `lon`; both or neither."""
    loc = raw.get("location")
    if isinstance(loc, Mapping):
        raw = loc
    elif loc is not None and "lat" not in raw:
        errors["location"] = "位置格式无效 location must be {lat, lon} or null"
        return None
    lat_s, lon_s = _text(raw, "lat"), _text(raw, "lon")
    if not lat_s and not lon_s:
        return None
    if not lat_s or not lon_s:
        errors["location"] = "纬度和经度须同时填写 give both latitude and longitude"
        return None
    try:
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        errors["location"] = f"经纬度无效 invalid latitude/longitude: {lat_s[:20]}, {lon_s[:20]}"
        return None
    if not (-MAX_GEO_LAT <= lat <= MAX_GEO_LAT and -180 <= lon <= 180):
        errors["location"] = f"经纬度超出范围 latitude/longitude out of range: {lat_s[:20]}, {lon_s[:20]}"
        return None
    return Location(lat, lon)


def _words(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [w for w in _SPLIT.split(str(value or "").strip()) if w]


def _channels(value: Any, phone_kind: str, errors: dict[str, str], notes: list[str]) -> tuple[str, ...]:
    words = _words(value)
    if not words:
        return DEFAULT_CHANNELS[phone_kind]
    out: list[str] = []
    for word in words:
        channel = _CHANNEL_WORDS.get(word.casefold())
        if channel is None:
            errors["channels"] = f"渠道未知 unknown channel: {word[:20]} (sms, voice, 短信, 语音)"
            return ()
        if channel not in out:
            out.append(channel)
    if phone_kind == "landline" and "sms" in out:
        out.remove("sms")
        if not out:
            errors["channels"] = "座机不能接收短信 a landline cannot receive SMS; use voice"
            return ()
        notes.append("座机只能接收语音，已去掉短信 landline takes voice only; sms dropped")
    return tuple(out)


def _lang(value: str, errors: dict[str, str]) -> str:
    if not value:
        return "zh-CN"
    lang = _LANG_WORDS.get(value.casefold(), value)
    if not _LANG.match(lang):
        errors["lang"] = f"语言代码无效 invalid language: {value[:20]} (zh-CN, en)"
    return lang


def parse_active(value: Any, errors: dict[str, str]) -> bool:
    """A yes/no cell or a JSON boolean; empty means active."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().casefold()
    if not text or text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors["active"] = f"状态无效 invalid active flag: {text[:20]} (是/否, true/false)"
    return True


def _region(raw: Mapping[str, Any], ref: Reference, errors: dict[str, str], notes: list[str]) -> str:
    text = _text(raw, "region")
    if not text:
        errors["region"] = "行政区划代码为空 missing region code"
        return ""
    try:
        code = normalize_code(text)
    except InvalidRegionCode as exc:
        errors["region"] = str(exc)
        return ""
    if len(ref.regions) and code not in ref.regions:
        # the tree only names divisions; a village missing from it must not keep anyone from a warning
        notes.append(f"行政区划代码不在区划表中（已接受） region code not in the region tree (accepted): {code}")
    return code


def _name(raw: Mapping[str, Any], errors: dict[str, str]) -> str:
    name = _text(raw, "name")
    if not name:
        errors["name"] = "姓名为空 missing name"
    elif len(name) > MAX_NAME_CHARS:
        errors["name"] = f"名称过长 name longer than {MAX_NAME_CHARS} characters"
    elif (reason := unsafe_reason(name)) is not None:
        errors["name"] = reason
    return name


def parse_contact(raw: Mapping[str, Any], ref: Reference, *, cid: str = "",
                  phone: tuple[str, str] | None = None) -> tuple[Contact, list[str]]:
    """A contact from typed fields, with notes (accepted with a remark); raises FieldErrors.

    `phone` is an already normalised (e164, kind) pair, to skip parsing it again.
    """
    errors: dict[str, str] = {}
    notes: list[str] = []
    name = _name(raw, errors)
    e164, kind = "", "mobile"
    try:
        e164, kind = phone or normalize_e164(_text(raw, "phone"), ref.default_phone_region)
    except InvalidPhoneNumber as exc:
        errors["phone"] = str(exc)
    role = ""
    role_text = _text(raw, "role")
    try:
        role = ref.roles.resolve(role_text) if role_text else ""
        if not role_text:
            errors["role"] = "角色为空 missing role"
    except UnknownRole as exc:
        errors["role"] = str(exc)
    position = _position(raw, role, ref, errors)
    region = _region(raw, ref, errors, notes)
    location = parse_location(raw, errors)
    channels = _channels(raw.get("channels"), kind, errors, notes) if e164 else ()
    lang = _lang(_text(raw, "lang"), errors)
    active = parse_active(raw.get("active"), errors)
    supervisor = _text(raw, "supervisor") or None
    if errors:
        raise FieldErrors(errors)
    return Contact(id=cid, name=name, phone=e164, phone_kind=kind, role=role, region=region, location=location,
                   channels=channels, lang=lang, supervisor=supervisor, active=active, position=position), notes


def _position(raw: Mapping[str, Any], role: str, ref: Reference, errors: dict[str, str]) -> str:
    """The position (职务) given, or, when none is given, the one the role stands for (包村干部 → 包村干部)."""
    text = _text(raw, "position")
    if not text:
        return ref.positions.default_for(role)
    try:
        return ref.positions.resolve(text)
    except UnknownPosition as exc:
        errors["position"] = str(exc)
        return ""


def _kind(raw: Mapping[str, Any], words: Mapping[str, str], allowed: tuple[str, ...], errors: dict[str, str]) -> str:
    text = _text(raw, "kind")
    kind = words.get(text.casefold(), text)
    if kind not in allowed:
        errors["kind"] = f"类型未知 unknown kind: {text[:20]} ({', '.join(allowed)})"
    return kind


def _address(raw: Mapping[str, Any], errors: dict[str, str], *, allow_loopback: bool) -> str:
    address = _text(raw, "address")
    if not re.match(r"^(https?|mqtts?)://[^\s/]+(/\S*)?$", address):
        errors["address"] = "地址无效 address must be an http(s):// URL or an mqtt(s)://host/topic"
    elif address.startswith("http") and not allow_loopback and names_local_target(address):
        errors["address"] = ("地址指向本机或链路本地地址 address points at this machine or a link-local network "
                             "(127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10); [devices] allow_loopback allows it")
    return address


def parse_device(raw: Mapping[str, Any], ref: Reference, *, did: str = "",
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(24),
                 allow_loopback: bool = False) -> Device:
    """A device from typed fields; a missing token is generated. Raises FieldErrors.

    An http(s) address on this machine or a link-local network is refused unless `allow_loopback`.
    """
    errors: dict[str, str] = {}
    notes: list[str] = []
    name = _name(raw, errors)
    kind = _kind(raw, _DEVICE_WORDS, DEVICE_KINDS, errors)
    region = _region(raw, ref, errors, notes)
    address = _address(raw, errors, allow_loopback=allow_loopback)
    location = parse_location(raw, errors)
    token = _text(raw, "token") or token_factory()
    if len(token) < 16:
        errors["token"] = "设备令牌过短 device token shorter than 16 characters"
    active = parse_active(raw.get("active"), errors)
    if errors:
        raise FieldErrors(errors)
    return Device(id=did, name=name, kind=kind, region=region, address=address, location=location, token=token,
                  active=active)


def parse_site(raw: Mapping[str, Any], ref: Reference, *, sid: str = "") -> HazardSite:
    """A hazard site from typed fields (contact ids are checked against the store by the caller)."""
    errors: dict[str, str] = {}
    notes: list[str] = []
    name = _name(raw, errors)
    kind = _kind(raw, _SITE_WORDS, SITE_KINDS, errors)
    region = _region(raw, ref, errors, notes)
    location = parse_location(raw, errors)
    if location is None and "location" not in errors:
        errors["location"] = "隐患点须有位置 a hazard site needs a location {lat, lon}"
    contacts = raw.get("contacts", [])
    if not isinstance(contacts, list) or not all(isinstance(c, str) and c for c in contacts):
        errors["contacts"] = "责任人须为联系人编号列表 contacts must be a list of contact ids"
        contacts = []
    station = _text(raw, "station")
    if station and not _STATION.match(station):
        errors["station"] = f"测站编码无效 invalid station code (1–32 letters, digits, . _ -): {station[:40]}"
    thresholds = parse_thresholds(raw.get("thresholds"), errors)
    if thresholds is not None and not station and "station" not in errors:
        errors["thresholds"] = "有预警指标须填测站编码 thresholds need the gauge's station code"
    downstream = _downstream(raw.get("downstream"), ref, errors)
    if errors:
        raise FieldErrors(errors)
    return HazardSite(id=sid, name=name, kind=kind, region=region, location=location,
                      contacts=tuple(dict.fromkeys(contacts)), station=station, thresholds=thresholds,
                      downstream=downstream)


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _rain(raw: Any, key: str, errors: dict[str, str]) -> tuple[tuple[str, float], ...]:
    if raw is None or raw == {}:
        return ()
    if not isinstance(raw, Mapping):
        errors["thresholds"] = f'{key} 应为 {{时段: 毫米}} must be {{window: mm}}, e.g. {{"1h": 30, "3h": 50}}'
        return ()
    out = []
    for window, mm in raw.items():
        try:
            seconds = rain_window_s(str(window))
        except ValueError:
            seconds = 0
        if not seconds or seconds > MAX_RAIN_WINDOW_S:
            errors["thresholds"] = (f"{key} 的时段无效 invalid rainfall window {str(window)[:10]!r} (1h … 24h, or "
                                    "minutes such as 30min)")
            return ()
        number = _positive(mm)
        if number is None:
            errors["thresholds"] = f"{key}.{window} 应为正数 must be a positive number of mm"
            return ()
        out.append((str(window), number))
    return tuple(sorted(out, key=lambda p: rain_window_s(p[0])))


def parse_thresholds(raw: Any, errors: dict[str, str]) -> Thresholds | None:
    """A gauge's thresholds: numbers positive, 保证水位 ≥ 警戒水位, 立即转移 ≥ 准备转移 for each window both name."""
    if raw is None or raw == {} or raw == "":
        return None
    if not isinstance(raw, Mapping):
        errors["thresholds"] = "预警指标格式无效 thresholds must be an object"
        return None
    unknown = [k for k in raw if k not in _THRESHOLD_KEYS]
    if unknown:
        errors["thresholds"] = f"未知的指标 unknown threshold {str(unknown[0])[:30]!r} (known: {', '.join(_THRESHOLD_KEYS)})"
        return None
    levels: dict[str, float | None] = {}
    for key in ("warning_level_m", "guarantee_level_m"):
        value = raw.get(key)
        levels[key] = _positive(value) if value not in (None, "") else None
        if value not in (None, "") and levels[key] is None:
            errors["thresholds"] = f"{key} 应为正数 must be a positive number of metres"
            return None
    prepare = _rain(raw.get("rain_prepare_mm"), "rain_prepare_mm", errors)
    evacuate = _rain(raw.get("rain_evacuate_mm"), "rain_evacuate_mm", errors)
    if "thresholds" in errors:
        return None
    warn, guarantee = levels["warning_level_m"], levels["guarantee_level_m"]
    if warn is not None and guarantee is not None and guarantee < warn:
        errors["thresholds"] = f"保证水位不得低于警戒水位 guarantee_level_m ({guarantee}) is below warning_level_m ({warn})"
        return None
    for window, mm in evacuate:
        low = dict(prepare).get(window)
        if low is not None and mm < low:
            errors["thresholds"] = (f"立即转移雨量不得低于准备转移雨量 rain_evacuate_mm.{window} ({mm}) is below "
                                    f"rain_prepare_mm.{window} ({low})")
            return None
    thresholds = Thresholds(warn, guarantee, prepare, evacuate)
    return thresholds if thresholds != Thresholds() else None


def _downstream(raw: Any, ref: Reference, errors: dict[str, str]) -> tuple[str, ...]:
    """Village codes downstream of a site, each in the region tree (when one is loaded)."""
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, str) and not (isinstance(raw, list) and all(isinstance(w, str) for w in raw)):
        errors["downstream"] = "下游村须为行政区划代码列表 downstream must be a list of region codes"
        return ()
    words = _words(raw)
    codes: list[str] = []
    for word in words:
        try:
            code = normalize_code(word)
        except InvalidRegionCode as exc:
            errors["downstream"] = str(exc)
            return ()
        if len(ref.regions) and code not in ref.regions:
            errors["downstream"] = f"区划表中没有此代码 region code not in the region tree: {code}"
            return ()
        codes.append(code)
    return tuple(dict.fromkeys(codes))
