"""The polled `[[feeds]]` entries as frozen values, checked at start (file, key and reason on a bad one).

`warning.policy.load_feeds` checks what every `[[feeds]]` table has (its name, `auto_issue`, no unknown key); this
module reads the keys of a feed the service polls itself (`kind`, `url`, ...), on the tables that have them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from contacts.addresses import mask_credentials
from warning.errors import ConfigError
from warning.policy import LEVELS, load_feeds
from warning.reference import EventType, default_event_types

KINDS = ("atom", "cap", "observations")
#: the thresholds a gauge crossing can pass, and the level each drafts by default
THRESHOLDS = ("warning_level_m", "guarantee_level_m", "rain_prepare_mm", "rain_evacuate_mm")
DEFAULT_GAUGE_LEVELS = {"warning_level_m": "orange", "guarantee_level_m": "red", "rain_prepare_mm": "orange",
                        "rain_evacuate_mm": "red"}
#: the event type a crossing drafts: a water level above its stage is a flood (洪水), rainfall over a 转移 threshold a
#: flash flood (山洪), as flood-control practice names them
THRESHOLD_EVENT = {"warning_level_m": "flood", "guarantee_level_m": "flood", "rain_prepare_mm": "flash_flood",
                   "rain_evacuate_mm": "flash_flood"}
DEFAULT_INTERVAL_S = 60.0
#: the shortest interval between polls (a publisher is not hammered)
MIN_INTERVAL_S = 1.0
DEFAULT_STALE_AFTER_S = 3600.0
DEFAULT_TIMEOUT_S = 10.0
#: the same cap as the CAP parser's (warning.cap.DEFAULT_MAX_BYTES)
DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_CLEAR_AFTER_S = 3600.0
#: readings kept per station: three days (the longest rainfall window a threshold may use is 24 h)
DEFAULT_RETENTION_S = 3 * 86400.0
MIN_RETENTION_S = 86400.0 + 3600.0
_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True, slots=True)
class GaugeRules:
    """What an observations feed does with readings: the level each threshold drafts, how long a reading must stay
    below before a cancellation is proposed, and how long readings are kept."""

    levels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_GAUGE_LEVELS))
    clear_after_s: float = DEFAULT_CLEAR_AFTER_S
    retention_s: float = DEFAULT_RETENTION_S


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One feed the service polls: where, how often, what it may issue without a person, when its silence alarms."""

    name: str
    kind: str
    url: str
    interval_s: float = DEFAULT_INTERVAL_S
    auto_issue: frozenset[str] = frozenset(LEVELS)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES
    gauge: GaugeRules | None = None

    @property
    def shown_url(self) -> str:
        """The URL as people and logs see it: credentials and secret-looking query values masked."""
        return mask_credentials(self.url)


def _number(table: Mapping[str, Any], name: str, key: str, source: str, default: float, *, minimum: float = 0.0
            ) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= minimum:
        raise ConfigError(source, f"{key}.{name}", f"expected a number of seconds above {minimum:g}, got {value!r}")
    return float(value)


def _url(table: Mapping[str, Any], key: str, source: str) -> str:
    url = table.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(source, f"{key}.url", "missing (the address polled: http(s):// or file://)")
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in _SCHEMES or (parts.scheme != "file" and not parts.hostname) or (
            parts.scheme == "file" and not parts.path):
        raise ConfigError(source, f"{key}.url", f"expected an http(s):// or file:// address, got {mask_credentials(url)!r}")
    return url.strip()


def _headers(table: Mapping[str, Any], key: str, source: str) -> dict[str, str]:
    raw = table.get("headers", {})
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in raw.items()):
        raise ConfigError(source, f"{key}.headers", 'expected a table of header name = "value" strings')
    for name, value in raw.items():
        if any(c in name + value for c in "\r\n") or not name.isascii():
            raise ConfigError(source, f"{key}.headers.{name}", "a header name is ASCII, and neither has a line break")
    return dict(raw)


