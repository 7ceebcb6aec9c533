"""Positions (职务) as reference data: what a person answers for in the 叫应 chain, beside the role (who they are)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contacts.model import NO_POSITION
from contacts.reference import fold

NONE = NO_POSITION


class UnknownPosition(ValueError):
    """A position that is neither a configured key, nor its Chinese or English label, nor an alias."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        super().__init__(f"职务未知 unknown position: {raw[:40]}")


@dataclass(frozen=True, slots=True)
class PositionInfo:
    """A position: its key, Chinese and English labels, accepted aliases, and the roles it is the default of."""

    key: str
    label_zh: str
    label_en: str
    aliases: tuple[str, ...] = ()
    #: a contact of one of these roles whose position is not given holds this one (包村干部 → village_liaison_cadre)
    roles: tuple[str, ...] = ()


class PositionBook:
    """The configured positions, looked up by key, label or alias; `none` is always one of them."""

    def __init__(self, positions: Iterable[PositionInfo]) -> None:
        self.positions = {p.key: p for p in positions}
        if NONE not in self.positions:
            raise ValueError(f"the position {NONE!r} (no position) must be configured")
        self._lookup: dict[str, str] = {}
        self._by_role: dict[str, str] = {}
        for key, info in self.positions.items():
            for name in (key, info.label_zh, info.label_en, *info.aliases):
                if not name:
                    continue
                other = self._lookup.setdefault(fold(name), key)
                if other != key:
                    raise ValueError(f"positions.{key}: {name!r} already names the position {other!r}")
            for role in info.roles:
                other = self._by_role.setdefault(role, key)
                if other != key:
                    raise ValueError(f"positions.{key}.roles: the role {role!r} is already the position {other!r}'s")

    @classmethod
    def minimal(cls) -> PositionBook:
        """A book with only `none` (reference data built without configuration, as in some tests)."""
        return cls([PositionInfo(NONE, "无", "None")])

    @classmethod
    def from_config(cls, section: Mapping[str, Any], roles: Iterable[str]) -> PositionBook:
        """Build from the `[positions.*]` tables; every `roles` entry must name a configured role."""
        known = set(roles)
        positions = []
        for key, table in section.items():
            if not isinstance(table, Mapping):
                raise TypeError(f"positions.{key}: expected a table with label_zh, label_en, aliases, roles")
            unknown = sorted(set(table) - {"label_zh", "label_en", "aliases", "roles"})
            if unknown:
                raise TypeError(f"positions.{key}: unknown keys {', '.join(unknown)}")
            lists = {}
            for name in ("aliases", "roles"):
                value = table.get(name, [])
                if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
                    raise TypeError(f"positions.{key}.{name}: expected a list of non-empty strings")
                lists[name] = tuple(value)
            missing = [r for r in lists["roles"] if r not in known]
            if missing:
                raise ValueError(f"positions.{key}.roles: no such role {', '.join(missing)}")
            label_zh, label_en = table.get("label_zh", ""), table.get("label_en", "")
            if not isinstance(label_zh, str) or not label_zh.strip() or not isinstance(label_en, str) \
                    or not label_en.strip():
                raise TypeError(f"positions.{key}: label_zh and label_en must be non-empty strings")
            positions.append(PositionInfo(key, label_zh, label_en, lists["aliases"], lists["roles"]))
        return cls(positions)

    def resolve(self, raw: str) -> str:
        """The position key for a key, label or alias; raises UnknownPosition."""
        key = self._lookup.get(fold(raw))
        if key is None:
            raise UnknownPosition(str(raw))
        return key

    def default_for(self, role: str) -> str:
        """The position of a contact of `role` whose position is not given (`none` unless configured)."""
        return self._by_role.get(role, NONE)

    def label(self, key: str, lang: str = "zh") -> str:
        """The position's label in Chinese (default) or English; the key when unknown."""
        info = self.positions.get(key)
        if info is None:
            return key
        return info.label_en if lang.startswith("en") else info.label_zh

    def __contains__(self, key: object) -> bool:
        return key in self.positions

    def keys(self) -> list[str]:
        return list(self.positions)
