"""TwilioSmsChannel: SMS through the Messages API, and Twilio's message status callbacks as ReceiptEvents."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

import aiohttp

from channels.base import check_batch, send_one
from channels.twilio_api import DEFAULT_API_BASE, DEFAULT_TIMEOUT_S, TwilioApi, hook_url, parse_twilio_time
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

logger = logging.getLogger(__name__)
S = DeliveryState

#: Twilio's limit on a message body, https://www.twilio.com/docs/messaging/api/message-resource
MAX_SMS_BODY_CHARS = 1600
#: One message segment per second per long code, https://help.twilio.com/articles/115002943027
DEFAULT_MAX_PER_S = 1.0
STATUS_PATH = "/hooks/twilio/status"

#: Twilio message statuses, https://www.twilio.com/docs/messaging/api/message-resource#message-status-values.
#: None: not about an outbound message's fate (inbound ones).
MESSAGE_STATUS: Mapping[str, DeliveryState | None] = {
    "queued": S.ACCEPTED,
    "accepted": S.ACCEPTED,
    "scheduled": S.ACCEPTED,
    "sending": S.ACCEPTED,
    "sent": S.SENT,
    # some segments delivered, not all: handed to the network, not proven read in full
    "partially_delivered": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
    # only a scheduled message can be canceled, and then it never went out
    "canceled": S.FAILED,
    "receiving": None,
    "received": None,
}


def _one(params: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def parse_message_status(channel: str, params: Mapping[str, str]) -> ReceiptEvent | None:
    """A message status callback (MessageStatus / SmsStatus) as a ReceiptEvent; None when unknown."""
    raw = _one(params, "MessageStatus", "SmsStatus")
    if raw is None:
        return None
    state = MESSAGE_STATUS.get(raw.strip().lower())
    if state is None:
        if raw.strip().lower() not in MESSAGE_STATUS:
            logger.warning("%s: unknown Twilio message status %r ignored", channel, raw[:40])
        return None
    return ReceiptEvent(
        channel=channel,
        provider_ref=_one(params, "MessageSid", "SmsSid"),
        delivery_id=_one(params, "d"),
        state=state,
        at=parse_twilio_time(_one(params, "Timestamp")),
        error_code=_one(params, "ErrorCode"),
        raw_status=raw[:40],
    )


def parse_inbound_sms(channel: str, params: Mapping[str, str]) -> InboundMessage | None:
    """An inbound SMS webhook (From, To, Body, MessageSid) as an InboundMessage; None when it is not one."""
    sender, body = _one(params, "From"), params.get("Body")
    if sender is None or not isinstance(body, str):
        return None
    return InboundMessage(channel=channel, sender=sender, to=_one(params, "To") or "", text=body,
                          provider_ref=_one(params, "MessageSid", "SmsSid"))


class TwilioSmsChannel:
    """SMS through any Twilio-compatible Messages API, one recipient per request."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.SMS, audience=Audience.INDIVIDUAL, max_batch=1, max_per_s=DEFAULT_MAX_PER_S,
        max_body_chars=MAX_SMS_BODY_CHARS, receipts=ReceiptLevel.DELIVERED, acks=True, address_kind=AddressKind.E164,
    )

    def __init__(self, *, name: str, http: aiohttp.ClientSession, account_sid: str, auth_token: str,
                 public_url: str, from_: str | None = None, messaging_service_sid: str | None = None,
                 api_base: str = DEFAULT_API_BASE, max_per_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, validity_period_s: int | None = None) -> None:
        if not (from_ or messaging_service_sid):
            raise ValueError(f"{name}: from_ or messaging_service_sid is required")
        self.name = name
        self.api = TwilioApi(http=http, account_sid=account_sid, auth_token=auth_token, api_base=api_base,
                             timeout_s=timeout_s)
        self._from, self._service = from_, messaging_service_sid
        self._public_url = public_url
        self._validity_period_s = validity_period_s
        if max_per_s is not None:
            self.capabilities = replace(type(self).capabilities, max_per_s=max_per_s)

    def __repr__(self) -> str:
        return f"TwilioSmsChannel(name={self.name!r}, api={self.api!r})"

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """Create one message per Outbound with our status callback; recipient errors become FAILED results."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        return [await send_one(out, partial(self._create, out)) for out in batch]

    async def _create(self, out: Outbound) -> str:
        callback = hook_url(self._public_url, STATUS_PATH, channel=self.name, delivery_id=out.delivery_id)
        created = await self.api.create_message(out.address, out.body, status_callback=callback, from_=self._from,
                                                messaging_service_sid=self._service,
                                                validity_period_s=self._validity_period_s)
        return created.sid

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A status callback (query and form merged) as a ReceiptEvent; never raises."""
        try:
            return parse_message_status(self.name, params)
        except Exception:  # total by contract: a webhook must never answer 500 over a receipt
            logger.warning("%s: unreadable status callback ignored", self.name, exc_info=True)
            return None

    def parse_inbound(self, params: Mapping[str, str]) -> InboundMessage | None:
        """An inbound SMS (a reply) as an InboundMessage; never raises."""
        try:
            return parse_inbound_sms(self.name, params)
        except Exception:
            logger.warning("%s: unreadable inbound SMS ignored", self.name, exc_info=True)
            return None

    async def aclose(self) -> None:
        """Nothing of our own to close: the HTTP session is borrowed."""
