"""Finding people in the registry by what a clerk types: part of a name or of a phone number, with the filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contacts.directory import ContactFilter
from contacts.model import Contact, ContactRoute
from contacts.phone import mask_phone
from contacts.store import RedisRegistry

#: at least this many digits make a query a phone number rather than part of a name
PHONE_QUERY_DIGITS = 3
_TRANSLATE = str.maketrans("０１２３４５６７８９＋－（）　", "0123456789+-() ")
_PHONE_LIKE = re.compile(r"^[\d\s+\-()]+$")


@dataclass(frozen=True, slots=True)
class ContactQuery:
    """What to look for: `text` (part of a name, an id, or digits of a phone) and the listing filters.

    `masked`: match phone digits only against what a viewer is shown (138****8000), so a search cannot tell a
    viewer whose number a full number is.
    """

    text: str = ""
    filters: ContactFilter = field(default_factory=ContactFilter)
    masked: bool = False

    @property
    def digits(self) -> str:
        """The digits of a phone-like query ('' for a name)."""
        text = self.text.translate(_TRANSLATE).strip()
        if not _PHONE_LIKE.match(text):
            return ""
        digits = re.sub(r"\D", "", text)
        return digits if len(digits) >= PHONE_QUERY_DIGITS else ""

    def matches(self, r: ContactRoute) -> bool:
        """True when the contact passes the filters and its name, id or phone holds the text."""
        f = self.filters
        if ((f.region and not r.region.startswith(f.region)) or (f.role and r.role != f.role)
                or (f.channel and f.channel not in r.channels) or (f.active is not None and r.active != f.active)):
            return False
        text = self.text.strip()
        if not text:
            return True
        digits = self.digits
        if not digits:
            return text.casefold() in r.name.casefold() or text == r.id
        if self.masked:
            return any(digits in part for part in mask_phone(r.phone).split("*") if part)
        # a landline typed with its trunk prefix (028…) is stored without it (+8628…)
        return digits in r.phone or (digits.startswith("0") and not digits.startswith("00") and digits[1:] in r.phone)


async def search(registry: RedisRegistry, query: ContactQuery, limit: int) -> tuple[list[Contact], int]:
    """The first `limit` matches by region and name, and how many matched in all (a scan of the routes)."""
    found = [r async for r in registry.scan_routes() if query.matches(r)]
    found.sort(key=lambda r: (r.region, r.name, r.id))
    return await registry.get_many([r.id for r in found[:limit]]), len(found)
