"""SimulatorChannel: accepts everything at once and later produces realistic receipts and replies (demo, benchmarks)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from channels.base import check_batch
from warning.channel import (
    AddressKind,
    Audience,
    ChannelCapabilities,
    ChannelKind,
    InboundMessage,
    Outbound,
    ReceiptEvent,
    ReceiptLevel,
    SendResult,
)
from warning.delivery import DeliveryState
from warning.errors import DeliveryError, Reason

logger = logging.getLogger(__name__)
S = DeliveryState
SimEvent = ReceiptEvent | InboundMessage
#: What people reply: mostly acknowledgments, some field reports (回执内容).
DEFAULT_REPLIES = ("1", "1", "收到", "确认", "已收到。", "ok", "好的，已通知组里群众转移", "我们这里雨很大，桥被冲断了")
_ADDRESS_KIND = {ChannelKind.SMS: AddressKind.E164, ChannelKind.VOICE: AddressKind.E164,
                 ChannelKind.ESCREEN: AddressKind.URL, ChannelKind.BROADCAST: AddressKind.AREA_CODE}


class SimClock(Protocol):
    """The part of the service clock the simulator needs."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How simulated recipients behave; seeded, so a run can be repeated."""

    delay_s: float = 2.0  # mean time from acceptance to the delivery receipt
    failure_rate: float = 0.02  # share reported undelivered (SMS) / failed (calls)
    reply_share: float = 0.3  # share who reply (SMS) or press 1 (voice)
    reply_delay_s: float = 30.0  # mean time from delivery to the reply
    replies: tuple[str, ...] = DEFAULT_REPLIES
    seed: int = 0


class SimulatorChannel:
    """A channel that sends nothing: every Outbound is accepted, receipts come later on `events()`."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.SMS, audience=Audience.INDIVIDUAL, max_batch=100, max_per_s=1000.0, max_body_chars=None,
        receipts=ReceiptLevel.DELIVERED, acks=True, address_kind=AddressKind.E164,
    )

    def __init__(self, *, name: str, clock: SimClock, kind: str = "sms", behaviour: Behaviour | None = None,
                 max_batch: int | None = None, max_per_s: float | None = None,
                 invalid_addresses: frozenset[str] = frozenset()) -> None:
        self.name = name
        self._clock = clock
        self.behaviour = behaviour or Behaviour()
        self._rng = random.Random(self.behaviour.seed)
        self._seq = itertools.count(1)
        self._due: list[tuple[float, int, SimEvent]] = []
        self._wake = asyncio.Event()
        self._invalid = invalid_addresses
        channel_kind = ChannelKind(kind)
        base = type(self).capabilities
        self.capabilities = replace(
            base, kind=channel_kind, address_kind=_ADDRESS_KIND[channel_kind],
            audience=Audience.AREA if channel_kind is ChannelKind.BROADCAST else Audience.INDIVIDUAL,
            max_batch=max_batch or base.max_batch, max_per_s=max_per_s if max_per_s is not None else base.max_per_s,
            acks=channel_kind in (ChannelKind.SMS, ChannelKind.VOICE, ChannelKind.ESCREEN))
        self.sent: list[Outbound] = []

    def __repr__(self) -> str:
        return f"SimulatorChannel(name={self.name!r}, kind={self.capabilities.kind.value!r})"

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """Accept each Outbound (unless its address is listed invalid) and schedule its receipts."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        results = []
        for out in batch:
            if out.address in self._invalid:
                results.append(SendResult.failed(out.delivery_id, DeliveryError(
                    Reason.INVALID_ADDRESS, False, f"{self.name}: simulated invalid address")))
                continue
            ref = f"SIM{next(self._seq):010d}"
            self.sent.append(out)
            self._plan(out, ref)
            results.append(SendResult.accepted(out.delivery_id, ref))
        self._wake.set()
        return results

    def _plan(self, out: Outbound, ref: str) -> None:
        b, rng, kind = self.behaviour, self._rng, self.capabilities.kind
        delivered_after = rng.expovariate(1 / b.delay_s) if b.delay_s > 0 else 0.0
        if kind is ChannelKind.SMS:
            self._at(delivered_after * 0.3, self._event(out, ref, S.SENT, "sent"))
        if rng.random() < b.failure_rate:
            state, status, code = ((S.UNDELIVERED, "undelivered", "30003") if kind is ChannelKind.SMS
                                   else (S.FAILED, "failed", "device_offline"))
            self._at(delivered_after, self._event(out, ref, state, status, error_code=code))
            return
        self._at(delivered_after, self._event(out, ref, S.DELIVERED, "delivered"))
        if b.reply_share <= 0 or rng.random() >= b.reply_share or not self.capabilities.acks:
            return
        reply_after = delivered_after + (rng.expovariate(1 / b.reply_delay_s) if b.reply_delay_s > 0 else 0.0)
        if kind is ChannelKind.SMS:
            self._at(reply_after, InboundMessage(channel=self.name, sender=out.address, to="", text=rng.choice(b.replies),
                                                 provider_ref=f"SIMMO{next(self._seq):010d}",
                                                 at=self._clock.now() + timedelta(seconds=reply_after)))
        else:
            self._at(reply_after, self._event(out, ref, S.ACKNOWLEDGED, "digits:1" if kind is ChannelKind.VOICE
                                              else "confirmed", ack=True, digits="1" if kind is ChannelKind.VOICE
                                              else None, after_s=reply_after))

    def _event(self, out: Outbound, ref: str, state: DeliveryState, raw: str, *, error_code: str | None = None,
               ack: bool = False, digits: str | None = None, after_s: float = 0.0) -> ReceiptEvent:
        return ReceiptEvent(channel=self.name, provider_ref=ref, delivery_id=out.delivery_id, state=state,
                            at=self._clock.now() + timedelta(seconds=after_s), error_code=error_code, raw_status=raw,
                            ack=ack, digits=digits)

    def _at(self, after_s: float, event: SimEvent) -> None:
        heapq.heappush(self._due, (self._clock.monotonic() + after_s, next(self._seq), event))

    @property
    def pending(self) -> int:
        """Receipts and replies not yet due."""
        return len(self._due)

    def pop_due(self) -> list[SimEvent]:
        """Every event due by now, in time order (for a caller that drives time itself)."""
        now, out = self._clock.monotonic(), []
        while self._due and self._due[0][0] <= now:
            out.append(heapq.heappop(self._due)[2])
        return out

    async def events(self) -> AsyncIterator[SimEvent]:
        """Receipts and replies as they fall due by the injected clock; runs until cancelled."""
        while True:
            due = self.pop_due()
            for event in due:
                yield event
            if due:
                continue
            self._wake.clear()
            if not self._due:
                await self._wake.wait()
                continue
            sleeper = asyncio.ensure_future(self._clock.sleep(self._due[0][0] - self._clock.monotonic()))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A simulated callback ({d, ref, status}) as a ReceiptEvent; never raises."""
        try:
            state = DeliveryState(params.get("status", ""))
        except ValueError:
            return None
        if state not in (S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED, S.ACKNOWLEDGED):
            return None
        return ReceiptEvent(channel=self.name, provider_ref=params.get("ref") or None,
                            delivery_id=params.get("d") or None, state=state, at=None, error_code=None,
                            raw_status=state.value, ack=state is S.ACKNOWLEDGED)

    async def aclose(self) -> None:
        """Forget what is still scheduled."""
        self._due.clear()
        self._wake.set()
