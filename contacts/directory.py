"""The ContactDirectory port: what the warning core asks of the registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contacts.model import Contact, ContactRoute, Device, HazardSite


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """Filters of a contact listing; None means any."""

    region: str | None = None  # a query prefix (2, 4, 6, 9 or 12 digits)
    role: str | None = None
    channel: str | None = None
    active: bool | None = None
    position: str | None = None  # a position key (职务)
    needs_check: bool | None = None  # True: only numbers to check; False: none of them


class ContactDirectory(Protocol):
    """Read access to people, devices and hazard sites, by id, phone, region, role and place."""

    async def get(self, cid: str) -> Contact | None: ...

    async def get_many(self, ids: Sequence[str]) -> list[Contact]: ...

    async def routes(self, ids: Sequence[str]) -> list[ContactRoute]: ...

    async def by_phone(self, e164: str) -> Contact | None: ...

    async def ids_in_regions(self, prefixes: Sequence[str], roles: Sequence[str] | None = None,
                             channel: str | None = None, active_only: bool = True) -> set[str]: ...

    async def ids_near(self, lat: float, lon: float, radius_m: float, active_only: bool = True) -> set[str]: ...

    async def ids_in_bbox(self, min_lat: float, min_lon: float, max_lat: float, max_lon: float,
                          active_only: bool = True) -> set[str]: ...

    async def devices_in_regions(self, prefixes: Sequence[str], kind: str | None = None,
                                 active_only: bool = True) -> list[Device]: ...

    async def device(self, did: str) -> Device | None: ...

    async def device_by_token(self, token: str) -> Device | None: ...

    async def sites_in_regions(self, prefixes: Sequence[str]) -> list[HazardSite]: ...

    async def site(self, sid: str) -> HazardSite | None: ...

    async def sites_near(self, lat: float, lon: float, radius_m: float) -> list[HazardSite]: ...

    async def sites_of_station(self, station: str) -> list[HazardSite]: ...

    async def extent(self) -> tuple[float, float, float, float] | None: ...

    async def ids_by_position(self, prefixes: Sequence[str], positions: Sequence[str],
                              active_only: bool = True) -> set[str]: ...

    async def by_position(self, prefixes: Sequence[str], positions: Sequence[str]) -> list[Contact]: ...

    async def needs_check_ids(self) -> set[str]: ...

    async def count(self) -> int: ...

    async def page(self, cursor: str | None, limit: int,
                   filters: ContactFilter | None = None) -> tuple[list[Contact], str | None]: ...
