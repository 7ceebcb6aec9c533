"""The level policy ([policy.<level>]): channels per role, approval, ack deadline, escalation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warning.errors import ConfigError

LEVELS = ("blue", "yellow", "orange", "red")
PERSON_KINDS = ("sms", "voice")
AREA_KINDS = ("escreen", "broadcast")
#: the keys of a `[[feeds]]` table the service polls itself, read by warning/feeds/config.py
POLLED_FEED_KEYS = ("kind", "url", "interval_s", "headers", "stale_after_s", "timeout_s", "max_bytes", "levels",
                    "clear_after_s", "retention_s")
#: what an escalation step does when a person has not acknowledged in time
ESCALATION_ACTIONS = ("call", "sms_again", "notify_supervisor", "notify_county_duty")


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """After `after_s` seconds without an acknowledgment, do `action`."""

    after_s: int
    action: str


@dataclass(frozen=True, slots=True)
class LevelPolicy:
    """What one warning level means for who gets what, and who must confirm by when."""

    level: str
    approval: bool
    ack_deadline_s: int
    default_expiry_s: int
    default_channels: tuple[str, ...]
    role_channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    area_channels: tuple[str, ...] = ()
    escalation: tuple[EscalationStep, ...] = ()
    #: an update that changes what people receive or who receives it waits for a second person too
    approve_updates: bool = False

    def channels_for(self, role: str) -> tuple[str, ...]:
        """The channel kinds a person of `role` gets at this level, in order."""
        return self.role_channels.get(role, self.default_channels)


@dataclass(frozen=True, slots=True)
class FeedPolicy:
    """One `[[feeds]]` entry: the levels a feed's warnings are relayed at without a person."""

    name: str
    auto_issue: frozenset[str] = frozenset(LEVELS)


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy of every level, and of every feed."""

    levels: Mapping[str, LevelPolicy]
    feeds: Mapping[str, FeedPolicy] = field(default_factory=dict)

    def for_level(self, level: str) -> LevelPolicy:
        return self.levels[level]

    def needs_approval(self, level: str) -> bool:
        return self.levels[level].approval

    def feed_auto_issue(self, feed: str) -> frozenset[str]:
        """The levels a feed's warnings go out at without a person; a feed with no `[[feeds]]` entry relays
        every level, as an entry without `auto_issue` does (its warnings were approved by their issuer)."""
        entry = self.feeds.get(feed)
        return entry.auto_issue if entry is not None else frozenset(LEVELS)


def _kinds(value: Any, key: str, source: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(source, key, "expected a list of channel kinds")
    for v in value:
        if v not in allowed:
            raise ConfigError(source, key, f"unknown channel kind {v!r} (known: {', '.join(allowed)})")
    return tuple(value)


def _int(table: Mapping[str, Any], name: str, key: str, source: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(source, f"{key}.{name}", f"expected a non-negative integer, got {value!r}")
    return value


def _level(level: str, table: Mapping[str, Any], roles: set[str], source: str) -> LevelPolicy:
    key = f"policy.{level}"
    known = {"approval", "approve_updates", "ack_deadline_s", "default_expiry_s", "channels", "area_channels",
             "escalation"}
    for name in table:
        if name not in known:
            raise ConfigError(source, f"{key}.{name}", f"unknown key (known: {', '.join(sorted(known))})")
    channels = table.get("channels", {})
    if not isinstance(channels, Mapping):
        raise ConfigError(source, f"{key}.channels", "expected a table of role = [channel kinds]")
    role_channels: dict[str, tuple[str, ...]] = {}
    default: tuple[str, ...] = ("sms",)
    for role, kinds in channels.items():
        parsed = _kinds(kinds, f"{key}.channels.{role}", source, PERSON_KINDS)
        if role == "default":
            default = parsed
        elif roles and role not in roles:
            raise ConfigError(source, f"{key}.channels.{role}", f"unknown role (known: {', '.join(sorted(roles))})")
        else:
            role_channels[role] = parsed
    steps = []
    for i, step in enumerate(table.get("escalation", [])):
        skey = f"{key}.escalation[{i}]"
        if not isinstance(step, Mapping) or step.get("action") not in ESCALATION_ACTIONS:
            raise ConfigError(source, skey, f"expected {{after_s, action}} with action one of {ESCALATION_ACTIONS}")
        steps.append(EscalationStep(_int(step, "after_s", skey, source, 0), str(step["action"])))
    if [s.after_s for s in steps] != sorted(s.after_s for s in steps):
        raise ConfigError(source, f"{key}.escalation", "steps must be in order of after_s")
    approval = table.get("approval", level in ("orange", "red"))
    if not isinstance(approval, bool):
        raise ConfigError(source, f"{key}.approval", "expected true or false")
    approve_updates = table.get("approve_updates", approval)
    if not isinstance(approve_updates, bool):
        raise ConfigError(source, f"{key}.approve_updates", "expected true or false")
    return LevelPolicy(
        level=level, approval=approval, approve_updates=approve_updates,
        ack_deadline_s=_int(table, "ack_deadline_s", key, source, 0),
        default_expiry_s=_int(table, "default_expiry_s", key, source, 86400),
        default_channels=default, role_channels=role_channels,
        area_channels=_kinds(table.get("area_channels", []), f"{key}.area_channels", source, AREA_KINDS),
        escalation=tuple(steps),
    )


def load_feeds(raw: Any, source: str = "<config>") -> dict[str, FeedPolicy]:
    """Check the `[[feeds]]` entries (keyed by the feed token's name); a bad entry fails with its key."""
    if not isinstance(raw, list):
        raise ConfigError(source, "feeds", "expected [[feeds]] tables")
    feeds: dict[str, FeedPolicy] = {}
    known = {"name", "auto_issue", *POLLED_FEED_KEYS}
    for i, table in enumerate(raw):
        key = f"feeds[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(source, key, "expected a table")
        for name in table:
            if name not in known:
                raise ConfigError(source, f"{key}.{name}", f"unknown key (known: {', '.join(sorted(known))})")
        feed = table.get("name")
        if not isinstance(feed, str) or not feed:
            raise ConfigError(source, f"{key}.name", "missing (the name of the feed's token)")
        if feed in feeds:
            raise ConfigError(source, f"{key}.name", f"feed {feed!r} is defined twice")
        levels = table.get("auto_issue", list(LEVELS))
        if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
            raise ConfigError(source, f"{key}.auto_issue", "expected a list of levels")
        for level in levels:
            if level not in LEVELS:
                raise ConfigError(source, f"{key}.auto_issue", f"unknown level {level!r} (known: {', '.join(LEVELS)})")
        feeds[feed] = FeedPolicy(feed, frozenset(levels))
    return feeds


def load_policy(section: Mapping[str, Any], *, roles: set[str], source: str = "<config>", feeds: Any = None
                ) -> Policy:
    """Build and check the policy of every level and of every feed; a bad entry fails with its key."""
    levels = {}
    for name in section:
        if name not in LEVELS:
            raise ConfigError(source, f"policy.{name}", f"unknown level (known: {', '.join(LEVELS)})")
    for level in LEVELS:
        table = section.get(level, {})
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"policy.{level}", "expected a table")
        levels[level] = _level(level, table, roles, source)
    return Policy(levels=levels, feeds=load_feeds(feeds, source) if feeds is not None else {})
