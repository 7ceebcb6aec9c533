"""The registry's value types: contacts, devices, hazard sites, regions and roles."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from contacts.addresses import mask_credentials

#: channel kinds a person can be reached by, in the registry's vocabulary
PERSON_CHANNELS = ("sms", "voice")
PHONE_KINDS = ("mobile", "landline")
DEVICE_KINDS = ("escreen", "broadcast")
SITE_KINDS = ("reservoir", "landslide", "debris_flow", "collapse", "river_station", "flood_point", "other")
#: a rainfall window of a threshold: whole hours (`1h`, `3h`) or minutes (`30min`)
RAIN_WINDOW = re.compile(r"^([1-9][0-9]{0,3})(h|min)$")
#: the longest rainfall window a threshold may use (readings are kept at least this long)
MAX_RAIN_WINDOW_S = 24 * 3600
DEFAULT_CHANNELS = {"mobile": ("sms", "voice"), "landline": ("voice",)}
#: the position (职务) of someone with no place in the 叫应 chain; stored as an empty field
NO_POSITION = "none"
#: why a number needs checking (needs_check): no answer to a registry check, a send that failed for good, a person
CHECK_REASONS = ("no_reply", "failed", "manual")


@dataclass(frozen=True, slots=True)
class Location:
    """A WGS-84 point."""

    lat: float
    lon: float

    def as_dict(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}


@dataclass(frozen=True, slots=True)
class CheckFlag:
    """A number flagged for follow-up (needs_check): why, since when (ISO), and what raised it (a check or a send)."""

    reason: str  # one of CHECK_REASONS
    at: str
    detail: str = ""

    def stored(self) -> str:
        """The flag as its one registry field: `reason|at|detail`."""
        return f"{self.reason}|{self.at}|{self.detail}"

    @classmethod
    def parse(cls, raw: str | None) -> CheckFlag | None:
        """The flag from its field; None when the field is empty (not flagged)."""
        if not raw:
            return None
        reason, _, rest = raw.partition("|")
        at, _, detail = rest.partition("|")
        return cls(reason, at, detail)

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "at": self.at, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Contact:
    """A person a warning must reach: who, where, in which role, by which channels in order."""

    id: str
    name: str
    phone: str  # E.164
    phone_kind: str  # mobile | landline
    role: str
    region: str  # administrative division code, 6, 9 or 12 digits
    location: Location | None = None
    channels: tuple[str, ...] = ("sms", "voice")
    lang: str = "zh-CN"
    supervisor: str | None = None  # a contact id
    active: bool = True
    created: str = ""
    updated: str = ""
    #: what the person answers for in the 叫应 chain (职务): a key of [positions], or NO_POSITION
    position: str = NO_POSITION
    #: set when the number needs checking; written only by the registry's flag calls, never by an upsert
    needs_check: CheckFlag | None = None

    def with_changes(self, **changes: Any) -> Contact:
        """A copy with some fields replaced."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Device:
    """An endpoint that shows or plays warnings: an LED e-screen or a village loudspeaker."""

    id: str
    name: str
    kind: str  # escreen | broadcast
    region: str
    address: str  # http(s) URL or mqtt topic
    location: Location | None = None
    token: str = field(default="", repr=False)  # per-device acknowledgment secret
    active: bool = True
    created: str = ""
    updated: str = ""


def rain_window_s(window: str) -> int:
    """Seconds of a rainfall window (`1h` → 3600, `30min` → 1800); ValueError for anything else."""
    match = RAIN_WINDOW.match(window)
    if not match:
        raise ValueError(window)
    return int(match.group(1)) * (3600 if match.group(2) == "h" else 60)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A gauge's thresholds at a hazard site: water levels (警戒水位, 保证水位) in metres, and rainfall in mm within
    a window for 准备转移 (prepare to move) and 立即转移 (move now), e.g. `(("1h", 30.0), ("3h", 50.0))`."""

    warning_level_m: float | None = None
    guarantee_level_m: float | None = None
    rain_prepare_mm: tuple[tuple[str, float], ...] = ()
    rain_evacuate_mm: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"warning_level_m": self.warning_level_m, "guarantee_level_m": self.guarantee_level_m,
                "rain_prepare_mm": dict(self.rain_prepare_mm), "rain_evacuate_mm": dict(self.rain_evacuate_mm)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Thresholds:
        def num(v: Any) -> float | None:
            return float(v) if v is not None else None

        return cls(warning_level_m=num(d.get("warning_level_m")), guarantee_level_m=num(d.get("guarantee_level_m")),
                   rain_prepare_mm=tuple((w, float(v)) for w, v in (d.get("rain_prepare_mm") or {}).items()),
                   rain_evacuate_mm=tuple((w, float(v)) for w, v in (d.get("rain_evacuate_mm") or {}).items()))


@dataclass(frozen=True, slots=True)
class HazardSite:
    """A reservoir, landslide point or river station and the people responsible for it; a site watched by a gauge
    carries the gauge's `station` code, its `thresholds`, and the villages `downstream` a crossing warns."""

    id: str
    name: str
    kind: str
    region: str
    location: Location | None
    contacts: tuple[str, ...] = ()
    created: str = ""
    updated: str = ""
    station: str = ""
    thresholds: Thresholds | None = None
    downstream: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Region:
    """One administrative division: code, name and the code of its parent."""

    code: str
    name: str
    parent: str | None


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """A contact role as reference data: its key, Chinese and English labels, accepted aliases."""

    key: str
    label_zh: str
    label_en: str
    aliases: tuple[str, ...] = ()


