"""The two-person rule has no side doors: updates, the version under review, feeds as tokens, CAP follow-ups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contacts.store import RedisRegistry
from tests.conftest import make_settings
from warning.bootstrap import build_services
from warning.errors import ConfigError
from warning.policy import load_feeds, load_policy


# ---- configuration --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("feeds", "key"), [
    ([{"name": "a", "auto_issue": ["purple"]}], "feeds[0].auto_issue"),
    ([{"name": "a", "auto_issue": "red"}], "feeds[0].auto_issue"),
    ([{"auto_issue": []}], "feeds[0].name"),
    ([{"name": "a"}, {"name": "a"}], "feeds[1].name"),
    ([{"name": "a", "url": "http://x"}], "feeds[0].url"),
    (["a"], "feeds[0]"),
    ({"name": "a"}, "feeds"),
])
def test_feeds_are_checked_at_start(feeds: Any, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_feeds(feeds, "my.toml")
    assert err.value.file == "my.toml" and err.value.key == key


def test_approve_updates_defaults_to_approval_and_is_checked() -> None:
    policy = load_policy({"yellow": {"approval": True}}, roles=set())
    assert [policy.for_level(lv).approve_updates for lv in ("blue", "yellow", "orange", "red")] == [
        False, True, True, True]
    assert load_policy({"red": {"approve_updates": False}}, roles=set()).for_level("red").approve_updates is False
    with pytest.raises(ConfigError) as err:
        load_policy({"red": {"approve_updates": "yes"}}, roles=set(), source="my.toml")
    assert err.value.key == "policy.red.approve_updates"
    assert load_feeds([{"name": "a"}])["a"].auto_issue == frozenset({"blue", "yellow", "orange", "red"})


async def test_a_bad_feeds_entry_stops_the_service_at_start(redis: Any, clock: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, feeds=[{"name": "cma", "auto_issue": ["red", "crimson"]}])
    with pytest.raises(ConfigError) as err:  # the services every command builds at start
        build_services(settings, redis=redis, clock=clock, directory=RedisRegistry(redis), channels={})
    assert err.value.key == "feeds[0].auto_issue" and "crimson" in err.value.reason
