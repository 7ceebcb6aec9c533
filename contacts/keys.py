"""Every Redis key of the registry, built in one place (all under `ew:`)."""

from __future__ import annotations

PREFIX = "ew:"

# contacts: hash per contact, a lexically ordered id set for paging, phone → id, index sets, geo
CONTACT_PREFIX = f"{PREFIX}contact:"
#: hash: contact id → what a fan-out needs of it (phone, kind, role, region, channels, lang, active, name)
CONTACT_ROUTES = f"{PREFIX}contact-routes"
CONTACT_IDS = f"{PREFIX}contacts:ids"
CONTACT_PHONES = f"{PREFIX}contacts:phone"
CONTACT_ACTIVE = f"{PREFIX}idx:contact:active"
#: set: the contacts whose number needs checking (needs_check), kept by the flag calls, not by the index recipe
CONTACT_NEEDS_CHECK = f"{PREFIX}idx:contact:needs_check"
CONTACT_GEO = f"{PREFIX}geo:contact"

DEVICE_PREFIX = f"{PREFIX}device:"
DEVICE_IDS = f"{PREFIX}devices:ids"
DEVICE_TOKENS = f"{PREFIX}devices:token"
DEVICE_GEO = f"{PREFIX}geo:device"

SITE_PREFIX = f"{PREFIX}site:"
SITE_IDS = f"{PREFIX}sites:ids"
SITE_GEO = f"{PREFIX}geo:site"


def contact_key(cid: str) -> str:
    return f"{CONTACT_PREFIX}{cid}"


def contact_region_key(prefix: str) -> str:
    """Everyone whose region code starts with `prefix` (2, 4, 6, 9 or 12 digits)."""
    return f"{PREFIX}idx:contact:region:{prefix}"


def contact_role_key(role: str) -> str:
    return f"{PREFIX}idx:contact:role:{role}"


def contact_active_role_key(prefix: str, role: str) -> str:
    """The active contacts under `prefix` with `role`: "everyone under 510722 with role X" is one read."""
    return f"{PREFIX}idx:contact:active:{prefix}:{role}"


def contact_position_key(position: str) -> str:
    """Everyone holding a position (职务), active or not."""
    return f"{PREFIX}idx:contact:position:{position}"


def contact_active_position_key(prefix: str, position: str) -> str:
    """The active contacts under `prefix` holding `position`: "the 主要负责人 of every township and village" is one
    read (a key apart from the role sets: a position and a role may share a key, as village_liaison_cadre does)."""
    return f"{PREFIX}idx:contact:active-position:{prefix}:{position}"


def contact_channel_key(channel: str) -> str:
    return f"{PREFIX}idx:contact:channel:{channel}"


def device_key(did: str) -> str:
    return f"{DEVICE_PREFIX}{did}"


def device_region_key(prefix: str) -> str:
    return f"{PREFIX}idx:device:region:{prefix}"


def device_kind_key(kind: str) -> str:
    return f"{PREFIX}idx:device:kind:{kind}"


def site_key(sid: str) -> str:
    return f"{SITE_PREFIX}{sid}"


def site_region_key(prefix: str) -> str:
    return f"{PREFIX}idx:site:region:{prefix}"


def site_contact_key(cid: str) -> str:
    """The hazard sites a contact is responsible for."""
    return f"{PREFIX}idx:site:contact:{cid}"


def site_station_key(station: str) -> str:
    """The hazard sites a gauge (by its station code) watches."""
    return f"{PREFIX}idx:site:station:{station}"


def tmp_key(token: str) -> str:
    """A scratch key for one set operation; created and deleted inside one MULTI."""
    return f"{PREFIX}tmp:{token}"


#: Index recipes. A record remembers its index sets as short tokens (a letter and a value, e.g.
#: `R510722100001 Lcadre Pprincipal Csms Cvoice A`), which the Lua scripts expand through these templates; an `R`
#: token stands for every prefix of the region code; with `A` (active) present, the `Q` template gives
#: the region-prefix × role sets of active contacts, and `J` (with a `P` position token, present only when the
#: contact holds one) the region-prefix × position sets. Short enough for Redis to keep the hash compact.
CONTACT_INDEX = {"R": contact_region_key(""), "L": contact_role_key(""), "C": contact_channel_key(""),
                 "A": CONTACT_ACTIVE, "Q": f"{PREFIX}idx:contact:active:", "P": contact_position_key(""),
                 "J": contact_active_position_key("", "")[:-1]}
DEVICE_INDEX = {"R": device_region_key(""), "K": device_kind_key("")}
SITE_INDEX = {"R": site_region_key(""), "U": site_contact_key(""), "S": site_station_key("")}
