"""Write CAP 1.2 for a warning (GB/T 35965.1 shape: zh-CN, +08:00 times) and an Atom feed of CAP documents.

`parse_cap(emit_cap(w))` equals `w` on the CAP content: times compare as instants (written in +08:00,
to the second), text is trimmed, numbers keep their exact value. Region codes an area carries without
a matching geocode are written as GB2260 geocodes of 12 digits (GB/T 35965.1's form; our own warnings
carry theirs in that form already, a relayed feed's are written as the feed gave them). Characters XML
1.0 cannot carry are dropped; CR and CRLF become LF (as any XML parser reads them).

The national profile (`[cap] profile = "gbt35965"`, NationalProfile) writes what GB/T 35965.1 writes
differently: `<sender>` holds the issuer's name and `<senderCode>` its 14-digit code, `<eventType>` the
national event code, `<severity>` the colour word (Red, Orange, Yellow, Blue), and the region codes of an
area as one `<geocode>` listing 12-digit codes separated by commas, without valueName. Everything else is
as in CAP 1.2, so our own parser reads it back.

Identifiers (GB/T 35965.1 A.1.1) are `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`, 31 characters: the issuer's region
code, sector, unit and extension codes, the time in Beijing time, and a serial 0-9 for messages of the same
unit in the same second. The national system's own messages often leave out `_N` (29 characters): both are
read; we always write 31.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from warning.model import Area, EarlyWarning, Info, Level, Resource, cap_time, is_region_geocode, region_code

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"
CHINA_TZ = timezone(timedelta(hours=8))
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: the most messages one unit may issue in one second: the identifier's serial N is one digit, 0-9
MAX_SERIAL = 9
#: GB/T 35965.1 severity words: the colour of the level
_COLOUR_SEVERITY = {Level.RED: "Red", Level.ORANGE: "Orange", Level.YELLOW: "Yellow", Level.BLUE: "Blue"}


def _clean(text: str) -> str:
    return _ILLEGAL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _number(value: float) -> str:
    """Plain decimal notation with the shortest digits that read back as the same float."""
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else f"{text}.0"


def twelve_digits(code: str) -> str:
    """A region code in the 12-digit form of GB/T 35965.1 (510722101 → 510722101000)."""
    return code + "0" * (12 - len(code)) if code.isascii() and code.isdigit() and len(code) < 12 else code


@dataclass(frozen=True, slots=True)
class NationalProfile:
    """What the GB/T 35965.1 form writes differently from plain CAP 1.2 for one document."""

    sender: str  #: the issuer's name, in <sender>
    sender_code: str  #: ZZZZZZDDDUUUXX, in <senderCode> ("" to leave it out)
    event_type: str = ""  #: the national event code, in <eventType> ("" when unknown)


class _Builder:
    """Appends CAP elements in schema order; `tz` is the offset times are written in."""

    def __init__(self, tz: tzinfo | None, national: NationalProfile | None = None) -> None:
        self.tz = tz
        self.national = national

    def time(self, when: datetime) -> str:
        return cap_time(when.astimezone(self.tz) if self.tz else when)

    @staticmethod
    def add(parent: Element, name: str, value: str | None) -> None:
        if value is not None and value.strip():
            SubElement(parent, name).text = _clean(value.strip())

    def pairs(self, parent: Element, name: str, pairs: Iterable[tuple[str, str]]) -> None:
        for key, value in pairs:
            el = SubElement(parent, name)
            self.add(el, "valueName", key)
            self.add(el, "value", value)

    def alert(self, w: EarlyWarning) -> Element:
        root = Element("alert", {"xmlns": CAP_NS})
        national = self.national
        head = (("identifier", w.identifier), ("sender", national.sender if national else w.sender),
                ("senderCode", national.sender_code if national else None), ("sent", self.time(w.sent)))
        for name, value in (*head, ("status", w.status.value), ("msgType", w.msg_type.value), ("source", w.source),
                            ("scope", w.scope.value), ("restriction", w.restriction), ("addresses", w.addresses)):
            self.add(root, name, value)
        for code in w.codes:
            self.add(root, "code", code)
        self.add(root, "note", w.note)
        if w.references:
            self.add(root, "references", " ".join(
                f"{r.sender},{r.identifier},{self.time(r.sent)}" for r in w.references))
        self.add(root, "incidents", w.incidents)
        for info in w.infos:
            self.info(SubElement(root, "info"), info)
        return root

    def info(self, el: Element, info: Info) -> None:
        self.add(el, "language", info.language or "zh-CN")
        for category in info.categories:
            self.add(el, "category", category)
        self.add(el, "event", info.event)
        severity = info.severity
        if self.national is not None:
            self.add(el, "eventType", self.national.event_type)
            level = Level.from_severity(info.severity)
            severity = _COLOUR_SEVERITY[level] if level is not None else severity
        for response in info.response_types:
            self.add(el, "responseType", response)
        for name, value in (("urgency", info.urgency), ("severity", severity), ("certainty", info.certainty),
                            ("audience", info.audience)):
            self.add(el, name, value)
        self.pairs(el, "eventCode", [(k, v) for k, v in info.event_codes
                                     if not (self.national is not None and k == "eventType")])
        for name, when in (("effective", info.effective), ("onset", info.onset), ("expires", info.expires)):
            self.add(el, name, self.time(when) if when else None)
        for name, value in (("senderName", info.sender_name), ("headline", info.headline),
                            ("description", info.description), ("instruction", info.instruction),
                            ("web", info.web), ("contact", info.contact)):
            self.add(el, name, value)
        self.pairs(el, "parameter", info.parameters)
        for resource in info.resources:
            self.resource(SubElement(el, "resource"), resource)
        for area in info.areas:
            self.area(SubElement(el, "area"), area)

    def resource(self, el: Element, r: Resource) -> None:
        for name, value in (("resourceDesc", r.desc), ("mimeType", r.mime_type),
                            ("size", str(r.size) if r.size is not None else None), ("uri", r.uri),
                            ("derefUri", r.deref_uri), ("digest", r.digest)):
            self.add(el, name, value)

    def area(self, el: Element, area: Area) -> None:
        self.add(el, "areaDesc", area.desc)
        for ring in area.polygons:
            self.add(el, "polygon", " ".join(f"{_number(lat)},{_number(lon)}" for lat, lon in ring))
        for c in area.circles:
            self.add(el, "circle", f"{_number(c.lat)},{_number(c.lon)} {_number(c.radius_km)}")
        carried = {region_code(v) for k, v in area.geocodes if is_region_geocode(k)}
        extra = [("GB2260", twelve_digits(code)) for code in area.region_codes if code not in carried]
        if self.national is None:
            self.pairs(el, "geocode", (*area.geocodes, *extra))
        else:
            codes = dict.fromkeys(twelve_digits(v.strip()) for k, v in (*area.geocodes, *extra) if is_region_geocode(k))
            self.add(el, "geocode", ",".join(codes))
            self.pairs(el, "geocode", [(k, v) for k, v in area.geocodes if not is_region_geocode(k)])
        if area.altitude is not None:
            self.add(el, "altitude", _number(area.altitude))
        if area.ceiling is not None:
            self.add(el, "ceiling", _number(area.ceiling))


def emit_cap(w: EarlyWarning, *, tz: tzinfo | None = CHINA_TZ, national: NationalProfile | None = None) -> bytes:
    """The warning as a CAP 1.2 document (UTF-8); times in `tz` (+08:00 by default, None keeps their own);
    with `national`, in the GB/T 35965.1 form."""
    root = _Builder(tz, national).alert(w)
    indent(root)
    data: bytes = tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def make_identifier(issuer_code: str, unit_code: str, when: datetime, serial: int) -> str:
    """A GB/T 35965.1 identifier `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N` (31 characters): region code, unit code,
    Beijing time to the second, serial 0-9 among the unit's messages of that second."""
    if not (len(issuer_code) == 6 and issuer_code.isascii() and issuer_code.isdigit()):
        raise ValueError(f"issuer code must be 6 digits (GB/T 2260), got {issuer_code!r}")
    if not (len(unit_code) == 8 and unit_code.isascii() and unit_code.isdigit()):
        raise ValueError(f"unit code must be 8 digits, got {unit_code!r}")
    if when.tzinfo is None:
        raise ValueError("the time needs a zone")
    if not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"serial must be 0-{MAX_SERIAL} (one digit), got {serial}")
    return f"{issuer_code}{unit_code}_{when.astimezone(CHINA_TZ):%Y%m%d%H%M%S}_{serial}"


