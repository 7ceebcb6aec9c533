"""RedisRegistry: contacts, devices and hazard sites in Redis, every index kept in step by Lua."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from contacts import keys as k
from contacts import lua
from contacts.directory import ContactFilter
from contacts.model import (
    NO_POSITION,
    CheckFlag,
    Contact,
    ContactRoute,
    Device,
    HazardSite,
    Location,
    contact_fields,
    contact_from_hash,
    device_fields,
    device_from_hash,
    site_fields,
    site_from_hash,
)
from contacts.regions import query_prefix

_METRES_PER_DEG_LAT = 111_195.0
#: ids one listing call looks at, at most: a filter few contacts match takes several short calls, never one long
WALK_BUDGET = 5000


class RecordConflict(ValueError):
    """A unique value (a phone, a device token) that belongs to another record."""

    def __init__(self, what: str, owner: str) -> None:
        self.what, self.owner = what, owner
        super().__init__(f"{what} already belongs to {owner}")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did: created, updated, unchanged, conflict or missing; and the record's id."""

    status: str
    id: str


def new_id(kind: str) -> str:
    """A stable record id: a kind letter and 12 hex digits (`c3fa0b19e2c4d`)."""
    return kind + secrets.token_hex(6)


_CONTACT_INDEX, _DEVICE_INDEX, _SITE_INDEX = (json.dumps(t) for t in (k.CONTACT_INDEX, k.DEVICE_INDEX,
                                                                        k.SITE_INDEX))


_CHANNELS: dict[str, tuple[str, ...]] = {}


def _channels(text: str) -> tuple[str, ...]:
    found = _CHANNELS.get(text)
    if found is None:  # a handful of distinct values: parse each once
        found = _CHANNELS[text] = tuple(c for c in text.split(",") if c)
    return found


def _route(rec: str) -> ContactRoute:
    f = rec.split("\x1f")
    return ContactRoute(f[0], f[1], f[2], f[3], f[4], _channels(f[5]), f[6], f[7] == "1", f[8])


def _geo(loc: Location | None, key: str) -> list[str]:
    return [key, repr(loc.lon), repr(loc.lat)] if loc else ["", "", ""]