def _gauge(table: Mapping[str, Any], key: str, source: str, event_types: Mapping[str, EventType]) -> GaugeRules:
    raw = table.get("levels", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(source, f"{key}.levels", 'expected a table of threshold = "level"')
    levels = dict(DEFAULT_GAUGE_LEVELS)
    for threshold, level in raw.items():
        if threshold not in THRESHOLDS:
            raise ConfigError(source, f"{key}.levels.{threshold}", f"unknown threshold (known: {', '.join(THRESHOLDS)})")
        if level not in LEVELS:
            raise ConfigError(source, f"{key}.levels.{threshold}", f"unknown level {level!r} (known: {', '.join(LEVELS)})")
        levels[threshold] = level
    for threshold, level in levels.items():
        et = event_types.get(THRESHOLD_EVENT[threshold])
        if et is None:
            raise ConfigError(source, f"{key}.kind", f"a gauge needs the event type {THRESHOLD_EVENT[threshold]!r} "
                                                     "([event_types])")
        if level not in {lv.value for lv in et.levels}:
            raise ConfigError(source, f"{key}.levels.{threshold}", f"{et.name_zh} has no {level} level")
    retention = _number(table, "retention_s", key, source, DEFAULT_RETENTION_S, minimum=MIN_RETENTION_S - 1)
    return GaugeRules(levels=levels, clear_after_s=_number(table, "clear_after_s", key, source, DEFAULT_CLEAR_AFTER_S),
                      retention_s=retention)


_GAUGE_KEYS = ("levels", "clear_after_s", "retention_s")


def _entry(table: Mapping[str, Any], key: str, source: str, auto_issue: frozenset[str],
           event_types: Mapping[str, EventType]) -> FeedConfig:
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(source, f"{key}.kind", f"expected one of {', '.join(KINDS)} (a polled feed), got {kind!r}")
    observations = kind == "observations"
    for name in _GAUGE_KEYS:
        if name in table and not observations:
            raise ConfigError(source, f"{key}.{name}", "only an observations feed has it")
    if observations and "auto_issue" in table:
        raise ConfigError(source, f"{key}.auto_issue", "a gauge's warning is a draft that waits for approval as "
                                                       "[policy.<level>] approval says; it has no auto_issue")
    interval = _number(table, "interval_s", key, source, DEFAULT_INTERVAL_S)
    if interval < MIN_INTERVAL_S:
        raise ConfigError(source, f"{key}.interval_s", f"at least {MIN_INTERVAL_S:g} s between polls, got {interval:g}")
    stale = _number(table, "stale_after_s", key, source, max(DEFAULT_STALE_AFTER_S, 3 * interval))
    if stale <= interval:
        raise ConfigError(source, f"{key}.stale_after_s", f"must be longer than interval_s ({interval:g})")
    max_bytes = table.get("max_bytes", DEFAULT_MAX_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 1024 <= max_bytes <= 64 * 1024 * 1024:
        raise ConfigError(source, f"{key}.max_bytes", f"expected a whole number of bytes, 1024 … 64 MiB, got {max_bytes!r}")
    return FeedConfig(
        name=str(table["name"]), kind=str(kind), url=_url(table, key, source), interval_s=interval,
        auto_issue=auto_issue, headers=_headers(table, key, source), stale_after_s=stale,
        timeout_s=_number(table, "timeout_s", key, source, DEFAULT_TIMEOUT_S), max_bytes=max_bytes,
        gauge=_gauge(table, key, source, event_types) if observations else None)


def load_feed_configs(raw: Any, source: str = "<config>", *,
                      event_types: Mapping[str, EventType] | None = None) -> tuple[FeedConfig, ...]:
    """The polled feeds of `[[feeds]]`: the tables with a `kind` or a `url` (the others are push-only feeds: their
    token pushes to POST /api/v1/cap). `event_types` are those of the configuration (a gauge's levels are checked
    against the event type each threshold drafts; the built-in ones when not given)."""
    types = default_event_types() if event_types is None else event_types
    policies = load_feeds(raw, source)  # name, auto_issue, duplicates and unknown keys, as for every feed
    out = []
    for i, table in enumerate(raw):
        if "kind" not in table and "url" not in table:
            for name in (*_GAUGE_KEYS, "interval_s", "headers", "stale_after_s", "timeout_s", "max_bytes"):
                if name in table:
                    raise ConfigError(source, f"feeds[{i}].{name}", "only a polled feed (with kind and url) has it")
            continue
        name = str(table["name"])
        out.append(_entry(table, f"feeds[{i}]", source, policies[name].auto_issue, types))
    return tuple(out)
