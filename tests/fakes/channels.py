"""Fakes of the Channel port for core tests: a recording channel, and one that fails on a script."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from warning.channel import (
    AddressKind,
    Audience,
    ChannelCapabilities,
    ChannelKind,
    Outbound,
    ReceiptEvent,
    ReceiptLevel,
    SendResult,
)
from warning.delivery import DeliveryState
from warning.errors import DeliveryError


def caps(kind: str, *, max_batch: int = 50, max_per_s: float = 10_000.0) -> ChannelCapabilities:
    area = kind in ("escreen", "broadcast")
    return ChannelCapabilities(
        kind=ChannelKind(kind), audience=Audience.INDIVIDUAL, max_batch=max_batch, max_per_s=max_per_s,
        max_body_chars=None, receipts=ReceiptLevel.DELIVERED, acks=not area,
        address_kind=AddressKind.URL if area else AddressKind.E164,
    )


class RecordingChannel:
    """Accepts everything and remembers each Outbound; `faults[address]` lists errors to raise per attempt."""

    def __init__(self, name: str, kind: str, *, max_batch: int = 50, max_per_s: float = 10_000.0) -> None:
        self.name = name
        self.capabilities = caps(kind, max_batch=max_batch, max_per_s=max_per_s)
        self.sent: list[Outbound] = []
        self.batches: list[int] = []
        self.faults: dict[str, list[DeliveryError | None]] = {}
        self.down = False
        #: time a send takes, as a provider's HTTP round trip would (races with the warning's changes need it)
        self.delay_s = 0.0
        #: when set, a send waits for it: the test acts while the messages are in flight
        self.gate: asyncio.Event | None = None
        self._ids = itertools.count(1)

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        assert len(batch) <= self.capabilities.max_batch
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            from warning.errors import Reason

            raise DeliveryError(Reason.SERVER_ERROR, True, "503 from provider")
        self.batches.append(len(batch))
        out = []
        for o in batch:
            script = self.faults.get(o.address)
            fault = script.pop(0) if script else None
            if fault is not None:
                out.append(SendResult(o.delivery_id, DeliveryState.FAILED, error=fault))
                continue
            self.sent.append(o)
            out.append(SendResult(o.delivery_id, DeliveryState.ACCEPTED, provider_ref=f"{self.name}-{next(self._ids)}"))
        return out

    def parse_receipt(self, params: object) -> ReceiptEvent | None:
        return None

    async def aclose(self) -> None:
        return None

    def addresses(self) -> list[str]:
        return [o.address for o in self.sent]