class RedisRegistry:
    """The registry on redis.asyncio (decode_responses=True); implements ContactDirectory."""

    def __init__(self, redis: aioredis.Redis, *, id_factory: Callable[[str], str] = new_id) -> None:
        # redis-py's annotations do not follow decode_responses; the replies here are str
        self.redis: Any = redis
        self._id = id_factory
        self._upsert = redis.register_script(lua.UPSERT)
        self._delete = redis.register_script(lua.DELETE)
        self._set_fields = redis.register_script(lua.SET_FIELDS)
        self._get_many = redis.register_script(lua.GET_MANY)
        self._routes = redis.register_script(lua.ROUTES)
        self._walk = redis.register_script(lua.WALK)
        self._flag = redis.register_script(lua.FLAG)

    # -- contacts: writes ----------------------------------------------------------------------

    def _contact_args(self, c: Contact, mode: str, now: datetime, keep_supervisor: bool,
                      keep_position: bool = False) -> list[str]:
        fields = contact_fields(c)
        if keep_supervisor:
            del fields["supervisor"]
        if keep_position:  # the script puts the stored position back (c.position for a new contact)
            del fields["position"]
            position = [f"P?{'' if c.position == NO_POSITION else c.position}"]
        else:
            position = [f"P{c.position}"] if c.position != NO_POSITION else []
        recipe = " ".join([f"R{c.region}", f"L{c.role}", *position, *(f"C{ch}" for ch in c.channels),
                           *(["A"] * c.active)])
        return [k.CONTACT_PREFIX, k.CONTACT_IDS, k.CONTACT_PHONES, c.phone, c.id or self._id("c"), mode,
                json.dumps(fields, ensure_ascii=False), recipe, *_geo(c.location, k.CONTACT_GEO),
                now.isoformat(), _CONTACT_INDEX, k.CONTACT_ROUTES]

    async def upsert_contacts(self, contacts: Sequence[Contact], now: datetime,
                              keep_supervisor: Sequence[bool] | None = None, *,
                              keep_position: bool = False) -> list[WriteResult]:
        """Write contacts by phone in one pipeline: the phone's owner is updated, else one is created.

        `keep_supervisor[i]` leaves contact i's stored supervisor as it is; `keep_position` every stored position
        (a new contact takes its own). The first refused write is raised.
        """
        results = await self.try_upsert_contacts(contacts, now, keep_supervisor, keep_position=keep_position)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return [r for r in results if isinstance(r, WriteResult)]

    async def try_upsert_contacts(self, contacts: Sequence[Contact], now: datetime,
                                  keep_supervisor: Sequence[bool] | None = None, *,
                                  keep_position: bool = False) -> list[WriteResult | Exception]:
        """As upsert_contacts, with the store's refusal of each write in its place (each write is atomic).

        A Redis out of memory or read-only refuses some writes and takes the others; a lost connection
        raises, and then which of the batch were written is unknown.
        """
        keep = keep_supervisor or [False] * len(contacts)
        async with self.redis.pipeline(transaction=False) as pipe:
            for c, kept in zip(contacts, keep, strict=True):
                await self._upsert(args=self._contact_args(c, "upsert", now, kept, keep_position), client=pipe)
            replies = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, Exception) else WriteResult(str(r[0]), str(r[1])) for r in replies]

    async def create_contact(self, c: Contact, now: datetime) -> Contact:
        """Add a new contact; RecordConflict when its phone is registered already."""
        status, cid = await self._upsert(args=self._contact_args(c, "create", now, False))
        if status == "conflict":
            raise RecordConflict("phone", cid)
        return await self._must_get(cid)

    async def update_contact(self, c: Contact, now: datetime) -> Contact | None:
        """Replace contact `c.id`; None when it does not exist, RecordConflict when the phone is taken."""
        status, cid = await self._upsert(args=self._contact_args(c, "update", now, False))
        if status == "missing":
            return None
        if status == "conflict":
            raise RecordConflict("phone", cid)
        return await self._must_get(cid)

    async def delete_contact(self, cid: str) -> bool:
        """Remove a contact and every index entry of it (erasure); False when absent."""
        return bool(await self._delete(args=[k.CONTACT_PREFIX, k.CONTACT_IDS, k.CONTACT_PHONES, cid, _CONTACT_INDEX,
                                             k.CONTACT_ROUTES, k.CONTACT_NEEDS_CHECK]))

    async def set_supervisors(self, links: Sequence[tuple[str, str]], now: datetime) -> list[int]:
        """Set supervisor ids: 1 changed, 0 already so, -1 contact gone."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid, sup in links:
                await self._set_fields(args=[k.contact_key(cid), now.isoformat(), "supervisor", sup], client=pipe)
            return [int(r) for r in await pipe.execute()]

    # -- numbers to check (needs_check) ----------------------------------------------------------

    async def flag_needs_check(self, flags: Sequence[tuple[str, CheckFlag]]) -> list[int]:
        """Flag numbers for follow-up, keeping an earlier flag as it is: 1 flagged, 0 already flagged, -1 gone."""
        if not flags:
            return []
        args = [x for cid, flag in flags for x in (k.contact_key(cid), cid, flag.stored())]
        return [int(r) for r in await self._flag(args=[k.CONTACT_NEEDS_CHECK, "set", *args])]

    async def clear_needs_check(self, ids: Sequence[str]) -> list[int]:
        """Take the flag off (the number answered, or a person checked it): 1 cleared, 0 was not flagged, -1 gone."""
        if not ids:
            return []
        args = [x for cid in ids for x in (k.contact_key(cid), cid, "")]
        return [int(r) for r in await self._flag(args=[k.CONTACT_NEEDS_CHECK, "clear", *args])]

    async def needs_check_ids(self) -> set[str]:
        """Every contact whose number needs checking (a small set: the follow-up list)."""
        return set(await self.redis.smembers(k.CONTACT_NEEDS_CHECK))

    async def _must_get(self, cid: str) -> Contact:
        contact = await self.get(cid)
        if contact is None:  # pragma: no cover - removed between the write and the read
            raise LookupError(cid)
        return contact

    # -- contacts: reads -----------------------------------------------------------------------

    async def get(self, cid: str) -> Contact | None:
        """One contact by id."""
        h = await self.redis.hgetall(k.contact_key(cid))
        return contact_from_hash(cid, h) if h else None

    async def get_many(self, ids: Sequence[str]) -> list[Contact]:
        """Contacts by id, in the given order, skipping unknown ids (one script call per 5,000)."""
        out: list[Contact] = []
        for i in range(0, len(ids), 5000):
            raw = await self._get_many(args=[k.CONTACT_PREFIX, *ids[i:i + 5000]])
            out.extend(contact_from_hash(h.pop("@id"), h) for h in json.loads(raw))
        return out

    async def routes(self, ids: Sequence[str]) -> list[ContactRoute]:
        """How to reach each contact, in the given order, skipping unknown ids.

        Read from the routes hash every write keeps in step (one HMGET per 5,000); a contact written
        before that hash existed is read from its own hash instead.
        """
        out: list[ContactRoute] = []
        for i in range(0, len(ids), 5000):
            chunk = list(ids[i:i + 5000])
            found = await self.redis.hmget(k.CONTACT_ROUTES, chunk)
            missing = [cid for cid, rec in zip(chunk, found, strict=True) if rec is None]
            late = {}
            if missing:
                raw = await self._routes(args=[k.CONTACT_PREFIX, *missing])
                late = {r.split("\x1f", 1)[0]: r for r in raw.split("\x1e")} if raw else {}
            for cid, rec in zip(chunk, found, strict=True):
                rec = rec if rec is not None else late.get(cid)
                if rec is not None:
                    out.append(_route(rec))
        return out

    async def ids_by_phones(self, phones: Sequence[str]) -> list[str | None]:
        """The contact id of each E.164 number, None where unknown."""
        if not phones:
            return []
        return list(await self.redis.hmget(k.CONTACT_PHONES, list(phones)))

    async def by_phone(self, e164: str) -> Contact | None:
        """The contact with this E.164 number."""
        cid = await self.redis.hget(k.CONTACT_PHONES, e164)
        return await self.get(cid) if cid else None

    async def count(self) -> int:
        """How many contacts there are, active or not."""
        return int(await self.redis.zcard(k.CONTACT_IDS))

    async def _combine(self, groups: Sequence[Sequence[str]]) -> set[str]:
        """The intersection of the unions of each group of set keys, in one MULTI."""
        if any(not g for g in groups):
            return set()
        if len(groups) == 1:
            return set(await self.redis.sunion(list(groups[0])))
        if all(len(g) == 1 for g in groups):
            return set(await self.redis.sinter([g[0] for g in groups]))
        tmp = [k.tmp_key(secrets.token_hex(8)) if len(g) > 1 else g[0] for g in groups]
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, group in zip(tmp, groups, strict=True):
                if len(group) > 1:
                    pipe.sunionstore(key, list(group))
            pipe.sinter(tmp)
            pipe.delete(*[t for t, g in zip(tmp, groups, strict=True) if len(g) > 1])
            replies = await pipe.execute()
        return set(replies[-2])

    async def ids_in_regions(self, prefixes: Sequence[str], roles: Sequence[str] | None = None,
                             channel: str | None = None, active_only: bool = True) -> set[str]:
        """Ids of contacts under any of the region prefixes, with any of the roles, reachable by channel.

        Prefixes are 2, 4, 6, 9 or 12 digits (InvalidRegionCode otherwise); `roles=None` means any role.
        """
        codes = sorted({query_prefix(p) for p in prefixes})
        groups: list[list[str]]
        if active_only and roles is not None:
            # the region-prefix × role sets of active contacts: the answer is read, not computed
            groups = [sorted({k.contact_active_role_key(p, r) for p in codes for r in roles})]
        else:
            groups = [[k.contact_region_key(p) for p in codes]]
            if roles is not None:
                groups.append(sorted({k.contact_role_key(r) for r in roles}))
            if active_only:
                groups.append([k.CONTACT_ACTIVE])
        if channel:
            groups.append([k.contact_channel_key(channel)])
        return await self._combine(groups)

    async def ids_by_position(self, prefixes: Sequence[str], positions: Sequence[str],
                              active_only: bool = True) -> set[str]:
        """Ids of contacts under any of the region prefixes holding any of the positions (职务).

        "The 主要负责人 of every township and village in the area": the prefix's own division counts (a township's
        head has the township's code). Prefixes are 2, 4, 6, 9 or 12 digits (InvalidRegionCode otherwise).
        """
        codes = sorted({query_prefix(p) for p in prefixes})
        wanted = sorted(set(positions) - {NO_POSITION})
        if not codes or not wanted:
            return set()
        if active_only:  # the region-prefix × position sets of active contacts: one read
            return set(await self.redis.sunion([k.contact_active_position_key(p, pos) for p in codes
                                                for pos in wanted]))
        return await self._combine([[k.contact_region_key(p) for p in codes],
                                    [k.contact_position_key(pos) for pos in wanted]])

    async def by_position(self, prefixes: Sequence[str], positions: Sequence[str]) -> list[Contact]:
        """The active contacts under the prefixes holding the positions, ordered by region code, then name."""
        found = await self.get_many(sorted(await self.ids_by_position(prefixes, positions)))
        return sorted(found, key=lambda c: (c.region, c.name, c.id))

    async def _only_active(self, ids: list[str], active_only: bool) -> set[str]:
        if not active_only or not ids:
            return set(ids)
        flags = await self.redis.smismember(k.CONTACT_ACTIVE, ids)
        return {cid for cid, flag in zip(ids, flags, strict=True) if flag}

    async def ids_near(self, lat: float, lon: float, radius_m: float, active_only: bool = True) -> set[str]:
        """Ids of contacts with a location within `radius_m` metres of the point."""
        found = await self.redis.geosearch(k.CONTACT_GEO, longitude=lon, latitude=lat, radius=radius_m, unit="m")
        return await self._only_active(list(found), active_only)

    async def ids_in_bbox(self, min_lat: float, min_lon: float, max_lat: float, max_lon: float,
                          active_only: bool = True) -> set[str]:
        """Ids of contacts with a location inside the box (edges included)."""
        found = await self._in_box(k.CONTACT_GEO, min_lat, min_lon, max_lat, max_lon)
        return await self._only_active(found, active_only)

    async def _in_box(self, key: str, min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> list[str]:
        if min_lat > max_lat or min_lon > max_lon:
            return []
        lat_c, lon_c = (min_lat + max_lat) / 2, (min_lon + max_lon) / 2
        # a box measured at its widest parallel holds the whole area; coordinates filter it exactly after
        widest = min(abs(min_lat), abs(max_lat)) if min_lat * max_lat > 0 else 0.0
        width_m = (max_lon - min_lon) * _METRES_PER_DEG_LAT * math.cos(math.radians(widest)) + 2
        height_m = (max_lat - min_lat) * _METRES_PER_DEG_LAT + 2
        found = await self.redis.geosearch(key, longitude=lon_c, latitude=lat_c, width=width_m, height=height_m,
                                           unit="m", withcoord=True)
        eps = 1e-6  # GEO stores 52-bit geohashes: coordinates come back within ~0.6 m
        return [str(item[0]) for item in found
                if min_lat - eps <= item[1][1] <= max_lat + eps and min_lon - eps <= item[1][0] <= max_lon + eps]

    async def page(self, cursor: str | None, limit: int,
                   filters: ContactFilter | None = None) -> tuple[list[Contact], str | None]:
        """Contacts in id order after `cursor`, at most `limit`, and the cursor of the next page.

        Reads only (no scratch key): it answers on a read-only replica and on a Redis out of memory.
        """
        f = filters or ContactFilter()
        sets = _page_sets(f)
        start = f"({cursor}" if cursor else "-"
        exclude = " ".join(name for name, on in ((k.CONTACT_ACTIVE, f.active is False),
                                                 (k.CONTACT_NEEDS_CHECK, f.needs_check is False)) if on)
        if not sets and not exclude:
            ids = await self.redis.zrangebylex(k.CONTACT_IDS, start, "+", start=0, num=limit + 1)
        else:
            ids = []
            while len(ids) <= limit:  # each call looks at WALK_BUDGET ids at most and says where it stopped
                status, last, *found = await self._walk(args=[k.CONTACT_IDS, start, limit + 1 - len(ids),
                                                              WALK_BUDGET, exclude, *sets])
                ids += found
                if status == "end" or not last:
                    break
                start = f"({last}"
        more = len(ids) > limit
        ids = ids[:limit]
        return await self.get_many(ids), (ids[-1] if more and ids else None)

    async def scan_routes(self, batch: int = 2000) -> AsyncIterator[ContactRoute]:
        """Every contact once, as its route record (id, phone, role, region, channels, active, name), in no order.

        Read a page at a time from the routes hash (HSCAN, so Redis is never held up), or from the contacts'
        own hashes while some contact was written before that hash existed.
        """
        if await self.redis.hlen(k.CONTACT_ROUTES) < await self.count():
            async for c in self.iter_contacts(batch=batch):
                yield ContactRoute(c.id, c.phone, c.phone_kind, c.role, c.region, c.channels, c.lang, c.active, c.name)
            return
        seen: set[str] = set()  # HSCAN may return a field twice while the hash grows
        async for cid, rec in self.redis.hscan_iter(k.CONTACT_ROUTES, count=batch):
            if cid not in seen:
                seen.add(cid)
                yield _route(rec)

    async def iter_contacts(self, filters: ContactFilter | None = None, batch: int = 1000) -> Any:
        """Every contact matching the filters, in id order, fetched a page at a time."""
        cursor: str | None = None
        while True:
            items, cursor = await self.page(cursor, batch, filters)
            for item in items:
                yield item
            if cursor is None:
                return

    # -- devices -------------------------------------------------------------------------------

    async def put_device(self, d: Device, now: datetime, *, create: bool) -> Device | None:
        """Create (create=True) or replace a device; None when replacing one that does not exist."""
        did = d.id or self._id("d")
        status, rid = await self._upsert(args=[
            k.DEVICE_PREFIX, k.DEVICE_IDS, k.DEVICE_TOKENS, d.token, did, "create" if create else "update",
            json.dumps(device_fields(d), ensure_ascii=False), f"R{d.region} K{d.kind}",
            *_geo(d.location, k.DEVICE_GEO), now.isoformat(), _DEVICE_INDEX])
        if status == "missing":
            return None
        if status == "conflict":
            raise RecordConflict("token", rid)
        return await self.device(rid)

    async def delete_device(self, did: str) -> bool:
        return bool(await self._delete(args=[k.DEVICE_PREFIX, k.DEVICE_IDS, k.DEVICE_TOKENS, did, _DEVICE_INDEX]))

    async def device(self, did: str) -> Device | None:
        h = await self.redis.hgetall(k.device_key(did))
        return device_from_hash(did, h) if h else None

    async def device_by_token(self, token: str) -> Device | None:
        """The device holding this acknowledgment token."""
        did = await self.redis.hget(k.DEVICE_TOKENS, token) if token else None
        return await self.device(did) if did else None

    async def _hashes(self, ids: Iterable[str], key: Callable[[str], str]) -> list[tuple[str, dict[str, str]]]:
        ordered = sorted(ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid in ordered:
                pipe.hgetall(key(rid))
            return [(rid, h) for rid, h in zip(ordered, await pipe.execute(), strict=True) if h]

    async def devices_in_regions(self, prefixes: Sequence[str], kind: str | None = None,
                                 active_only: bool = True) -> list[Device]:
        """Devices under any of the prefixes (all devices when prefixes is None-like empty list: none)."""
        groups = [sorted({k.device_region_key(query_prefix(p)) for p in prefixes})]
        if kind:
            groups.append([k.device_kind_key(kind)])
        ids = await self._combine(groups)
        devices = [device_from_hash(i, h) for i, h in await self._hashes(ids, k.device_key)]
        return [d for d in devices if d.active or not active_only]

    async def all_devices(self) -> list[Device]:
        ids = await self.redis.zrange(k.DEVICE_IDS, 0, -1)
        return [device_from_hash(i, h) for i, h in await self._hashes(ids, k.device_key)]

    # -- hazard sites --------------------------------------------------------------------------

    async def put_site(self, s: HazardSite, now: datetime, *, create: bool) -> HazardSite | None:
        """Create (create=True) or replace a hazard site; None when replacing one that does not exist."""
        recipe = " ".join([f"R{s.region}", *(f"U{c}" for c in s.contacts), *([f"S{s.station}"] if s.station else [])])
        status, rid = await self._upsert(args=[
            k.SITE_PREFIX, k.SITE_IDS, "", "", s.id or self._id("s"), "create" if create else "update",
            json.dumps(site_fields(s), ensure_ascii=False), recipe, *_geo(s.location, k.SITE_GEO),
            now.isoformat(), _SITE_INDEX])
        return None if status == "missing" else await self.site(rid)

    async def delete_site(self, sid: str) -> bool:
        return bool(await self._delete(args=[k.SITE_PREFIX, k.SITE_IDS, "", sid, _SITE_INDEX]))

    async def site(self, sid: str) -> HazardSite | None:
        h = await self.redis.hgetall(k.site_key(sid))
        return site_from_hash(sid, h) if h else None

    async def sites_in_regions(self, prefixes: Sequence[str]) -> list[HazardSite]:
        ids = await self._combine([sorted({k.site_region_key(query_prefix(p)) for p in prefixes})])
        return [site_from_hash(i, h) for i, h in await self._hashes(ids, k.site_key)]

    async def sites_near(self, lat: float, lon: float, radius_m: float) -> list[HazardSite]:
        found = await self.redis.geosearch(k.SITE_GEO, longitude=lon, latitude=lat, radius=radius_m, unit="m")
        return [site_from_hash(i, h) for i, h in await self._hashes(found, k.site_key)]

    async def sites_of_contact(self, cid: str) -> list[HazardSite]:
        """The hazard sites a contact is responsible for."""
        ids = await self.redis.smembers(k.site_contact_key(cid))
        return [site_from_hash(i, h) for i, h in await self._hashes(ids, k.site_key)]

    async def sites_of_station(self, station: str) -> list[HazardSite]:
        """The hazard sites a gauge watches, by the gauge's station code."""
        ids = await self.redis.smembers(k.site_station_key(station))
        return [site_from_hash(i, h) for i, h in await self._hashes(sorted(ids), k.site_key)]

    async def extent(self, batch: int = 2000) -> tuple[float, float, float, float] | None:
        """The box (min_lat, min_lon, max_lat, max_lon) around every located person, device and site; None when
        nothing has a location. Reads every position: for a periodic refresh, not for a request."""
        lats: list[float] = []
        lons: list[float] = []
        for key in (k.CONTACT_GEO, k.DEVICE_GEO, k.SITE_GEO):
            cursor = 0
            while True:
                cursor, members = await self.redis.zscan(key, cursor, count=batch)
                names = [m for m, _ in members]
                if names:
                    found = [p for p in await self.redis.geopos(key, *names) if p is not None]
                    if found:
                        lons += [min(p[0] for p in found), max(p[0] for p in found)]
                        lats += [min(p[1] for p in found), max(p[1] for p in found)]
                if cursor == 0:
                    break
        if not lats:
            return None
        return min(lats), min(lons), max(lats), max(lons)

    async def all_sites(self) -> list[HazardSite]:
        ids = await self.redis.zrange(k.SITE_IDS, 0, -1)
        return [site_from_hash(i, h) for i, h in await self._hashes(ids, k.site_key)]


def _page_sets(f: ContactFilter) -> list[str]:
    """The index sets a listed contact must be in: region-prefix × role of the active ones when that is asked."""
    if f.region and f.role and f.active is True:
        sets = [k.contact_active_role_key(query_prefix(f.region), f.role)]
    else:
        sets = [key for key, on in ((k.contact_region_key(query_prefix(f.region)) if f.region else "", f.region),
                                    (k.contact_role_key(f.role or ""), f.role),
                                    (k.CONTACT_ACTIVE, f.active is True)) if on]
    if f.channel:
        sets.append(k.contact_channel_key(f.channel))
    if f.position:
        sets.append(k.contact_position_key(f.position))
    if f.needs_check:
        sets.append(k.CONTACT_NEEDS_CHECK)
    return sets
