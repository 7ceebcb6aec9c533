"""Reference data from config: the warning levels and the event types, and matching a CAP info to a type."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from warning.errors import ConfigError
from warning.model import CATEGORIES, Info, Level
from warning.settings import DEFAULT_FILE, read_toml

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """How a level is named and shown: 红色 / 特别严重 / I / Extreme / #E60012."""

    level: Level
    name_zh: str
    name_en: str
    grade_zh: str
    roman: str
    cap_severity: str
    colour: str


@dataclass(frozen=True, slots=True)
class EventType:
    """One kind of hazard: names, CAP event and category, and the levels its signal has."""

    key: str
    name_zh: str
    name_en: str
    cap_event: str
    category: str
    levels: tuple[Level, ...]
    aliases: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    #: a short defence guide (防御指南): what the draft form proposes as the instruction
    guide_zh: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the type is known by: Chinese, English, CAP event and aliases."""
        return (self.name_zh, self.name_en, self.cap_event, *self.aliases)

    def allows(self, level: Level) -> bool:
        """Whether this signal exists at that level (冰雹 has no blue or yellow)."""
        return level in self.levels


def _str(entry: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError("<config>", f"{where}.{key}", "expected a non-empty string")
    return value.strip()


def _strs(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError("<config>", f"{where}.{key}", "expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def load_levels(section: Mapping[str, Any]) -> dict[Level, LevelInfo]:
    """The `[levels.<level>]` tables; each of blue, yellow, orange, red must be there."""
    out: dict[Level, LevelInfo] = {}
    for key, entry in section.items():
        where = f"levels.{key}"
        if key not in Level.__members__.values() or not isinstance(entry, Mapping):
            raise ConfigError("<config>", where, f"unknown level (known: {', '.join(Level)})")
        level = Level(key)
        colour = _str(entry, "colour", where)
        if not _HEX.match(colour):
            raise ConfigError("<config>", f"{where}.colour", f"expected #RRGGBB, got {colour!r}")
        severity = _str(entry, "cap_severity", where)
        if severity != level.cap_severity:
            raise ConfigError("<config>", f"{where}.cap_severity", f"{level} is {level.cap_severity} in CAP")
        out[level] = LevelInfo(level, _str(entry, "name_zh", where), _str(entry, "name_en", where),
                               _str(entry, "grade_zh", where), _str(entry, "roman", where), severity, colour)
    missing = [lv.value for lv in Level if lv not in out]
    if missing:
        raise ConfigError("<config>", "levels", f"missing {', '.join(missing)}")
    return out


def load_event_types(section: Mapping[str, Any]) -> dict[str, EventType]:
    """The `[event_types.<key>]` tables, checked: names, a CAP category, and at least one known level."""
    out: dict[str, EventType] = {}
    for key, entry in section.items():
        where = f"event_types.{key}"
        if not isinstance(entry, Mapping):
            raise ConfigError("<config>", where, "expected a table")
        category = _str(entry, "category", where)
        if category not in CATEGORIES:
            raise ConfigError("<config>", f"{where}.category", f"{category!r} is not a CAP category")
        levels = _strs(entry, "levels", where)
        bad = [lv for lv in levels if lv not in Level.__members__.values()]
        if bad or not levels:
            raise ConfigError("<config>", f"{where}.levels", f"expected some of {', '.join(Level)}, got {levels}")
        out[key] = EventType(
            key=key, name_zh=_str(entry, "name_zh", where), name_en=_str(entry, "name_en", where),
            cap_event=_str(entry, "cap_event", where), category=category,
            levels=tuple(sorted({Level(lv) for lv in levels}, key=lambda lv: lv.rank)),
            aliases=_strs(entry, "aliases", where), codes=_strs(entry, "codes", where),
            guide_zh=_str(entry, "guide_zh", where, required=False),
        )
    _check_names_unique(out)
    return out


def _check_names_unique(types: Mapping[str, EventType]) -> None:
    """A name or code belongs to one type: otherwise which type a feed's info gets would depend on order."""
    owner: dict[str, str] = {}
    for key, t in types.items():
        for name in {_fold(n) for n in (key, *t.names, *t.codes)}:
            other = owner.setdefault(name, key)
            if other != key:
                raise ConfigError("<config>", f"event_types.{key}",
                                  f"{name!r} is already a name or code of event_types.{other}")


@cache
def default_config() -> Mapping[str, Any]:
    """config/default.toml, read once (the reference data when no settings are given)."""
    return read_toml(DEFAULT_FILE)


def default_event_types() -> dict[str, EventType]:
    """The event types of config/default.toml."""
    section = default_config().get("event_types", {})
    return load_event_types(section)


def default_levels() -> dict[Level, LevelInfo]:
    """The levels of config/default.toml."""
    return load_levels(default_config().get("levels", {}))


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _contains(text: str, name: str) -> bool:
    """Chinese names match anywhere; Latin names only as whole words ("Flood" is not in "Flooding")."""
    if not name.isascii():
        return name in text
    return re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", text) is not None


def match_event_type(info: Info, event_types: Mapping[str, EventType]) -> str | None:
    """The event type of an info block: by eventCode, exact event name, then the longest name in event or headline."""
    exact: dict[str, str] = {}
    for t in event_types.values():
        for name in (t.key, *t.names, *t.codes):
            exact.setdefault(_fold(name), t.key)
    for _, value in info.event_codes:
        if _fold(value) in exact:
            return exact[_fold(value)]
    if _fold(info.event) in exact:
        return exact[_fold(info.event)]
    by_length = sorted(((_fold(n), t.key) for t in event_types.values() for n in t.names),
                       key=lambda pair: -len(pair[0]))
    for text in _texts(info):
        for name, key in by_length:
            if _contains(text, name):
                return key
    return None


def _texts(info: Info) -> Iterable[str]:
    yield _fold(info.event)
    if info.headline:
        yield _fold(info.headline)
