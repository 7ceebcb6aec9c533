"""Who issues and how it is written: `[issuer]` (GB/T 2260 code, GB/T 35965.1 unit code, name, SMS signature,
CAP sender) and `[cap] profile`, read once and checked at start."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from warning.cap_emit import NationalProfile, emit_cap, identifier_parts
from warning.errors import ConfigError
from warning.model import EarlyWarning
from warning.reference import EventType
from warning.settings import Settings

#: `[cap] profile`: plain CAP 1.2, or the national GB/T 35965.1 form
CAP_PROFILES = ("cap12", "gbt35965")
#: an SMS signature: one 【】 pair around the registered name, nothing else (platforms reject a second pair)
_SIGNATURE = re.compile(r"^【[^【】\s]+】$")


@dataclass(frozen=True, slots=True)
class Issuer:
    """The issuing office as messages and CAP documents name it."""

    code: str  #: GB/T 2260 code of the office's division (6 digits)
    unit: str  #: DDDUUUXX of GB/T 35965.1: sector (GB/T 4657), unit, extension (8 digits)
    name: str  #: 三台县应急管理局
    signature: str  #: 【三台县应急管理局】
    sender: str  #: CAP <sender> in the cap12 profile
    cap_profile: str = "cap12"

    @property
    def sender_code(self) -> str:
        """The 14-digit issuing-unit code ZZZZZZDDDUUUXX (GB/T 35965.1 A.1.2)."""
        return self.code + self.unit


def _digits(value: object, n: int) -> bool:
    return isinstance(value, str) and len(value) == n and value.isascii() and value.isdigit()


def load_issuer(settings: Settings) -> Issuer:
    """`[issuer]` and `[cap]`, checked: ConfigError naming the file, the key and the reason."""
    source = settings.sources[-1]
    table = settings.section("issuer")
    code, unit = table.get("code", "000000"), table.get("unit", "00000000")
    if not _digits(code, 6):
        raise ConfigError(source, "issuer.code", f"expected the 6-digit GB/T 2260 code of the office, got {code!r}")
    if not _digits(unit, 8):
        raise ConfigError(source, "issuer.unit", "expected 8 digits DDDUUUXX (GB/T 35965.1: sector code of "
                                                 f'GB/T 4657, unit, extension; e.g. "41600000"), got {unit!r}')
    name, signature = table.get("name", ""), table.get("signature", "")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, "issuer.name", "the office's name is needed: messages name their issuer")
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise ConfigError(source, "issuer.signature", "expected the registered SMS signature in one pair of 【】 and "
                                                      f'nothing else, e.g. "【三台县应急管理局】", got {signature!r}')
    profile = settings.section("cap").get("profile", "cap12")
    if profile not in CAP_PROFILES:
        raise ConfigError(source, "cap.profile", f"expected one of {', '.join(CAP_PROFILES)}, got {profile!r}")
    return Issuer(code=code, unit=unit, name=name.strip(), signature=signature,
                  sender=str(table.get("sender", "") or ""), cap_profile=str(profile))


def national_profile(content: EarlyWarning, issuer: Issuer, event_types: Mapping[str, EventType]) -> NationalProfile:
    """The GB/T 35965.1 fields of a document: for our own warnings the office's name and code; for a relayed one
    its issuer's name and the unit code its identifier starts with; the national code of its event type."""
    parts = identifier_parts(content.identifier)
    code = parts[0] + parts[1] if parts else ""
    info = content.info
    ours = code == issuer.sender_code
    sender = issuer.name if ours else ((info.sender_name if info else None) or content.sender)
    et = event_types.get(content.event_type or "")
    given = next((v for k, v in info.event_codes if k == "eventType"), "") if info else ""
    return NationalProfile(sender=sender, sender_code=code, event_type=et.codes[0] if et and et.codes else given)


def cap_document(content: EarlyWarning, issuer: Issuer, event_types: Mapping[str, EventType]) -> bytes:
    """A warning version as we publish it: CAP 1.2, or the GB/T 35965.1 form (`[cap] profile`)."""
    if issuer.cap_profile == "gbt35965":
        return emit_cap(content, national=national_profile(content, issuer, event_types))
    return emit_cap(content)
