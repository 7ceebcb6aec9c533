"""Gauge readings against a site's thresholds, as pure decisions: which threshold is crossed, the trend, the text
people read, and what to do about the site's warning (draft, raise, propose a cancellation, nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from contacts.model import Thresholds, rain_window_s
from warning.feeds.readings import CN_TZ, Reading
from warning.model import Level

#: a water level change smaller than this over the trend span is steady
STEADY_M = 0.005
#: the trend compares the latest water level with the one about this long before
TREND_SPAN_S = 3600
THRESHOLD_ZH = {"warning_level_m": "警戒水位", "guarantee_level_m": "保证水位", "rain_prepare_mm": "准备转移",
                "rain_evacuate_mm": "立即转移"}
INSTRUCTION = {
    "warning_level_m": "请沿河及下游群众注意防范，远离河道，做好转移准备；责任人加强巡查，随时报告水情。",
    "guarantee_level_m": "请下游及沿河危险区群众立即转移到安全地带；责任人立即组织转移并报告。",
    "rain_prepare_mm": "请危险区群众做好转移准备，密切关注雨情水情；责任人加强巡查。",
    "rain_evacuate_mm": "请危险区群众立即转移到安全地带；责任人立即组织转移并报告。",
}


@dataclass(frozen=True, slots=True)
class Crossing:
    """A threshold the readings reached: which (and over which rainfall window), the value, the limit, the level."""

    threshold: str
    value: float
    limit: float
    level: Level
    window: str | None = None
    at: datetime | None = None


def rain_total(series: Sequence[Reading], end: datetime, window_s: int) -> float:
    """Rain fallen in the window that ends at `end` (readings after `end - window`, up to `end`)."""
    start = end - timedelta(seconds=window_s)
    return sum(r.rain_mm or 0.0 for r in series if start < r.time <= end)


def crossings(thresholds: Thresholds, series: Sequence[Reading], levels: Mapping[str, str]) -> list[Crossing]:
    """The highest water-level crossing and the highest rainfall crossing of the latest readings (series sorted by
    time); a threshold is reached at its value (达到即超)."""
    out: list[Crossing] = []
    water = [r for r in series if r.water_level_m is not None]
    if water:
        last = water[-1]
        assert last.water_level_m is not None
        for name, limit in (("guarantee_level_m", thresholds.guarantee_level_m),
                            ("warning_level_m", thresholds.warning_level_m)):
            if limit is not None and last.water_level_m >= limit:
                out.append(Crossing(name, last.water_level_m, limit, Level(levels[name]), at=last.time))
                break
    rainy = [r for r in series if r.rain_mm is not None]
    if rainy:
        end = rainy[-1].time
        for name, table in (("rain_evacuate_mm", thresholds.rain_evacuate_mm),
                            ("rain_prepare_mm", thresholds.rain_prepare_mm)):
            hit = next((Crossing(name, total, limit, Level(levels[name]), window=window, at=end)
                        for window, limit in table
                        if (total := round(rain_total(rainy, end, rain_window_s(window)), 3)) >= limit), None)
            if hit is not None:
                out.append(hit)
                break
    return out


def top(found: Sequence[Crossing]) -> Crossing | None:
    """The crossing that sets the level: the highest; water before rain at the same level."""
    return max(found, key=lambda c: c.level.rank, default=None)


def trend(series: Sequence[Reading]) -> str:
    """呈上涨趋势 / 呈回落趋势 / 基本平稳: the latest water level against the one about an hour before."""
    water = [r for r in series if r.water_level_m is not None]
    if len(water) < 2:
        return ""
    last = water[-1]
    before = [r for r in water[:-1] if r.time <= last.time - timedelta(seconds=TREND_SPAN_S)]
    base = before[-1] if before else water[0]
    assert last.water_level_m is not None and base.water_level_m is not None
    change = last.water_level_m - base.water_level_m
    if change > STEADY_M:
        return "呈上涨趋势"
    if change < -STEADY_M:
        return "呈回落趋势"
    return "基本平稳"


def when_zh(at: datetime) -> str:
    """Beijing time as a Chinese bulletin writes it: 12月1日14时, 12月1日14时30分."""
    local = at.astimezone(CN_TZ)
    return f"{local.month}月{local.day}日{local.hour}时" + (f"{local.minute}分" if local.minute else "")


def window_zh(window: str) -> str:
    seconds = rain_window_s(window)
    return f"{seconds // 3600}小时" if seconds % 3600 == 0 else f"{seconds // 60}分钟"


def sentence(site_name: str, c: Crossing, series: Sequence[Reading]) -> str:
    """The crossing as people read it, e.g. 潼川水位站12月1日14时水位5.32米，超警戒水位0.32米（警戒水位5.00米），呈上涨趋势."""
    when = when_zh(c.at) if c.at else ""
    name = THRESHOLD_ZH[c.threshold]
    if c.window is None:
        over = c.value - c.limit
        text = (f"{site_name}{when}水位{c.value:.2f}米，" + (f"超{name}{over:.2f}米" if over >= 0.005 else f"达到{name}")
                + f"（{name}{c.limit:.2f}米）")
        direction = trend(series)
        return text + (f"，{direction}" if direction else "")
    return (f"{site_name}{when}前{window_zh(c.window)}降雨量{c.value:.1f}毫米，达到{name}雨量指标"
            f"（{window_zh(c.window)}{c.limit:g}毫米）")


@dataclass(frozen=True, slots=True)
class SiteState:
    """What the service remembers of a gauge-watched site between polls."""

    feed: str = ""
    warning_id: str = ""
    #: the level rank the warning was drafted or last raised at
    rank: int = 0
    #: since when (epoch s) every reading is below the thresholds; None while one is above
    below_since: float | None = None
    proposed_at: float | None = None
    #: a person kept the warning when a cancellation was proposed; not proposed again until the readings rise again
    dismissed: bool = False
    #: the warning was closed (by a person, or expiry) while the readings were still above
    closed: bool = False

    def to_hash(self) -> dict[str, str]:
        return {"feed": self.feed, "warning": self.warning_id, "rank": str(self.rank),
                "below_since": "" if self.below_since is None else repr(self.below_since),
                "proposed_at": "" if self.proposed_at is None else repr(self.proposed_at),
                "dismissed": "1" if self.dismissed else "", "closed": "1" if self.closed else ""}

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> SiteState:
        return cls(feed=h.get("feed", ""), warning_id=h.get("warning", ""), rank=int(h.get("rank") or 0),
                   below_since=float(h["below_since"]) if h.get("below_since") else None,
                   proposed_at=float(h["proposed_at"]) if h.get("proposed_at") else None,
                   dismissed=bool(h.get("dismissed")), closed=bool(h.get("closed")))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do: `draft` a warning, `raise` the open one, `propose` its cancellation, `withdraw` a proposal, `clear`
    the site's state, or `none`; and the state to keep (None: forget the site)."""

    action: str
    state: SiteState | None


