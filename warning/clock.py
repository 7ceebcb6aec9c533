"""Time as a port: the only module that reads the real clock or sleeps."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where every component gets the time and waits."""

    def now(self) -> datetime: ...  # timezone-aware UTC, always

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told; pending sleeps wake when time passes their end."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._mono]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    def set(self, when: datetime) -> None:
        """Jump to an absolute time (forward only)."""
        self.advance(max(0.0, (when - self._now).total_seconds()))

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)
