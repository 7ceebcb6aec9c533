"""Gauge readings from an observations feed: a JSON array or a CSV of `station, time, water_level_m, rain_mm`. Pure.

`rain_mm` is the rain that fell since the station's previous reading (时段降雨量); window totals are sums of it. A
time without a zone is Beijing time, as Chinese hydrological systems write it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from warning.feeds.index import FeedDocumentError

CN_TZ = timezone(timedelta(hours=8))
#: readings taken from one document; a larger one is refused (a county's gauges send hundreds)
MAX_READINGS = 50_000
_STATION = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")
_COLUMNS = {"station": ("station", "stcd", "测站编码", "站码"), "time": ("time", "tm", "时间", "观测时间"),
            "water_level_m": ("water_level_m", "z", "水位"), "rain_mm": ("rain_mm", "drp", "雨量", "时段降雨量")}


@dataclass(frozen=True, slots=True)
class Reading:
    """One gauge reading: the station, when, the water level (m) and/or the rain since the previous reading (mm)."""

    station: str
    time: datetime
    water_level_m: float | None = None
    rain_mm: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"t": self.time.timestamp(), "w": self.water_level_m, "r": self.rain_mm}

    @classmethod
    def from_json(cls, station: str, d: dict[str, Any]) -> Reading:
        return cls(station, datetime.fromtimestamp(float(d["t"]), CN_TZ), d.get("w"), d.get("r"))


def _number(value: Any, name: str, *, minimum: float | None = None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{name} 应为数字 is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} 应为数字 is not a number: {str(value)[:20]!r}") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise ValueError(f"{name} 超出范围 out of range: {str(value)[:20]!r}")
    return number


def reading_from(row: dict[str, Any]) -> Reading:
    """One reading from a row; ValueError saying what is wrong."""
    station = str(row.get("station") or "").strip()
    if not _STATION.match(station):
        raise ValueError(f"测站编码无效 invalid station code: {station[:32]!r}")
    raw_time = str(row.get("time") or "").strip()
    try:
        when = datetime.fromisoformat(raw_time)
    except ValueError:
        raise ValueError(f"时间无效 invalid time: {raw_time[:40]!r} (ISO 8601, e.g. 2026-07-01T14:00:00+08:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CN_TZ)
    water = _number(row.get("water_level_m"), "water_level_m")
    rain = _number(row.get("rain_mm"), "rain_mm", minimum=0.0)
    if water is None and rain is None:
        raise ValueError("没有水位或雨量 neither water_level_m nor rain_mm")
    return Reading(station, when, water, rain)


def _rows(body: bytes) -> list[Any]:
    text = body.decode("utf-8-sig") if not body.startswith((b"\xff\xfe", b"\xfe\xff")) else body.decode("utf-16")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FeedDocumentError("malformed", f"JSON 格式错误 not valid JSON: {exc}") from None
        if not isinstance(rows, list):
            raise FeedDocumentError("malformed", "expected a JSON array of readings")
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise FeedDocumentError("malformed", "空文档 an empty document")
    names = {alias.casefold(): name for name, aliases in _COLUMNS.items() for alias in aliases}
    columns = [names.get(h.strip().casefold().lstrip("\ufeff"), "") for h in header]
    if "station" not in columns or "time" not in columns:
        raise FeedDocumentError("malformed", "CSV 缺少 station 或 time 列 the CSV needs station and time columns")
    return [dict(zip(columns, cells, strict=False)) for cells in reader if any(c.strip() for c in cells)]


def parse_readings(body: bytes) -> tuple[list[Reading], list[tuple[str, str]]]:
    """The readings of a document, and the rows refused with why (`row 3`, reason); FeedDocumentError when the
    document as a whole cannot be read."""
    try:
        rows = _rows(body)
    except UnicodeDecodeError:
        raise FeedDocumentError("malformed", "不是 UTF-8 文本 not UTF-8 text") from None
    if len(rows) > MAX_READINGS:
        raise FeedDocumentError("too_large", f"读数过多 more than {MAX_READINGS} readings")
    readings, problems = [], []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            problems.append((f"row {i}", "应为对象 not an object"))
            continue
        try:
            readings.append(reading_from(row))
        except (ValueError, TypeError) as exc:
            problems.append((f"row {i}", str(exc)))
    return readings, problems
