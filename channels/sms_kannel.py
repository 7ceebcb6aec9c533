"""KannelSmsChannel: SMS through Kannel's smsbox sendsms, DLRs carrying our delivery id, and MO replies."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlencode

import aiohttp

from channels.base import check_batch, classify_status, map_errors, redact, send_one
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
from warning.sms_text import is_gsm7  # the one GSM-7 table, shared with the message renderer

logger = logging.getLogger(__name__)
S = DeliveryState

DLR_PATH = "/hooks/kannel/dlr"
#: 1 delivered + 2 undelivered + 4 buffered + 8 SMSC ack + 16 SMSC reject (Kannel user guide, dlr-mask)
DLR_MASK_ALL = 31
DEFAULT_MAX_PER_S = 50.0
DEFAULT_TIMEOUT_S = 10.0
#: Kannel's own limit is max-messages parts per sendsms-user; 10 parts of 67 UCS-2 characters.
MAX_BODY_CHARS = 670
#: DLR types (the `%d` in the dlr-url) → state. 32 (intermediate) says nothing we track.
DLR_TYPES: Mapping[str, DeliveryState] = {
    "1": S.DELIVERED,  # delivered to the phone
    "2": S.UNDELIVERED,  # not delivered to the phone
    "4": S.SENT,  # queued on the SMSC (buffered)
    "8": S.SENT,  # delivered to the SMSC (SMSC ack)
    "16": S.FAILED,  # not delivered to the SMSC (SMSC reject)
}
#: The dlr-url Kannel calls back: our id in `ref`, then Kannel's escape codes (reference/kannel.md).
DLR_QUERY = "type=%d&from=%p&to=%P&ts=%T&answer=%A&fid=%F&smsc=%i"
_SMPP_ERR = re.compile(r"\berr:(\w+)")



def dlr_url(public_url: str, delivery_id: str, *, channel: str, secret: str | None = None) -> str:
    """The dlr-url for one message: our ids first (Kannel's DLR `%I` is not the MT's id), then the escape codes.

    Kannel has no signature scheme: `secret` (the service's `[hooks] kannel_secret`) rides in the URL as `k`.
    """
    ours = {"c": channel, "ref": delivery_id, **({"k": secret} if secret else {})}
    return f"{public_url.rstrip('/')}{DLR_PATH}?{urlencode(ours)}&{DLR_QUERY}"


def parse_dlr(channel: str, params: Mapping[str, str]) -> ReceiptEvent | None:
    """A DLR callback as a ReceiptEvent; None for types we do not track or missing parameters."""
    kind = (params.get("type") or "").strip()
    state = DLR_TYPES.get(kind)
    if state is None:
        if kind and kind != "32":
            logger.warning("%s: unknown Kannel DLR type %r ignored", channel, kind[:20])
        return None
    ref = params.get("ref") or None
    answer = params.get("answer") or ""
    error = None
    if state in (S.FAILED, S.UNDELIVERED):
        found = _SMPP_ERR.search(answer)
        error = found.group(1) if found else f"dlr{kind}"
    ts = params.get("ts") or ""
    at = datetime.fromtimestamp(int(ts), UTC) if ts.isdigit() and len(ts) <= 11 else None
    return ReceiptEvent(channel=channel, provider_ref=ref, delivery_id=ref, state=state, at=at, error_code=error,
                        raw_status=f"dlr{kind}" + (f":{answer[:60]}" if answer else ""))


def parse_mo(channel: str, params: Mapping[str, str]) -> InboundMessage | None:
    """An MO (reply) from the sms-service get-url (from, to, text, ts, id) as an InboundMessage.

    Needs `mo-recode = true` in smsbox, so UCS-2 replies arrive as UTF-8 text.
    """
    sender, text = params.get("from"), params.get("text")
    if not sender or text is None:
        return None
    ts = params.get("ts") or ""
    at = datetime.fromtimestamp(int(ts), UTC) if ts.isdigit() and len(ts) <= 11 else None
    return InboundMessage(channel=channel, sender=sender, to=params.get("to") or "", text=text,
                          provider_ref=params.get("id") or None, at=at)


class KannelSmsChannel:
    """SMS through a Kannel smsbox: one sendsms GET per message, our delivery id in the dlr-url."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.SMS, audience=Audience.INDIVIDUAL, max_batch=1, max_per_s=DEFAULT_MAX_PER_S,
        max_body_chars=MAX_BODY_CHARS, receipts=ReceiptLevel.DELIVERED, acks=True, address_kind=AddressKind.E164,
    )

    def __init__(self, *, name: str, http: aiohttp.ClientSession, sendsms_url: str, username: str, password: str,
                 public_url: str, from_: str | None = None, smsc: str | None = None, dlr_mask: int = DLR_MASK_ALL,
                 max_per_s: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 callback_secret: str | None = None) -> None:
        self.name = name
        self._callback_secret = callback_secret
        self._http = http
        self._url = sendsms_url
        self._username, self._password = username, password
        self._public_url = public_url
        self._fixed = {k: v for k, v in (("from", from_), ("smsc", smsc)) if v}
        self._dlr_mask = dlr_mask
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        if max_per_s is not None:
            self.capabilities = replace(type(self).capabilities, max_per_s=max_per_s)

    def __repr__(self) -> str:
        return f"KannelSmsChannel(name={self.name!r}, sendsms_url={redact(self._url)!r})"

    def query(self, out: Outbound) -> dict[str, str]:
        """The sendsms parameters for one message (UCS-2 with UTF-8 input for anything outside GSM-7)."""
        params = {"username": self._username, "password": self._password, "to": out.address.lstrip("+"),
                  "text": out.body, "charset": "UTF-8", "coding": "0" if is_gsm7(out.body) else "2",
                  **self._fixed}
        if self._dlr_mask:
            params["dlr-mask"] = str(self._dlr_mask)
            params["dlr-url"] = dlr_url(self._public_url, out.delivery_id, channel=self.name,
                                        secret=self._callback_secret)
        return params

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """sendsms per Outbound; 202 "0: Accepted" and "3: Queued" are accepted (provider ref = our delivery id)."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        return [await send_one(out, partial(self._sendsms, out)) for out in batch]

    async def _sendsms(self, out: Outbound) -> str:
        with map_errors("kannel sendsms"):
            async with self._http.get(self._url, params=self.query(out), timeout=self._timeout) as resp:
                text = (await resp.text(errors="replace")).strip()[:200]
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        detail = redact(f"kannel HTTP {status}: {text}", self._password, self._username)
        error = classify_status(status, retry_after, detail=detail)
        if error is not None:
            if status == 400 and "receiver" in text.lower():
                raise DeliveryError(Reason.INVALID_ADDRESS, False, detail)
            raise error
        if text.startswith("3:"):
            # No SMSC connected: Kannel keeps the message and sends it when one connects. Sending it
            # again would deliver it twice, so it counts as accepted; the DLRs tell the rest.
            logger.warning("%s: %s (delivery %s)", self.name, text, out.delivery_id)
        elif not text.startswith("0:"):
            raise DeliveryError(Reason.PROVIDER_REJECTED, False, detail)
        return out.delivery_id

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A DLR callback as a ReceiptEvent; never raises."""
        try:
            return parse_dlr(self.name, params)
        except Exception:  # total by contract
            logger.warning("%s: unreadable DLR ignored", self.name, exc_info=True)
            return None

    def parse_inbound(self, params: Mapping[str, str]) -> InboundMessage | None:
        """An MO callback (a reply) as an InboundMessage; never raises."""
        try:
            return parse_mo(self.name, params)
        except Exception:
            logger.warning("%s: unreadable MO ignored", self.name, exc_info=True)
            return None

    async def aclose(self) -> None:
        """Nothing of our own to close: the HTTP session is borrowed."""
