"""The warning as a value: CAP 1.2 alert, info, area and resource, with our level and event type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """The four warning colours, lowest first (blue IV … red I)."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        """Red 4, orange 3, yellow 2, blue 1: compare levels with this."""
        return _RANK[self]

    @property
    def zh(self) -> str:
        """The Chinese colour word: 红色, 橙色, 黄色, 蓝色."""
        return _ZH[self]

    @property
    def roman(self) -> str:
        """The grade: red I, orange II, yellow III, blue IV."""
        return _ROMAN[self]

    @property
    def cap_severity(self) -> str:
        """The CAP severity word: red Extreme, orange Severe, yellow Moderate, blue Minor."""
        return _SEVERITY[self]

    @classmethod
    def from_severity(cls, text: str | None) -> Level | None:
        """A level from CAP severity words or colour words (Red, 红色, 红); Unknown or anything else → None."""
        if not text:
            return None
        return _FROM_WORD.get(text.strip().casefold())


_RANK = {Level.BLUE: 1, Level.YELLOW: 2, Level.ORANGE: 3, Level.RED: 4}
_ZH = {Level.BLUE: "蓝色", Level.YELLOW: "黄色", Level.ORANGE: "橙色", Level.RED: "红色"}
_ROMAN = {Level.BLUE: "IV", Level.YELLOW: "III", Level.ORANGE: "II", Level.RED: "I"}
_SEVERITY = {Level.BLUE: "Minor", Level.YELLOW: "Moderate", Level.ORANGE: "Severe", Level.RED: "Extreme"}
_FROM_WORD: dict[str, Level] = {}
for _level in Level:
    for _word in (_level.value, _SEVERITY[_level], _ZH[_level], _ZH[_level][0], _ZH[_level] + "预警"):
        _FROM_WORD[_word.casefold()] = _level

#: CAP severity words (CAP 1.2 §3.2.2)
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
              "CBRNE", "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")


class Status(StrEnum):
    """CAP <status>: Actual, Exercise (演练), System, Test, Draft."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    """CAP <msgType>."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(StrEnum):
    """CAP <scope>."""

    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class WarningState(StrEnum):
    """Where a warning is in its lifecycle."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    DISPATCHING = "dispatching"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    #: the second person (or the drafter, withdrawing it) refused a new warning waiting for approval: closed
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Circle:
    """A CAP circle: centre (WGS 84) and radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Area:
    """A CAP area; polygons are rings of (lat, lon), closed (first point == last)."""

    desc: str
    polygons: tuple[tuple[Point, ...], ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()
    region_codes: tuple[str, ...] = ()
    altitude: float | None = None
    ceiling: float | None = None

    @classmethod
    def of_regions(cls, desc: str, codes: tuple[str, ...], **more: Any) -> Area:
        """An area for region codes, carrying them as GB2260 geocodes too (so that CAP output keeps them), in the
        12-digit form of GB/T 35965.1 (510722101 → 510722101000)."""
        return cls(desc=desc, geocodes=tuple(("GB2260", c + "0" * (12 - len(c))) for c in codes),
                   region_codes=tuple(codes), **more)


@dataclass(frozen=True, slots=True)
class Resource:
    """A CAP resource: a file or link that goes with the info."""

    desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Info:
    """A CAP info block: one language's text of the warning, with its areas."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: tuple[str, ...] = ()
    audience: str | None = None
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    areas: tuple[Area, ...] = ()
    resources: tuple[Resource, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """One earlier message named in <references>: sender, identifier, sent."""

    sender: str
    identifier: str
    sent: datetime

    def to_cap(self) -> str:
        """The `sender,identifier,sent` triple as CAP writes it."""
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    """A warning: the CAP alert plus our level and event type."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    infos: tuple[Info, ...]
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[Reference, ...] = ()
    incidents: str | None = None
    level: Level | None = None
    event_type: str | None = None

    def __post_init__(self) -> None:
        if self.sent.utcoffset() is None:
            raise ValueError("EarlyWarning.sent needs a time zone")

    @property
    def info(self) -> Info | None:
        """The info block we act on: zh-CN first, then any zh*, then the first; None when there is none."""
        return choose_info(self.infos)

    @property
    def areas(self) -> tuple[Area, ...]:
        """The chosen info's areas."""
        info = self.info
        return info.areas if info else ()

    @property
    def region_codes(self) -> tuple[str, ...]:
        """Every region code of every area of every info, first occurrence first."""
        seen: dict[str, None] = {}
        for info in self.infos:
            for area in info.areas:
                seen.update(dict.fromkeys(area.region_codes))
        return tuple(seen)

    @property
    def expires(self) -> datetime | None:
        """The chosen info's expiry."""
        info = self.info
        return info.expires if info else None

    @property
    def is_exercise(self) -> bool:
        """A drill (演练)."""
        return self.status is Status.EXERCISE

    def with_(self, **changes: Any) -> EarlyWarning:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times ISO 8601 with their offset); `from_json` gives back an equal warning."""
        return _encode(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EarlyWarning:
        """The inverse of `to_json`."""
        return _decode_warning(data)


def choose_info(infos: tuple[Info, ...]) -> Info | None:
    """zh-CN first, then any zh language, then the first block."""
    for info in infos:
        if info.language.casefold() == "zh-cn":
            return info
    for info in infos:
        if info.language.casefold().startswith("zh"):
            return info
    return infos[0] if infos else None


#: geocode names whose values are GB/T 2260 administrative division codes (compared without spaces, any case):
#: GB2260 (what feeds in the wild and our own output write), GB/T 2260, ADCODE, 行政区划代码, areaCode
REGION_GEOCODES = frozenset({"gb2260", "gb/t2260", "adcode", "行政区划代码", "areacode"})


def is_region_geocode(name: str) -> bool:
    """Whether a geocode's valueName says it carries a region code (GB2260, GB/T 2260, ADCODE, 行政区划代码,
    areaCode)."""
    return "".join(name.split()).casefold() in REGION_GEOCODES


def region_code(value: str) -> str | None:
    """A GB/T 2260 code of 6, 9 or 12 digits, zero-padded levels removed; None when it is not one."""
    code = value.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (6, 9, 12):
        return None
    if len(code) == 12 and code.endswith("000"):
        code = code[:9]
    if len(code) == 9 and code.endswith("000"):
        code = code[:6]
    return code


def cap_time(when: datetime) -> str:
    """A CAP dateTime `YYYY-MM-DDThh:mm:ss+hh:mm` in the value's own offset; UTC is `-00:00` as CAP requires."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("CAP times need a time zone")
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def _encode(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _pairs(items: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in items)


def _decode_area(d: dict[str, Any]) -> Area:
    return Area(
        desc=d["desc"],
        polygons=tuple(tuple((float(lat), float(lon)) for lat, lon in ring) for ring in d.get("polygons", [])),
        circles=tuple(Circle(**c) for c in d.get("circles", [])),
        geocodes=_pairs(d.get("geocodes", [])),
        region_codes=tuple(d.get("region_codes", [])),
        altitude=d.get("altitude"),
        ceiling=d.get("ceiling"),
    )


def _decode_info(d: dict[str, Any]) -> Info:
    plain = {k: d.get(k) for k in ("audience", "sender_name", "headline", "description", "instruction",
                                   "web", "contact")}
    return Info(
        language=d["language"], categories=tuple(d["categories"]), event=d["event"], urgency=d["urgency"],
        severity=d["severity"], certainty=d["certainty"], response_types=tuple(d.get("response_types", [])),
        event_codes=_pairs(d.get("event_codes", [])), effective=_time(d.get("effective")),
        onset=_time(d.get("onset")), expires=_time(d.get("expires")), parameters=_pairs(d.get("parameters", [])),
        areas=tuple(_decode_area(a) for a in d.get("areas", [])),
        resources=tuple(Resource(**r) for r in d.get("resources", [])), **plain,
    )


def _decode_warning(d: dict[str, Any]) -> EarlyWarning:
    sent = datetime.fromisoformat(d["sent"])
    return EarlyWarning(
        identifier=d["identifier"], sender=d["sender"], sent=sent, status=Status(d["status"]),
        msg_type=MsgType(d["msg_type"]), scope=Scope(d["scope"]),
        infos=tuple(_decode_info(i) for i in d.get("infos", [])),
        source=d.get("source"), restriction=d.get("restriction"), addresses=d.get("addresses"),
        codes=tuple(d.get("codes", [])), note=d.get("note"),
        references=tuple(Reference(r["sender"], r["identifier"], datetime.fromisoformat(r["sent"]))
                         for r in d.get("references", [])),
        incidents=d.get("incidents"),
        level=Level(d["level"]) if d.get("level") else None, event_type=d.get("event_type"),
    )
