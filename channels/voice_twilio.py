"""TwilioVoiceChannel: calls that read the warning twice inside a Gather; call statuses and keypresses as ReceiptEvents."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from xml.sax.saxutils import escape, quoteattr

import aiohttp

from channels.base import check_batch, send_one
from channels.twilio_api import DEFAULT_API_BASE, DEFAULT_TIMEOUT_S, TwilioApi, hook_url, parse_twilio_time
from warning.channel import (
    GATHER_URL_SLOT,
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

logger = logging.getLogger(__name__)
S = DeliveryState

#: One outbound call per second per account by default, https://help.twilio.com/articles/223180028
DEFAULT_MAX_PER_S = 1.0
#: Seconds to let the phone ring before Twilio gives up (no-answer).
DEFAULT_RING_TIMEOUT_S = 45
STATUS_PATH = "/hooks/twilio/status"
GATHER_PATH = "/hooks/twilio/gather"
ACK_DIGIT = "1"
#: <Say> language attribute per message language (Mandarin is cmn-CN for Twilio's voices).
SAY_LANGUAGE = {"zh-CN": "cmn-CN", "en": "en-US"}
_REPLIES = {
    ("zh-CN", True): "已确认收到，谢谢。", ("zh-CN", False): "未确认。如已收到，请按1。",
    ("en", True): "Confirmed. Thank you.", ("en", False): "Not confirmed. Press 1 if you received this warning.",
}

#: Twilio call statuses, https://www.twilio.com/docs/voice/api/call-resource#call-status-values:
#: (state, retryable). busy / no-answer: worth another call after a pause; the core decides.
CALL_STATUS: Mapping[str, tuple[DeliveryState, bool]] = {
    "queued": (S.ACCEPTED, False),
    "initiated": (S.ACCEPTED, False),
    "ringing": (S.SENT, False),
    "in-progress": (S.SENT, False),  # answered; the message is being read
    "answered": (S.SENT, False),
    "completed": (S.DELIVERED, False),  # answered and the message was played
    "busy": (S.FAILED, True),
    "no-answer": (S.FAILED, True),
    "failed": (S.FAILED, False),
    "canceled": (S.FAILED, False),
}


def say_language(lang: str) -> str:
    return SAY_LANGUAGE.get(lang, SAY_LANGUAGE["zh-CN"] if lang.startswith("zh") else "en-US")


def build_twiml(script: str, lang: str, gather_url: str, *, repeat: int = 2) -> str:
    """TwiML that reads `script` `repeat` times inside a one-digit Gather posting to `gather_url`."""
    say = f"<Say language={quoteattr(say_language(lang))}>{escape(script)}</Say>"
    body = '<Pause length="1"/>'.join([say] * max(1, repeat))
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Gather numDigits="1" action={quoteattr(gather_url)}'
            f' method="POST" timeout="8">{body}</Gather></Response>')


def gather_reply(acknowledged: bool, lang: str = "zh-CN") -> str:
    """The TwiML our gather webhook answers with: a short confirmation, or a hint to press 1."""
    key = ("en" if lang.startswith("en") else "zh-CN", acknowledged)
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Say language="{say_language(key[0])}">'
            f"{escape(_REPLIES[key])}</Say></Response>")


def parse_call_event(channel: str, params: Mapping[str, str]) -> ReceiptEvent | None:
    """A call status callback or a Gather post as a ReceiptEvent; None when unknown."""
    digits = params.get("Digits")
    delivery_id = params.get("d") or None
    ref = params.get("CallSid") or None
    at = parse_twilio_time(params.get("Timestamp"))
    if isinstance(digits, str) and digits:
        pressed = digits.strip()[:8]
        # any keypress proves the call was answered and heard; only 1 is an acknowledgment
        ack = pressed == ACK_DIGIT
        return ReceiptEvent(channel=channel, provider_ref=ref, delivery_id=delivery_id,
                            state=S.ACKNOWLEDGED if ack else S.DELIVERED, at=at, error_code=None,
                            raw_status=f"digits:{pressed}", ack=ack, digits=pressed)
    raw = params.get("CallStatus")
    if not isinstance(raw, str) or not raw:
        return None
    found = CALL_STATUS.get(raw.strip().lower())
    if found is None:
        logger.warning("%s: unknown Twilio call status %r ignored", channel, raw[:40])
        return None
    state, retryable = found
    error = params.get("ErrorCode") or (raw.strip().lower() if state is S.FAILED else None)
    return ReceiptEvent(channel=channel, provider_ref=ref, delivery_id=delivery_id, state=state, at=at,
                        error_code=error, raw_status=raw[:40], retryable=retryable)


class TwilioVoiceChannel:
    """Voice calls through any Twilio-compatible Calls API: the warning read twice, press 1 to confirm."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.VOICE, audience=Audience.INDIVIDUAL, max_batch=1, max_per_s=DEFAULT_MAX_PER_S,
        max_body_chars=None, receipts=ReceiptLevel.DELIVERED, acks=True, address_kind=AddressKind.E164,
    )

    def __init__(self, *, name: str, http: aiohttp.ClientSession, account_sid: str, auth_token: str,
                 public_url: str, from_: str, api_base: str = DEFAULT_API_BASE, max_per_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, ring_timeout_s: int = DEFAULT_RING_TIMEOUT_S,
                 repeat: int = 2) -> None:
        if not from_:
            raise ValueError(f"{name}: from_ (the calling number) is required")
        self.name = name
        self.api = TwilioApi(http=http, account_sid=account_sid, auth_token=auth_token, api_base=api_base,
                             timeout_s=timeout_s)
        self._from, self._public_url = from_, public_url
        self._ring_timeout_s, self._repeat = ring_timeout_s, repeat
        if max_per_s is not None:
            self.capabilities = replace(type(self).capabilities, max_per_s=max_per_s)

    def __repr__(self) -> str:
        return f"TwilioVoiceChannel(name={self.name!r}, api={self.api!r})"

    def twiml_for(self, out: Outbound) -> str:
        """The call's TwiML: the rendered template from meta["twiml"] with our Gather URL, or one built from the script."""
        gather = hook_url(self._public_url, GATHER_PATH, channel=self.name, delivery_id=out.delivery_id)
        rendered = out.meta.get("twiml")
        if rendered:
            return rendered.replace(GATHER_URL_SLOT, escape(gather, {'"': "&quot;"}))
        return build_twiml(out.body, out.lang, gather, repeat=self._repeat)

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """Place one call per Outbound; recipient errors become FAILED results."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        return [await send_one(out, partial(self._call, out)) for out in batch]

    async def _call(self, out: Outbound) -> str:
        callback = hook_url(self._public_url, STATUS_PATH, channel=self.name, delivery_id=out.delivery_id)
        created = await self.api.create_call(out.address, from_=self._from, twiml=self.twiml_for(out),
                                             status_callback=callback, timeout_s=self._ring_timeout_s)
        return created.sid

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A call status callback or a Gather keypress as a ReceiptEvent; never raises."""
        try:
            return parse_call_event(self.name, params)
        except Exception:  # total by contract
            logger.warning("%s: unreadable call callback ignored", self.name, exc_info=True)
            return None

    async def aclose(self) -> None:
        """Nothing of our own to close: the HTTP session is borrowed."""
