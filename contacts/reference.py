"""Reference data the registry validates against: roles (from config) and the region tree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contacts.model import RoleInfo
from contacts.regions import RegionTree

if TYPE_CHECKING:
    from contacts.positions import PositionBook


class UnknownRole(ValueError):
    """A role that is neither a configured key, nor its Chinese or English label, nor an alias."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        super().__init__(f"角色未知 unknown role: {raw[:40]}")


def fold(text: str) -> str:
    """A name as looked up: whitespace removed, full-width brackets as ASCII ones, case folded."""
    return "".join(str(text).split()).replace("（", "(").replace("）", ")").casefold()


class RoleBook:
    """The configured roles, looked up by key, label or alias."""

    def __init__(self, roles: Mapping[str, RoleInfo]) -> None:
        self.roles = dict(roles)
        self._lookup: dict[str, str] = {}
        for key, info in self.roles.items():
            for name in (key, info.label_zh, info.label_en, *info.aliases):
                if not name:
                    continue
                other = self._lookup.setdefault(fold(name), key)
                if other != key:
                    raise ValueError(f"roles.{key}: {name!r} already names the role {other!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> RoleBook:
        """Build from the `[roles.*]` tables: key → {label_zh, label_en, aliases}."""
        roles: dict[str, RoleInfo] = {}
        for key, table in section.items():
            if not isinstance(table, Mapping):
                raise TypeError(f"roles.{key}: expected a table with label_zh, label_en, aliases")
            aliases = table.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise TypeError(f"roles.{key}.aliases: expected a list of strings")
            roles[key] = RoleInfo(key=key, label_zh=str(table.get("label_zh", key)),
                                  label_en=str(table.get("label_en", key)), aliases=tuple(aliases))
        return cls(roles)

    def resolve(self, raw: str) -> str:
        """The role key for a key, label or alias; raises UnknownRole."""
        key = self._lookup.get(fold(raw))
        if key is None:
            raise UnknownRole(str(raw))
        return key

    def label(self, key: str, lang: str = "zh") -> str:
        """The role's label in Chinese (default) or English; the key when unknown."""
        info = self.roles.get(key)
        if info is None:
            return key
        return info.label_en if lang.startswith("en") else info.label_zh

    def __contains__(self, key: object) -> bool:
        return key in self.roles

    def keys(self) -> list[str]:
        return list(self.roles)


@dataclass(frozen=True)
class Reference:
    """Everything input validation needs besides the store."""

    roles: RoleBook
    regions: RegionTree = field(default_factory=RegionTree)
    default_phone_region: str = "CN"
    #: positions (职务); only `none` unless configured
    positions: PositionBook = field(default_factory=lambda: _minimal_positions())


def _minimal_positions() -> PositionBook:
    from contacts.positions import PositionBook

    return PositionBook.minimal()
