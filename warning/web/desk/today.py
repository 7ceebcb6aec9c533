"""Who is on duty now (值班员 and 带班领导) for the county and each township: the home page's duty panel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from contacts.duty import LOCAL_TZ, DutyEntry
from contacts.model import Contact
from contacts.phone import mask_phone
from contacts.store import RedisRegistry
from warning.web.keys import reference_key, registry_key, services_key, settings_key


@dataclass(frozen=True, slots=True)
class Shift:
    """One shift as a page shows it: times, the officer and the leader, phones masked where they must be."""

    start: str
    end: str
    name: str
    phone: str
    leader: str
    leader_phone: str
    now: bool
    overnight: bool


async def people_of(registry: RedisRegistry, entries: Iterable[DutyEntry]) -> dict[str, Contact]:
    """The registry contacts the entries name by contact id."""
    ids = sorted({e.contact_id for e in entries if e.contact_id})
    return {c.id: c for c in await registry.get_many(ids)} if ids else {}


def shift_of(e: DutyEntry, people: dict[str, Contact], *, masked: bool, at: datetime | None = None) -> Shift:
    """An entry for display: a contact's name and phone when the roster names a contact."""
    person = people.get(e.contact_id)
    phone = e.phone or (person.phone if person else "")
    show = mask_phone if masked else str
    return Shift(start=f"{e.start:%H:%M}", end=f"{e.end:%H:%M}", name=e.name or (person.name if person else ""),
                 phone=show(phone) if phone else "", leader=e.leader,
                 leader_phone=show(e.leader_phone) if e.leader_phone else "",
                 now=at is not None and e.covers(at.astimezone(LOCAL_TZ)), overnight=e.end <= e.start)


def duty_regions(app: web.Application, extra: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(code, name): the county, its townships from the region tree, then any other region the roster names."""
    ref, county = app[reference_key], str(app[settings_key].section("issuer").get("code", ""))
    out = [(county, ref.regions.name(county) or county)] if county else []
    out += [(t.code, t.name) for t in ref.regions.children(county) if len(t.code) == 9] if county else []
    known = {code for code, _ in out}
    out += [(code, ref.regions.name(code) or code) for code in sorted(set(extra) - known)]
    return out


async def on_duty_now(app: web.Application, *, masked: bool) -> dict[str, Any]:
    """The shifts covering this moment by region (county first); regions with nobody on duty say so."""
    services = app[services_key]
    now = services.clock.now()
    today = now.astimezone(LOCAL_TZ).date()
    entries = [e for e in await services.duty.between(today - timedelta(days=1), today)
               if e.covers(now.astimezone(LOCAL_TZ))]
    people = await people_of(app[registry_key], entries)
    by_region: dict[str, list[Shift]] = {}
    for e in entries:
        by_region.setdefault(e.region, []).append(shift_of(e, people, masked=masked, at=now))
    regions = [{"code": code, "name": name, "shifts": by_region.get(code, [])}
               for code, name in duty_regions(app, list(by_region))]
    return {"at": now.isoformat(), "regions": regions, "county": regions[0] if regions else None,
            "townships": regions[1:], "staffed": sum(1 for r in regions[1:] if r["shifts"])}
