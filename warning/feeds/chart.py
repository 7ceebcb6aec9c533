"""A station's readings as a chart drawn on the server (inline SVG, no script, no network): water level, or rainfall
totals over a threshold's window, with the thresholds as lines and Beijing time along the axis. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contacts.model import Thresholds, rain_window_s
from warning.feeds.crossing import rain_total, window_zh
from warning.feeds.readings import CN_TZ, Reading

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 30
LEVEL_COLOURS = {"orange": "#ef6c00", "red": "#c62828"}


@dataclass(frozen=True, slots=True)
class Line:
    """A threshold across the chart: its height, label and colour."""

    y: float
    label: str
    colour: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template draws: the series as a polyline, points, threshold lines, axis ticks."""

    title: str
    unit: str
    points: str = ""
    dots: tuple[tuple[float, float, str], ...] = ()
    lines: tuple[Line, ...] = ()
    x_ticks: tuple[tuple[float, str], ...] = ()
    y_ticks: tuple[tuple[float, str], ...] = ()
    empty: bool = True
    width: int = WIDTH
    height: int = HEIGHT
    plot: tuple[int, int, int, int] = field(default=(LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM))


def _nice_step(span: float) -> float:
    raw = span / 5 if span > 0 else 1.0
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _chart(title: str, unit: str, values: Sequence[tuple[datetime, float]], limits: Sequence[tuple[float, str, str]],
           start: datetime, end: datetime) -> Chart:
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    numbers = [v for _, v in values] + [limit for limit, _, _ in limits]
    if not numbers:
        return Chart(title, unit)
    low, high = min(numbers), max(numbers)
    pad = (high - low) * 0.1 or max(abs(high) * 0.1, 0.5)
    low, high = (0.0 if unit == "毫米" else low - pad), high + pad
    span_s = max(1.0, (end - start).total_seconds())

    def x(at: datetime) -> float:
        return round(x0 + (x1 - x0) * (at - start).total_seconds() / span_s, 1)

    def y(value: float) -> float:
        return round(y1 - (y1 - y0) * (value - low) / (high - low), 1)

    step = _nice_step(high - low)
    first = (low // step + 1) * step
    y_ticks = tuple((y(first + i * step), f"{first + i * step:g}") for i in range(int((high - first) // step) + 1))
    hours = max(1, round(span_s / 3600 / 8))  # about eight ticks along the time axis
    tick = start.astimezone(CN_TZ).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    x_ticks: list[tuple[float, str]] = []
    while tick <= end:
        if tick.hour % hours == 0:
            label = f"{tick.month}/{tick.day} {tick.hour:02d}时" if tick.hour == 0 or not x_ticks else f"{tick.hour:02d}时"
            x_ticks.append((x(tick), label))
        tick += timedelta(hours=1)
    shown = [(at, v) for at, v in values if start <= at <= end]
    return Chart(
        title=title, unit=unit, points=" ".join(f"{x(at)},{y(v)}" for at, v in shown),
        dots=tuple((x(at), y(v), f"{at.astimezone(CN_TZ):%m-%d %H:%M} {v:g}{unit}") for at, v in shown[-200:]),
        lines=tuple(Line(y(limit), f"{label} {limit:g}{unit}", LEVEL_COLOURS.get(colour, colour))
                    for limit, label, colour in limits),
        x_ticks=tuple(x_ticks), y_ticks=y_ticks, empty=not shown)


def charts(series: Sequence[Reading], thresholds: Thresholds | None, *, start: datetime, end: datetime,
           levels: dict[str, str] | None = None) -> list[Chart]:
    """The water-level chart (when the station reports levels or the site has level thresholds) and a rainfall chart
    for each window the site's rain thresholds use (totals over that window, at each reading)."""
    t = thresholds or Thresholds()
    lv = levels or {"warning_level_m": "orange", "guarantee_level_m": "red", "rain_prepare_mm": "orange",
                    "rain_evacuate_mm": "red"}
    out = []
    water = [(r.time, r.water_level_m) for r in series if r.water_level_m is not None]
    limits = [(v, name, lv[key]) for v, name, key in ((t.warning_level_m, "警戒水位", "warning_level_m"),
                                                      (t.guarantee_level_m, "保证水位", "guarantee_level_m"))
              if v is not None]
    if water or limits:
        out.append(_chart("水位 water level", "米", water, limits, start, end))
    rainy = [r for r in series if r.rain_mm is not None]
    windows = dict.fromkeys(w for w, _ in (*t.rain_prepare_mm, *t.rain_evacuate_mm))
    for window in sorted(windows, key=rain_window_s):
        totals = [(r.time, round(rain_total(rainy, r.time, rain_window_s(window)), 1)) for r in rainy]
        marks = [(v, name, lv[key]) for table, name, key in ((t.rain_prepare_mm, "准备转移", "rain_prepare_mm"),
                                                             (t.rain_evacuate_mm, "立即转移", "rain_evacuate_mm"))
                 for w, v in table if w == window]
        out.append(_chart(f"{window_zh(window)}累计降雨量 rainfall over {window}", "毫米", totals, marks, start, end))
    if rainy and not windows:
        out.append(_chart("时段降雨量 rainfall per reading", "毫米", [(r.time, r.rain_mm or 0.0) for r in rainy], [],
                          start, end))
    return out
