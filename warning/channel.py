"""The channel port: what an adapter declares, what it is given, what it returns and what it parses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from warning.delivery import DeliveryState
from warning.errors import DeliveryError

#: Where rendered TwiML puts the per-call Gather action URL. The voice adapter replaces it with the
#: escaped URL carrying the delivery id, so the TwiML is rendered once per warning version and
#: language. An entity reference: text that went through autoescaping can never contain it.
GATHER_URL_SLOT = "&ew-gather-url;"


class ChannelKind(StrEnum):
    """The medium; coverage is reported per kind."""

    SMS = "sms"
    VOICE = "voice"
    ESCREEN = "escreen"
    BROADCAST = "broadcast"


class Audience(StrEnum):
    """Whom one Outbound reaches."""

    #: one person (or one device) per Outbound
    INDIVIDUAL = "individual"
    #: one Outbound per area (cell broadcast, a village loudspeaker group)
    AREA = "area"


class ReceiptLevel(StrEnum):
    """The best receipt a provider can report."""

    NONE = "none"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"


class AddressKind(StrEnum):
    """What an Outbound's address is."""

    #: a phone number, +8613812345678
    E164 = "e164"
    #: a device endpoint, https://screen-17.example/push
    URL = "url"
    #: an MQTT topic a device listens on
    MQTT_TOPIC = "mqtt_topic"
    #: an administrative division code (broadcast to an area)
    AREA_CODE = "area_code"


@dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What an adapter can do, declared once per class as data."""

    kind: ChannelKind
    audience: Audience
    max_batch: int  # recipients per send() call (Twilio SMS/voice: 1)
    max_per_s: float  # throughput ceiling the rate limiter enforces, messages per second
    max_body_chars: int | None  # None: not text-limited (voice)
    receipts: ReceiptLevel
    acks: bool  # can carry a human acknowledgment back
    address_kind: AddressKind


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message for one address, already rendered."""

    delivery_id: str
    address: str
    body: str  # rendered text (SMS text, screen text, or the voice script)
    lang: str = "zh-CN"
    #: extra rendered parts by name: "twiml" (voice), "level", "colour", "repeat", "duration_s", "speak_text"
    meta: Mapping[str, str] = field(default_factory=dict)
    #: a per-delivery secret the recipient device echoes back with its acknowledgment
    callback_token: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider's answer for one Outbound: accepted (with its id) or failed (with the reason)."""

    delivery_id: str
    state: DeliveryState  # ACCEPTED or FAILED
    provider_ref: str | None = None
    error: DeliveryError | None = None

    @classmethod
    def accepted(cls, delivery_id: str, provider_ref: str | None) -> SendResult:
        return cls(delivery_id, DeliveryState.ACCEPTED, provider_ref, None)

    @classmethod
    def failed(cls, delivery_id: str, error: DeliveryError) -> SendResult:
        return cls(delivery_id, DeliveryState.FAILED, None, error)

    @property
    def ok(self) -> bool:
        return self.state is DeliveryState.ACCEPTED

    @property
    def retryable(self) -> bool:
        """A failed result the core may try again (a per-recipient transient failure)."""
        return self.error is not None and self.error.retryable


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    """A provider's report about one message, normalised: which delivery, what state, when, why."""

    channel: str  # channel instance name
    provider_ref: str | None  # the provider's id (Twilio MessageSid / CallSid)
    delivery_id: str | None  # ours, when the callback carries it (Kannel dlr-url, Twilio ?d=)
    state: DeliveryState
    at: datetime | None
    error_code: str | None
    raw_status: str
    ack: bool = False  # a human acknowledgment (keypress 1, device confirm)
    digits: str | None = None  # DTMF keys pressed
    #: a failure after acceptance that is worth another try after a pause (voice busy / no-answer)
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A text a person sent us (an SMS reply), normalised from the provider's webhook."""

    channel: str
    sender: str  # as the provider gave it; normalise to E.164 before matching
    to: str
    text: str
    provider_ref: str | None = None
    at: datetime | None = None


@runtime_checkable
class Channel(Protocol):
    """An adapter: sends batches, classifies failures, parses its provider's receipts."""

    name: str  # instance name from config, e.g. "sms-primary"
    capabilities: ChannelCapabilities

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """Send at most max_batch messages; one result per Outbound, in order. A whole-call failure raises DeliveryError."""
        ...

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A callback's parameters as a ReceiptEvent; None for anything unknown. Pure, never raises."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter owns (not the borrowed HTTP session)."""
        ...
