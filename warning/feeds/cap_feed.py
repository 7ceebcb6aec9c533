"""A polled CAP feed: an Atom/RSS index of CAP links (`atom`) or CAP documents themselves (`cap`). Every new alert
goes through the same ingest as a pushed one (dedup by sender + identifier, approval, same-sender follow-ups), once
it is found to be ours: an event type we know, an area that touches the county or the registry's extent."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from warning.cap import parse_cap
from warning.errors import ApiError, CapParseError
from warning.feeds.area import Box, event_reason, in_county, in_extent, outside_reason
from warning.feeds.config import FeedConfig
from warning.feeds.fetch import FetchError, fetch
from warning.feeds.health import FeedHealth
from warning.feeds.index import parse_index, split_alerts
from warning.lifecycle import Actor, Unfinished, WarningService
from warning.model import EarlyWarning, MsgType
from warning.reference import EventType
from warning.warning_store import WarningStore

logger = logging.getLogger(__name__)
#: how an ingest answer is counted
HELD_STATES = ("pending_approval",)
#: the lifecycle's answer when a change kept losing its compare-and-set: nothing was decided, so try again
BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of one entry: issued, held or skipped (with why), and the warning's id when there is one."""

    entry: str
    outcome: str
    warning_id: str | None = None
    reason: str = ""


class CapFeed:
    """Takes one fetched document of an `atom` or `cap` feed: the entries not seen before, each once."""

    def __init__(self, config: FeedConfig, *, http: aiohttp.ClientSession, lifecycle: WarningService,
                 warnings: WarningStore, health: FeedHealth, event_types: dict[str, EventType], county: str,
                 extent: Callable[[], Awaitable[Box | None]]) -> None:
        self.config, self.http, self.lifecycle, self.warnings = config, http, lifecycle, warnings
        self.health, self.event_types, self.county, self.extent = health, event_types, county, extent
        self.actor = Actor(name=config.name, role="feed")

    async def handle(self, body: bytes) -> list[Taken]:
        """Every new entry of the document, taken in order; FeedDocumentError when the document is unusable."""
        if self.config.kind == "atom":
            entries = parse_index(body, self.config.url)
            fresh = set(await self.health.unseen(self.config.name, [e.key for e in entries]))
            out = []
            for entry in (e for e in entries if e.key in fresh):
                data = entry.alert if entry.alert is not None else await self._linked(entry.key, entry.link)
                if data is not None:
                    out.append(await self.take(entry.key, data))
            return out
        documents = {hashlib.sha256(doc).hexdigest()[:32]: doc for doc in split_alerts(body)}
        return [await self.take(key, documents[key])
                for key in await self.health.unseen(self.config.name, list(documents))]

    async def _linked(self, key: str, link: str | None) -> bytes | None:
        """The CAP document an entry links to; None (and retried next poll) when it cannot be fetched now."""
        name = self.config.name
        if link is None:
            await self._skip(key, "link not allowed: an entry's link must be http(s) (or file:, in a file feed)")
            return None
        # the feed's headers (a token) go only to the feed's own host, never to another one an entry links to
        same_host = urlsplit(link).netloc == urlsplit(self.config.url).netloc
        try:
            fetched = await fetch(self.http, link, headers=self.config.headers if same_host else None,
                                  timeout_s=self.config.timeout_s, max_bytes=self.config.max_bytes)
        except FetchError as exc:
            if exc.reason == "too_large":
                await self._skip(key, f"too large: {exc.detail}")
            else:  # the publisher may be busy: the entry stays unseen and is fetched again at the next poll
                await self.health.entry_error(name, f"条目 {key[:80]}: {exc.detail}")
                logger.warning("feed %s: entry %s not fetched: %s", name, key[:80], exc.reason)
            return None
        return fetched.body

    async def _skip(self, key: str, reason: str) -> Taken:
        await self.health.skipped(self.config.name, key, reason)
        await self.health.seen(self.config.name, key)
        return Taken(key, "skipped", reason=reason)

    async def _ours(self, content: EarlyWarning) -> str | None:
        """Why the alert is not ours, or None. A follow-up of a warning we hold is always ours."""
        if content.msg_type in (MsgType.UPDATE, MsgType.CANCEL):
            for ref in content.references:
                if await self.warnings.by_identifier(ref.identifier):
                    return None
        if content.msg_type not in (MsgType.ALERT, MsgType.UPDATE, MsgType.CANCEL):
            return f"not taken in: msgType {content.msg_type.value}"
        reason = event_reason(content)
        if reason is not None or in_county(content, self.county):
            return reason
        extent = await self.extent()  # read only for alerts that have no region code of ours
        return None if extent is not None and in_extent(content, extent) else outside_reason(content)

    async def take(self, key: str, data: bytes) -> Taken:
        """One alert: parsed, checked to be ours, then ingested as a pushed one would be."""
        try:
            content = parse_cap(data, max_bytes=self.config.max_bytes, event_types=self.event_types)
        except CapParseError as exc:
            kind = "unsafe XML" if "unsafe" in str(exc) else "malformed"
            return await self._skip(key, f"{kind}: {exc}")
        await self.health.newest(self.config.name, content.sent)
        reason = await self._ours(content)
        if reason is not None:
            return await self._skip(key, reason)
        try:
            result = await self.lifecycle.ingest(data, self.actor)
        except Unfinished as exc:
            wid, state = exc.record.id, exc.record.state.value
        except ApiError as exc:
            if exc.error == BUSY:  # the warning kept changing under the follow-up: taken again at the next poll
                await self.health.entry_error(self.config.name, f"条目 {key[:80]}: {exc.detail}")
                return Taken(key, "retry", reason=str(exc.detail))
            # expired, no level, another sender's warning, a closed one: not taken, the reason kept
            return await self._skip(key, f"{exc.error}: {exc.detail}")
        else:
            if result.duplicate:
                return await self._skip(key, f"duplicate: already taken in as warning {result.id}")
            if result.id is None or result.state is None:
                return await self._skip(key, f"ignored: {result.note or 'nothing to do'}")
            wid, state = result.id, result.state
        outcome = "held" if state in HELD_STATES else "issued"
        await self.health.count(self.config.name, outcome)
        await self.health.seen(self.config.name, key)
        logger.info("feed %s: %s → warning %s (%s)", self.config.name, content.identifier, wid, state)
        return Taken(key, outcome, wid)
