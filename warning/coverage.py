"""Coverage of a warning from its counters (DESIGN §4): the funnel in total, by channel, region and role."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FUNNEL = ("queued", "sent", "delivered", "failed")
PEOPLE = ("targeted", "acked", "acked_5m", "acked_15m")


def _group(counts: Mapping[str, int], prefix: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for field, value in counts.items():
        if not field.startswith(prefix):
            continue
        key, _, metric = field[len(prefix):].rpartition(":")
        if key and metric in FUNNEL + PEOPLE:
            out.setdefault(key, {})[metric] = value
    for figures in out.values():
        for name in FUNNEL:
            figures.setdefault(name, 0)
    return dict(sorted(out.items()))


def coverage(counts: Mapping[str, int], *, region_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The coverage document: `targeted` and `acked` count people, the rest count deliveries; people whose number
    needs checking (needs_check) are in none of these figures but in `needs_check`, which has the same ones."""
    doc: dict[str, Any] = {name: max(0, counts.get(name, 0)) for name in (*PEOPLE, *FUNNEL)}
    doc["by_channel"] = _group(counts, "k:")
    by_region = _group(counts, "r:")
    if region_names:
        for code, figures in by_region.items():
            figures["name"] = region_names.get(code, "")  # type: ignore[assignment]
    doc["by_region"] = by_region
    doc["by_role"] = _group(counts, "o:")
    # people whose number was flagged needs_check when the warning was planned: sent to, counted apart from the above
    doc["needs_check"] = {name: max(0, counts.get(f"c:{name}", 0)) for name in (*PEOPLE, *FUNNEL)}
    return doc
