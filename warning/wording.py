"""How messages say things: Beijing time as people write it, what an update changed, a description trimmed
to fit an SMS, and the warning's own CAP parameters that carry these (EW_CHANGE, EW_SMS_SUMMARY)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from shapely.geometry import Point, Polygon
from shapely.ops import unary_union

from warning.model import Area, EarlyWarning, Info, Level

CN_TZ = timezone(timedelta(hours=8))
#: CAP <parameter> of our own: what an update changed ("level_up:orange area_wider"), written when it is issued
CHANGE_PARAM = "EW_CHANGE"
#: CAP <parameter> of our own: the issuer's own short text for SMS, in place of the description
SUMMARY_PARAM = "EW_SMS_SUMMARY"
#: the longest `sms_summary` a draft may give (one SMS of Chinese text)
MAX_SUMMARY_CHARS = 70
#: a description trimmed for a short SMS is cut at a clause; failing that, to one of these lengths
_HARD_CUTS = (40, 24)
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
_CLAUSE_END = re.compile(r"(?<=[，,：:])")
_KM_PER_DEGREE = 111.32


def zh_time(when: datetime) -> str:
    """Beijing time as a notice writes it: 12月1日12时35分, on the hour 12月1日18时."""
    t = when.astimezone(CN_TZ)
    return f"{t.month}月{t.day}日{t.hour}时" + (f"{t.minute}分" if t.minute else "")


def en_time(when: datetime) -> str:
    """Beijing time for English text: 1 Dec 12:35 (UTC+8)."""
    t = when.astimezone(CN_TZ)
    return f"{t.day} {t:%b} {t:%H:%M} (UTC+8)"


def param(info: Info | None, name: str) -> str:
    """The value of one of the info's <parameter>s, "" when absent."""
    if info is None:
        return ""
    return next((v for k, v in info.parameters if k == name), "")


def with_param(content: EarlyWarning, name: str, value: str) -> EarlyWarning:
    """The content with `name` set to `value` in every info block (removed when `value` is empty)."""
    infos = []
    for info in content.infos:
        kept = tuple((k, v) for k, v in info.parameters if k != name)
        infos.append(dataclasses.replace(info, parameters=kept + (((name, value),) if value else ())))
    return content.with_(infos=tuple(infos))


def with_sender_name(content: EarlyWarning, name: str) -> EarlyWarning:
    """The content with `name` as the <senderName> of every info block (who issued this message)."""
    return content.with_(infos=tuple(dataclasses.replace(info, sender_name=name) for info in content.infos))


# ---- what an update changed ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    """What an update changed for the people who read it: the level (up or down, from which) and the area."""

    level: str = ""  #: up | down | ""
    previous_level: str = ""  #: the level before, when it changed
    area: str = ""  #: wider | narrower | moved | ""

    def encode(self) -> str:
        parts = []
        if self.level:
            parts.append(f"level_{self.level}:{self.previous_level}")
        if self.area:
            parts.append(f"area_{self.area}")
        return " ".join(parts)

    @classmethod
    def decode(cls, text: str) -> Change:
        """The inverse of `encode`; anything it does not know is ignored (a peer's own words)."""
        level = previous = area = ""
        for word in text.split():
            name, _, arg = word.partition(":")
            if name in ("level_up", "level_down") and arg in {lv.value for lv in Level}:
                level, previous = name.removeprefix("level_"), arg
            elif name in ("area_wider", "area_narrower", "area_moved"):
                area = name.removeprefix("area_")
        return cls(level, previous, area)


def _covered(code: str, by: set[str]) -> bool:
    return any(code.startswith(b) for b in by)


def _compare_codes(before: set[str], after: set[str]) -> str:
    """same | wider | narrower | moved, by region-code prefixes (潼川镇 covers its villages)."""
    after_covers = all(_covered(c, after) for c in before)
    before_covers = all(_covered(c, before) for c in after)
    if after_covers and before_covers:
        return "same"
    if after_covers:
        return "wider"
    return "narrower" if before_covers else "moved"


def _shape(areas: tuple[Area, ...]) -> object | None:
    parts = [Polygon([(lon, lat) for lat, lon in ring]) for a in areas for ring in a.polygons if len(ring) >= 4]
    parts += [Point(c.lon, c.lat).buffer(c.radius_km / _KM_PER_DEGREE) for a in areas for c in a.circles]
    return unary_union(parts) if parts else None


def _compare_shapes(before: tuple[Area, ...], after: tuple[Area, ...]) -> str:
    old, new = _shape(before), _shape(after)
    if old is None and new is None:
        return "same"
    if old is None or new is None:
        return "moved"
    if old.equals(new):  # type: ignore[attr-defined]
        return "same"
    if new.covers(old):  # type: ignore[attr-defined]
        return "wider"
    return "narrower" if old.covers(new) else "moved"  # type: ignore[attr-defined]


def compare(before: EarlyWarning, after: EarlyWarning) -> Change:
    """What `after` changed of `before`, as the people who got `before` must be told."""
    level = previous = ""
    if before.level is not None and after.level is not None and before.level != after.level:
        level = "up" if after.level.rank > before.level.rank else "down"
        previous = before.level.value
    verdicts = {_compare_codes(set(before.region_codes), set(after.region_codes)),
                _compare_shapes(before.areas, after.areas)} - {"same"}
    area = verdicts.pop() if len(verdicts) == 1 else ("moved" if verdicts else "")
    return Change(level, previous, area)


def mark_change(before: EarlyWarning, after: EarlyWarning) -> EarlyWarning:
    """`after` carrying what it changed of `before` (CHANGE_PARAM), for the messages of the update."""
    return with_param(after, CHANGE_PARAM, compare(before, after).encode())


# ---- trimming -------------------------------------------------------------------------------------
def trimmed(text: str) -> list[str]:
    """Shorter forms of a description, longest first, each a whole sentence or clause where it can be: the
    sentences from the start, then the clauses of the first one, then the first clause cut short with "…"."""
    text = text.strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    out = ["".join(sentences[:n]) for n in range(len(sentences) - 1, 0, -1)]
    first = sentences[0] if sentences else ""
    clauses = [c for c in _CLAUSE_END.split(first) if c.strip()]
    out += ["".join(clauses[:n]).rstrip("，,：:") + "。" for n in range(len(clauses) - 1, 0, -1)]
    head = (clauses[0] if clauses else first).rstrip("，、,：:。！？；!?;")
    out += [head[:n] + "…" for n in _HARD_CUTS if len(head) > n]
    seen: dict[str, None] = {}
    for candidate in out:
        if candidate and candidate != text:
            seen[candidate] = None
    return list(seen)
