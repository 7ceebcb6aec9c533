"""From a warning to its recipients: areas (region codes, polygons, circles) × roles × hazard sites × policy."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from shapely.geometry import Point, Polygon
from shapely.prepared import prep

from contacts.directory import ContactDirectory
from contacts.model import Contact, ContactRoute, Device
from warning.model import Area
from warning.policy import LevelPolicy
from warning.record import WarningRecord

FETCH_CHUNK = 2000


class Recipient(NamedTuple):
    """One (recipient, channel kind) pair a delivery is made for (a tuple: a county makes 100,000s of them)."""

    id: str  #: contact or device id
    kind: str  #: channel kind: sms | voice | escreen | broadcast
    address: str  #: E.164 phone, or the device's URL / topic
    lang: str
    role: str
    region: str
    name: str
    device: bool = False
    #: the person's number is flagged needs_check: sent to all the same, counted apart in coverage
    needs_check: bool = False

    def delivery_id(self, warning_id: str, version: int) -> str:
        """Deterministic: planning the same version twice names the same deliveries."""
        raw = f"{warning_id}|{version}|{self.id}|{self.kind}".encode()
        return hashlib.blake2b(raw, digest_size=10).hexdigest()


def person_kinds(contact: Contact | ContactRoute, policy: LevelPolicy) -> tuple[str, ...]:
    """The kinds a person gets: the policy's for their role, limited to what they can take.

    A person is never dropped: when none of the policy's kinds suits them (a landline at a level
    that only sends SMS), they get their own first channel.
    """
    wanted = policy.channels_for(contact.role)
    usable = tuple(k for k in wanted if k in contact.channels and not (k == "sms" and contact.phone_kind != "mobile"))
    if usable:
        return usable
    return contact.channels[:1]


def _shapes(areas: Iterable[Area]) -> tuple[list[Polygon], list[tuple[float, float, float]]]:
    polygons = [Polygon([(lon, lat) for lat, lon in ring]) for area in areas for ring in area.polygons if len(ring) >= 4]
    circles = [(c.lat, c.lon, c.radius_km) for area in areas for c in area.circles]
    return polygons, circles


def _bbox(poly: Polygon) -> tuple[float, float, float, float]:
    min_lon, min_lat, max_lon, max_lat = poly.bounds
    return min_lat, min_lon, max_lat, max_lon


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 6371.0088 * 2 * math.asin(math.sqrt(a))


class Targeting:
    """Resolves a warning version's audience against the registry."""

    def __init__(self, directory: ContactDirectory, *, scope: Sequence[str] = ()) -> None:
        self.directory = directory
        #: region prefixes this office serves: where devices are looked for when a warning has only shapes
        self.scope = list(scope)

    async def contact_ids(self, record: WarningRecord) -> set[str]:
        """Everyone in the warning's areas (prefix, polygon, circle) and responsible for its hazard sites."""
        content = record.content
        prefixes = list(content.region_codes)
        ids: set[str] = set()
        if prefixes:
            ids |= await self.directory.ids_in_regions(prefixes, roles=list(record.roles) if record.roles else None)
        polygons, circles = _shapes(content.areas)
        geo: set[str] = set()
        for poly in polygons:
            geo |= await self._in_polygon(poly)
        for lat, lon, radius_km in circles:
            geo |= await self.directory.ids_near(lat, lon, radius_km * 1000)
        sites = [s for s in [await self.directory.site(sid) for sid in record.sites] if s is not None]
        if prefixes:
            sites += await self.directory.sites_in_regions(prefixes)
        for site in sites:
            geo |= set(site.contacts)
        if geo and record.roles:
            # geometric and site matches ignore region prefixes but still honour the role filter
            geo = {c.id for c in await self._fetch(geo) if c.role in record.roles}
        return ids | geo

    async def _in_polygon(self, poly: Polygon) -> set[str]:
        candidates = await self.directory.ids_in_bbox(*_bbox(poly))
        shape = prep(poly)
        return {c.id for c in await self._fetch(candidates)
                if c.location is not None and shape.covers(Point(c.location.lon, c.location.lat))}

    async def _fetch(self, ids: Iterable[str]) -> list[Contact]:
        out: list[Contact] = []
        batch = list(ids)
        for i in range(0, len(batch), FETCH_CHUNK):
            out.extend(await self.directory.get_many(batch[i:i + FETCH_CHUNK]))
        return out

    async def people(self, record: WarningRecord, policy: LevelPolicy, *, only: set[str] | None = None
                     ) -> list[Recipient]:
        """One Recipient per (person, channel kind); `only` restricts to given contact ids (cancellations)."""
        ids = await self.contact_ids(record) if only is None else only
        flagged = await self.directory.needs_check_ids()  # the follow-up list: a few, read once
        out = []
        kinds_of: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = {}
        for contact in await self.directory.routes(sorted(ids)):
            if not contact.active:
                continue
            shape = (contact.role, contact.phone_kind, contact.channels)
            kinds = kinds_of.get(shape)
            if kinds is None:
                kinds = kinds_of[shape] = person_kinds(contact, policy)
            for kind in kinds:
                out.append(Recipient(contact.id, kind, contact.phone, contact.lang, contact.role, contact.region,
                                     contact.name, needs_check=contact.id in flagged))
        return out

    async def devices(self, record: WarningRecord, kinds: Sequence[str]) -> list[Recipient]:
        """The e-screens and loudspeakers of the area, for the kinds the policy names."""
        if not kinds:
            return []
        prefixes = list(record.content.region_codes)
        found: dict[str, Device] = {}
        for kind in kinds:
            if prefixes:
                for dev in await self.directory.devices_in_regions(prefixes, kind=kind):
                    found[dev.id] = dev
        polygons, circles = _shapes(record.content.areas)
        if (polygons or circles) and self.scope:
            for dev in await self.directory.devices_in_regions(self.scope, kind=None):
                if dev.kind in kinds and dev.location is not None and self._inside(dev, polygons, circles):
                    found[dev.id] = dev
        return [Recipient(d.id, d.kind, d.address, "zh-CN", "", d.region, d.name, device=True)
                for d in found.values() if d.active]

    @staticmethod
    def _inside(dev: Device, polygons: list[Polygon], circles: list[tuple[float, float, float]]) -> bool:
        assert dev.location is not None
        pt = Point(dev.location.lon, dev.location.lat)
        return any(p.covers(pt) for p in polygons) or any(
            _haversine_km(lat, lon, dev.location.lat, dev.location.lon) <= r for lat, lon, r in circles)