# -- flat string forms, as stored in Redis hashes ------------------------------------------------

def _loc_fields(loc: Location | None) -> dict[str, str]:
    return {"lat": repr(loc.lat), "lon": repr(loc.lon)} if loc else {"lat": "", "lon": ""}


def _loc(h: Mapping[str, str]) -> Location | None:
    return Location(float(h["lat"]), float(h["lon"])) if h.get("lat") and h.get("lon") else None


def contact_fields(c: Contact) -> dict[str, str]:
    """A contact as the flat string fields of its hash (timestamps excluded)."""
    return {"name": c.name, "phone": c.phone, "phone_kind": c.phone_kind, "role": c.role, "region": c.region,
            **_loc_fields(c.location), "channels": ",".join(c.channels), "lang": c.lang,
            "supervisor": c.supervisor or "", "active": "1" if c.active else "0",
            "position": "" if c.position == NO_POSITION else c.position}


class ContactRoute(NamedTuple):
    """What a fan-out needs of a contact: how to reach them, and what to count them under."""

    id: str
    phone: str
    phone_kind: str
    role: str
    region: str
    channels: tuple[str, ...]
    lang: str
    active: bool
    name: str


def contact_from_hash(cid: str, h: Mapping[str, str]) -> Contact:
    """Rebuild a contact from its hash."""
    return Contact(id=cid, name=h["name"], phone=h["phone"], phone_kind=h.get("phone_kind", "mobile"),
                   role=h["role"], region=h["region"], location=_loc(h),
                   channels=tuple(c for c in h.get("channels", "").split(",") if c), lang=h.get("lang", "zh-CN"),
                   supervisor=h.get("supervisor") or None, active=h.get("active", "1") == "1",
                   created=h.get("created", ""), updated=h.get("updated", ""),
                   position=h.get("position") or NO_POSITION, needs_check=CheckFlag.parse(h.get("needs_check")))


def device_fields(d: Device) -> dict[str, str]:
    """A device as the flat string fields of its hash."""
    return {"name": d.name, "kind": d.kind, "region": d.region, "address": d.address, **_loc_fields(d.location),
            "token": d.token, "active": "1" if d.active else "0"}


def device_from_hash(did: str, h: Mapping[str, str]) -> Device:
    """Rebuild a device from its hash."""
    return Device(id=did, name=h["name"], kind=h["kind"], region=h["region"], address=h["address"],
                  location=_loc(h), token=h.get("token", ""), active=h.get("active", "1") == "1",
                  created=h.get("created", ""), updated=h.get("updated", ""))


def site_fields(s: HazardSite) -> dict[str, str]:
    """A hazard site as the flat string fields of its hash."""
    return {"name": s.name, "kind": s.kind, "region": s.region, **_loc_fields(s.location),
            "contacts": json.dumps(list(s.contacts)), "station": s.station,
            "thresholds": json.dumps(s.thresholds.as_dict()) if s.thresholds else "",
            "downstream": json.dumps(list(s.downstream))}


def site_from_hash(sid: str, h: Mapping[str, str]) -> HazardSite:
    """Rebuild a hazard site from its hash."""
    return HazardSite(id=sid, name=h["name"], kind=h["kind"], region=h["region"], location=_loc(h),
                      contacts=tuple(json.loads(h.get("contacts") or "[]")),
                      created=h.get("created", ""), updated=h.get("updated", ""), station=h.get("station", ""),
                      thresholds=Thresholds.from_dict(json.loads(h["thresholds"])) if h.get("thresholds") else None,
                      downstream=tuple(json.loads(h.get("downstream") or "[]")))


# -- JSON forms, as the API shows them -----------------------------------------------------------

def contact_json(c: Contact, *, phone: str | None = None) -> dict[str, Any]:
    """A contact as the API shows it; `phone` replaces the number (the masked form for viewers)."""
    return {"id": c.id, "name": c.name, "phone": c.phone if phone is None else phone, "phone_kind": c.phone_kind,
            "role": c.role, "region": c.region, "location": c.location.as_dict() if c.location else None,
            "channels": list(c.channels), "lang": c.lang, "supervisor": c.supervisor, "active": c.active,
            "position": c.position, "needs_check": c.needs_check is not None,
            "needs_check_reason": c.needs_check.as_dict() if c.needs_check else None,
            "created": c.created, "updated": c.updated}


def device_json(d: Device, *, show_token: bool) -> dict[str, Any]:
    """A device as the API shows it; the token, and credentials in its address, only to those allowed to see them."""
    address = d.address if show_token else mask_credentials(d.address)
    out: dict[str, Any] = {"id": d.id, "name": d.name, "kind": d.kind, "region": d.region, "address": address,
                           "location": d.location.as_dict() if d.location else None, "active": d.active,
                           "created": d.created, "updated": d.updated}
    if show_token:
        out["token"] = d.token
    return out


def site_json(s: HazardSite) -> dict[str, Any]:
    """A hazard site as the API shows it."""
    return {"id": s.id, "name": s.name, "kind": s.kind, "region": s.region,
            "location": s.location.as_dict() if s.location else None, "contacts": list(s.contacts),
            "station": s.station or None, "thresholds": s.thresholds.as_dict() if s.thresholds else None,
            "downstream": list(s.downstream), "created": s.created, "updated": s.updated}