def decide(state: SiteState | None, crossing: Crossing | None, *, warning_open: bool, now: float,
           clear_after_s: float) -> Decision:
    """The site's next step, from what is remembered, the top crossing now (None: every reading below), and whether
    the warning is still open (pending approval or live)."""
    if state is None or not state.warning_id:
        return Decision("draft", None) if crossing is not None else Decision("none", state)
    if not warning_open:
        if crossing is None:
            return Decision("clear", None)
        if crossing.level.rank > state.rank or state.below_since is not None:
            return Decision("draft", None)  # a higher stage, or a new rise after the readings had fallen
        # closed by a person while still above: no second draft until the readings go below (or rise a level)
        return Decision("withdraw" if state.proposed_at else "none",
                        replace(state, closed=True, below_since=None, proposed_at=None))
    if crossing is not None:
        above = replace(state, below_since=None, proposed_at=None, dismissed=False)
        if crossing.level.rank > state.rank:
            return Decision("raise", replace(above, rank=crossing.level.rank))
        return Decision("withdraw" if state.proposed_at else "none", above)
    below = replace(state, below_since=state.below_since if state.below_since is not None else now)
    assert below.below_since is not None
    if (now - below.below_since >= clear_after_s and below.proposed_at is None and not below.dismissed):
        return Decision("propose", replace(below, proposed_at=now))
    return Decision("none", below)