_IDENTIFIER = re.compile(r"^(\d{6})(\d{8})_(\d{14})(?:_(\d))?$")


def identifier_parts(identifier: str) -> tuple[str, str, str, int | None] | None:
    """(region code, unit code, YYYYMMDDhhmmss, serial) of a GB/T 35965.1 identifier, in the 31-character form
    or the national system's 29-character one without `_N` (serial None); None for any other identifier."""
    match = _IDENTIFIER.match(identifier)
    if match is None:
        return None
    serial = match.group(4)
    return match.group(1), match.group(2), match.group(3), int(serial) if serial is not None else None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One warning in the Atom feed, with the URL its CAP document is served at."""

    warning: EarlyWarning
    cap_url: str
    updated: datetime | None = None


def _atom_time(when: datetime) -> str:
    return when.astimezone(CHINA_TZ).replace(microsecond=0).isoformat()


def _entry(feed: Element, entry: FeedEntry) -> None:
    w, info = entry.warning, entry.warning.info
    el = SubElement(feed, "entry")
    SubElement(el, "id").text = entry.cap_url
    title = (info.headline or info.event) if info else w.identifier
    SubElement(el, "title").text = _clean(title)
    SubElement(el, "updated").text = _atom_time(entry.updated or w.sent)
    SubElement(el, "published").text = _atom_time(w.sent)
    author = SubElement(el, "author")
    SubElement(author, "name").text = _clean(info.sender_name if info and info.sender_name else w.sender)
    SubElement(el, "link", {"rel": "alternate", "type": CAP_MIME, "href": entry.cap_url})
    for term in (w.level, w.event_type, w.msg_type.value, w.status.value):
        if term:
            SubElement(el, "category", {"term": str(term)})
    summary = (info.description or info.headline) if info else None
    if summary:
        SubElement(el, "summary", {"type": "text"}).text = _clean(summary)


def atom_feed(entries: Iterable[FeedEntry], *, feed_url: str, title: str, updated: datetime) -> bytes:
    """An Atom 1.0 feed: one entry per warning, linking to its CAP document (application/cap+xml)."""
    feed = Element("feed", {"xmlns": ATOM_NS})
    SubElement(feed, "id").text = feed_url
    SubElement(feed, "title").text = _clean(title)
    SubElement(feed, "updated").text = _atom_time(updated)
    SubElement(feed, "link", {"rel": "self", "type": "application/atom+xml", "href": feed_url})
    for entry in entries:
        _entry(feed, entry)
    indent(feed)
    data: bytes = tostring(feed, encoding="utf-8", xml_declaration=True)
    return data
