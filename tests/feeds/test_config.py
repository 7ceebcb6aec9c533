"""`[[feeds]]` of a polled feed: every key checked at start, with the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contacts.store import RedisRegistry
from tests.conftest import make_settings
from warning.bootstrap import build_services
from warning.errors import ConfigError
from warning.feeds.config import DEFAULT_GAUGE_LEVELS, load_feed_configs

ATOM = {"name": "met", "kind": "atom", "url": "https://met.example.cn/cap.atom"}
OBS = {"name": "hydro", "kind": "observations", "url": "file:///var/lib/hydro/latest.json"}


@pytest.mark.parametrize(("entry", "key", "words"), [
    ({**ATOM, "kind": "rss"}, "feeds[0].kind", "atom, cap, observations"),
    ({"name": "met", "url": "https://x.example/a"}, "feeds[0].kind", "a polled feed"),
    ({"name": "met", "kind": "atom"}, "feeds[0].url", "missing"),
    ({**ATOM, "url": "ftp://x.example/a"}, "feeds[0].url", "http(s):// or file://"),
    ({**ATOM, "url": "https://"}, "feeds[0].url", "http(s):// or file://"),
    ({**ATOM, "interval_s": 0}, "feeds[0].interval_s", "above 0"),
    ({**ATOM, "interval_s": 0.5}, "feeds[0].interval_s", "at least 1 s"),
    ({**ATOM, "interval_s": "60"}, "feeds[0].interval_s", "number of seconds"),
    ({**ATOM, "interval_s": True}, "feeds[0].interval_s", "number of seconds"),
    ({**ATOM, "interval_s": 600, "stale_after_s": 300}, "feeds[0].stale_after_s", "longer than interval_s"),
    ({**ATOM, "timeout_s": -1}, "feeds[0].timeout_s", "above 0"),
    ({**ATOM, "max_bytes": 10}, "feeds[0].max_bytes", "1024"),
    ({**ATOM, "headers": {"Authorization": 5}}, "feeds[0].headers", "strings"),
    ({**ATOM, "headers": {"X-Token": "a\r\nInjected: 1"}}, "feeds[0].headers.X-Token", "line break"),
    ({**ATOM, "auto_issue": ["crimson"]}, "feeds[0].auto_issue", "crimson"),
    ({**ATOM, "clear_after_s": 60}, "feeds[0].clear_after_s", "observations"),
    ({**OBS, "auto_issue": ["red"]}, "feeds[0].auto_issue", "waits for approval"),
    ({**OBS, "levels": {"warning_level_m": "purple"}}, "feeds[0].levels.warning_level_m", "unknown level"),
    ({**OBS, "levels": {"flood_m": "red"}}, "feeds[0].levels.flood_m", "unknown threshold"),
    ({**OBS, "retention_s": 3600}, "feeds[0].retention_s", "above"),
    ({"name": "push", "interval_s": 5}, "feeds[0].interval_s", "only a polled feed"),
    ({"name": "met", "uri": "https://x"}, "feeds[0].uri", "unknown key"),
])
def test_bad_feed_entries_are_refused(entry: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_feed_configs([entry], "my.toml")
    assert (err.value.file, err.value.key) == ("my.toml", key) and words in err.value.reason


def test_feed_entries_and_their_defaults() -> None:
    # a push-only feed (no kind, no url) is not polled
    atom, obs = load_feed_configs([{**ATOM, "interval_s": 1, "stale_after_s": 2.5, "auto_issue": ["blue"],
                                    "headers": {"Authorization": "Bearer t0ken-secret-1"}},
                                   {**OBS, "levels": {"warning_level_m": "yellow"}, "clear_after_s": 1800},
                                   {"name": "push", "auto_issue": []}])
    assert (atom.interval_s, atom.stale_after_s, atom.auto_issue, atom.gauge) == (1.0, 2.5, frozenset({"blue"}), None)
    assert "t0ken" not in repr(atom)
    assert obs.gauge is not None and obs.gauge.clear_after_s == 1800 and obs.interval_s == 60
    assert obs.gauge.levels == {**DEFAULT_GAUGE_LEVELS, "warning_level_m": "yellow"}
    assert obs.stale_after_s == 3600 and obs.max_bytes == 1024 * 1024
    masked = load_feed_configs([{**ATOM, "url": "https://user:pw@x.example/a?token=s3cret"}])[0].shown_url
    assert "pw" not in masked and "s3cret" not in masked


async def test_a_bad_polled_feed_stops_the_service_at_start(redis: Any, clock: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, feeds=[{**OBS, "levels": {"guarantee_level_m": "crimson"}}])
    with pytest.raises(ConfigError) as err:
        build_services(settings, redis=redis, clock=clock, directory=RedisRegistry(redis), channels={})
    assert err.value.key == "feeds[0].levels.guarantee_level_m" and "crimson" in err.value.reason
