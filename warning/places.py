"""Places by name: division codes → the names people read ("潼川镇、芦溪镇", "潼川镇等5个镇"), and CAP
`<areaDesc>` names → division codes, from the region tree (`[registry] regions_csv`).

Naming, as a county office writes it:
- A division inside another one listed is left out (潼川镇 covers its villages).
- A village is named with its township ("潼川镇东街社区"); villages of one township that follow each other
  name the township once ("潼川镇东街社区、西街社区").
- A code the tree does not know is named by the nearest division above it that the tree knows
  ("三台县部分地区"); a code nothing is known about is never shown.
- When the list is longer than the text can hold, the first name stands for all: "潼川镇等5个镇".

Reading an `<areaDesc>`: it is split at 、，,；and spaces; each piece must be a chain of known names,
each inside the one before ("四川省绵阳市三台县潼川镇", "潼川镇"), optionally followed by words that do not
change the division ("全境", "等地", "北部"). A name that two divisions share is taken inside the office's
own county; still two, or any piece that is not such a chain, and the description is not resolved at all:
a person decides rather than a part of the area being warned.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from contacts.regions import InvalidRegionCode, query_prefix
from warning.model import EarlyWarning

logger = logging.getLogger(__name__)

#: said after the name of the division a code lies in, when the tree does not know the code itself
PART = "部分地区"
#: the longest list of names written out in full; a longer one becomes "潼川镇等5个镇"
MAX_LIST_CHARS = 15
_SPLIT = re.compile(r"[\s、，,；;/|]+|(?<=[镇乡村县区市])(?:和|及|与)")
_TAIL = re.compile(r"(全境|全域|境内|辖区|部分地区|部分区域|大部分地区|大部地区|大部|部分|一带|等地|等乡镇|等村|地区|"
                   r"[东南西北中]{1,2}部(地区)?|沿线|沿岸)$")
_MIN_NAME = 2


def code_key(code: str) -> str | None:
    """The prefix a division code stands for (510700 → 5107, 510722101000 → 510722101); None when no code."""
    try:
        return query_prefix(str(code).strip())
    except InvalidRegionCode:
        return None


@dataclass(frozen=True, slots=True)
class _Place:
    key: str  #: a known division
    part: bool  #: only a part of it is meant (a code below it the tree does not know)


def _unit(names: Sequence[str], level: int) -> str:
    """The counting word of "等5个镇": what kind of divisions the names are."""
    def all_end(*suffixes: str) -> bool:
        return all(n.endswith(suffixes) for n in names)

    if level == 9:
        for suffix in ("镇", "乡", "街道"):
            if all_end(suffix):
                return suffix
        return "乡镇" if all_end("镇", "乡") else "乡镇（街道）"
    if level == 12:
        for suffix in ("村", "社区"):
            if all_end(suffix):
                return suffix
        return "村（社区）"
    return "地"


class Places:
    """Names for division codes, and codes for names; built from the region tree's code → name table."""

    def __init__(self, names: Mapping[str, str], *, home: str = "") -> None:
        self._names: dict[str, str] = {}
        for code, name in names.items():
            key = code_key(code)
            if key is not None and name.strip():
                self._names[key] = name.strip()
        #: the office's own county: a name two divisions share is taken inside it
        self.home = code_key(home) or "" if home.strip("0") else ""
        self._by_name: dict[str, list[str]] = {}
        for key, name in self._names.items():
            self._by_name.setdefault(name, []).append(key)
        self._longest = max((len(n) for n in self._by_name), default=0)

    def __bool__(self) -> bool:
        return bool(self._names)

    def name(self, code: str) -> str | None:
        """The division's own name ("潼川镇"); None when the tree does not know it."""
        key = code_key(code)
        return self._names.get(key) if key else None

    # ---- codes → names ---------------------------------------------------------------------
    def _place(self, code: str) -> _Place | None:
        key = code_key(code)
        if key is None:
            return None
        if key in self._names:
            return _Place(key, False)
        for n in (9, 6, 4, 2):
            if n < len(key) and key[:n] in self._names:
                return _Place(key[:n], True)
        return None

    def places(self, codes: Iterable[str]) -> list[_Place]:
        """The divisions to name, in code order: known ones (or the nearest known above), none inside another."""
        found: dict[_Place, None] = {}
        for code in codes:
            place = self._place(code)
            if place is not None:
                found[place] = None
        whole = {p.key for p in found if not p.part}
        out = []
        for p in sorted(found, key=lambda p: (p.key, p.part)):
            inside = any(p.key.startswith(w) and (w != p.key or p.part) for w in whole)
            if not inside:
                out.append(p)
        return out

    def names(self, codes: Iterable[str]) -> list[str]:
        """One name per division: "潼川镇", "芦溪镇白鹤村", "三台县部分地区"."""
        return self._spell(self.places(codes))

    def _spell(self, places: Sequence[_Place]) -> list[str]:
        out: list[str] = []
        last_township = ""
        for p in places:
            own = self._names[p.key]
            if p.part:
                out.append(own + PART)
                last_township = ""
            elif len(p.key) == 12 and p.key[:9] in self._names:
                township = p.key[:9]
                out.append(own if township == last_township else self._names[township] + own)
                last_township = township
            else:
                out.append(own)
                last_township = ""
        return out

    def describe(self, codes: Iterable[str], *, max_chars: int | None = MAX_LIST_CHARS) -> str:
        """The area as people read it: names joined with 、, or "潼川镇等5个镇" when longer than `max_chars`
        (None: always in full); "" when no code is known."""
        places = self.places(codes)
        names = self._spell(places)
        full = "、".join(names)
        if max_chars is None or len(full) <= max_chars or len(names) <= 1:
            return full
        levels = {len(p.key) for p in places}
        whole = [self._names[p.key] for p in places if not p.part]
        unit = _unit(whole, levels.pop()) if len(levels) == 1 and len(whole) == len(places) else "地"
        return f"{names[0]}等{len(names)}{'地' if unit == '地' else '个' + unit}"

    # ---- names → codes ---------------------------------------------------------------------
    def resolve(self, text: str) -> tuple[str, ...]:
        """The division codes an `<areaDesc>` names; () when any part of it is not a known place."""
        codes: dict[str, None] = {}
        for piece in _SPLIT.split(text or ""):
            piece = piece.strip()
            if not piece:
                continue
            key = self._chain(piece)
            if key is None:
                return ()
            codes[key] = None
        return tuple(codes)

    def _chain(self, piece: str) -> str | None:
        """The innermost division of a piece written as a chain of names, each inside the one before."""
        at, inside = 0, ""
        while at < len(piece):
            rest = piece[at:]
            step = self._next(rest, inside)
            if step is None:
                return inside if inside and _TAIL.fullmatch(rest) else None
            inside, at = step[0], at + step[1]
        return inside or None

    def _next(self, rest: str, inside: str) -> tuple[str, int] | None:
        """The longest known name at the start of `rest` that lies inside `inside`: (its key, its length)."""
        for length in range(min(self._longest, len(rest)), _MIN_NAME - 1, -1):
            keys = [k for k in self._by_name.get(rest[:length], ()) if k.startswith(inside) and k != inside]
            if len(keys) > 1 and self.home:
                keys = [k for k in keys if k.startswith(self.home) or self.home.startswith(k)] or keys
            if len(keys) == 1:
                return keys[0], length
            if len(keys) > 1:
                return None  # two places of this name: not guessed
        return None


def resolve_areas(content: EarlyWarning, places: Places) -> EarlyWarning:
    """The content with region codes for every area that names places only in its `<areaDesc>` (no region
    geocode, no polygon, no circle): the codes its names resolve to in the region tree (none when they do not)."""
    infos = []
    changed = False
    for info in content.infos:
        areas = []
        for area in info.areas:
            codes = () if (area.region_codes or area.polygons or area.circles) else places.resolve(area.desc)
            if codes:
                area = dataclasses.replace(area, region_codes=codes)
                changed = True
                logger.info("area %r resolved by name to %s", area.desc[:60], ",".join(codes))
            elif not (area.region_codes or area.polygons or area.circles):
                logger.warning("area %r names no place known to the region tree", area.desc[:60])
            areas.append(area)
        infos.append(dataclasses.replace(info, areas=tuple(areas)))
    return content.with_(infos=tuple(infos)) if changed else content
