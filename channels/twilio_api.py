"""A thin async client for the two Twilio REST calls we use (Messages, Calls) on a borrowed aiohttp session."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import phonenumbers

from channels.base import classify_status, map_errors, parse_retry_after, redact
from warning.errors import DeliveryError, Reason

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
DEFAULT_TIMEOUT_S = 10.0
# Twilio error codes, https://www.twilio.com/docs/api/errors
INVALID_ADDRESS_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21421, 21614})  # not a valid / not a mobile 'To'
OPTED_OUT_CODES = frozenset({21610})  # the recipient replied STOP
RATE_LIMIT_CODES = frozenset({20429, 14107})  # too many requests / SMS send rate limit exceeded
AUTH_CODES = frozenset({20003, 20005})  # authentication failed / account not active
REJECTED_CODES = frozenset({21408, 21612, 21606, 21212, 21659})  # region not enabled, sender not allowed or invalid


@dataclass(frozen=True, slots=True)
class TwilioResource:
    """What Twilio answered for a created message or call."""

    sid: str
    status: str
    raw: Mapping[str, Any]


def error_from_response(http_status: int, body: bytes, retry_after: str | None) -> DeliveryError:
    """Classify a Twilio error answer by its JSON `code`, falling back to the HTTP status."""
    code: int | None = None
    message = ""
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            raw_code = data.get("code")
            code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else None
            message = str(data.get("message") or "")[:200]
    except (ValueError, UnicodeDecodeError):
        pass
    detail = f"twilio {code} (HTTP {http_status})" + (f": {message}" if message else "") if code else f"HTTP {http_status}"
    if code in INVALID_ADDRESS_CODES:
        return DeliveryError(Reason.INVALID_ADDRESS, False, detail)
    if code in OPTED_OUT_CODES:
        return DeliveryError(Reason.OPTED_OUT, False, detail)
    if code in RATE_LIMIT_CODES or http_status == 429:
        wait = parse_retry_after(retry_after)
        return DeliveryError(Reason.RATE_LIMITED, True, detail, 1.0 if wait is None else wait)
    if code in AUTH_CODES:
        return DeliveryError(Reason.AUTH_ERROR, False, detail)
    if code in REJECTED_CODES and http_status < 500:
        return DeliveryError(Reason.PROVIDER_REJECTED, False, detail)
    found = classify_status(http_status, retry_after, detail=detail)
    return found or DeliveryError(Reason.OTHER, False, detail)


class TwilioApi:
    """Creates messages and calls through any Twilio-compatible REST API; credentials never leave the headers."""

    def __init__(self, *, http: aiohttp.ClientSession, account_sid: str, auth_token: str,
                 api_base: str = DEFAULT_API_BASE, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not account_sid or not auth_token:
            raise ValueError("twilio: account_sid and auth_token are required")
        self._http = http
        self._account_sid = account_sid
        self._auth_token = auth_token
        self.api_base = api_base.rstrip("/")
        base = f"{self.api_base}/{API_VERSION}/Accounts/{account_sid}"
        self._messages_url = f"{base}/Messages.json"
        self._calls_url = f"{base}/Calls.json"
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"TwilioApi(api_base={self.api_base!r}, account_sid={self._account_sid[:6]}***)"

    @property
    def auth_token(self) -> str:
        """The token webhook signatures are checked with (the web layer needs it; never log it)."""
        return self._auth_token

    async def create_message(self, to: str, body: str, *, status_callback: str | None = None,
                             from_: str | None = None, messaging_service_sid: str | None = None,
                             validity_period_s: int | None = None) -> TwilioResource:
        """POST Messages.json: `from_` or `messaging_service_sid`, the body, our status callback."""
        form: dict[str, str] = {"To": to, "Body": body}
        if messaging_service_sid:
            form["MessagingServiceSid"] = messaging_service_sid
        elif from_:
            form["From"] = from_
        else:
            raise ValueError("twilio: from_ or messaging_service_sid is required")
        if status_callback:
            form["StatusCallback"] = status_callback
        if validity_period_s:
            form["ValidityPeriod"] = str(validity_period_s)
        return await self._post(self._messages_url, form, "twilio messages")

    async def create_call(self, to: str, *, from_: str, twiml: str | None = None, url: str | None = None,
                          status_callback: str | None = None, timeout_s: int | None = None,
                          machine_detection: bool = False) -> TwilioResource:
        """POST Calls.json: the TwiML to run (or a URL that returns it) and our status callback for every call event."""
        if (twiml is None) == (url is None):
            raise ValueError("twilio: exactly one of twiml and url")
        pairs: list[tuple[str, str]] = [("To", to), ("From", from_)]
        pairs.append(("Twiml", twiml) if twiml is not None else ("Url", url or ""))
        if status_callback:
            pairs.append(("StatusCallback", status_callback))
            pairs.extend(("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed"))
        if timeout_s:
            pairs.append(("Timeout", str(timeout_s)))
        if machine_detection:
            pairs.append(("MachineDetection", "Enable"))
        return await self._post(self._calls_url, pairs, "twilio calls")

    async def _post(self, url: str, form: Mapping[str, str] | list[tuple[str, str]], what: str) -> TwilioResource:
        data = urlencode(form).encode()
        with map_errors(what):
            async with self._http.post(url, data=data, headers=self._headers, timeout=self._timeout) as resp:
                body = await resp.read()
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        if status >= 300:
            to = dict(form).get("To", "")
            raise self._clean(error_from_response(status, body, retry_after), to)
        try:
            parsed = json.loads(body)
            return TwilioResource(sid=str(parsed["sid"]), status=str(parsed.get("status") or ""), raw=parsed)
        except (ValueError, KeyError, TypeError):
            raise DeliveryError(Reason.OTHER, False, f"{what}: unreadable answer (HTTP {status})") from None

    def _clean(self, err: DeliveryError, to: str = "") -> DeliveryError:
        """The error without our credentials, nor the number (Twilio's 21211 message quotes it; details are shown
        on the dashboard and logged)."""
        detail = redact(err.detail, self._auth_token, self._account_sid, *number_forms(to))
        if detail == err.detail:
            return err
        return DeliveryError(err.reason, err.retryable, detail, err.retry_after_s)


def number_forms(e164: str) -> list[str]:
    """The ways a provider may quote a number in a message, longest first: +8613800138000, 86…, 138…."""
    if not e164:
        return []
    forms = [e164, e164.lstrip("+")]
    try:
        forms.append(phonenumbers.national_significant_number(phonenumbers.parse(e164, None)))
    except phonenumbers.NumberParseException:
        pass
    return [f for f in forms if len(f) >= 6]


def hook_url(public_url: str, path: str, *, channel: str, delivery_id: str) -> str:
    """Our webhook URL for one message: `c` names the channel instance, `d` our delivery id.

    Twilio signs the whole URL, query included, so the webhook can trust both; and because the
    callback carries our own id, a receipt that overtakes the record of the send still finds its delivery.
    """
    return f"{public_url.rstrip('/')}{path}?{urlencode({'c': channel, 'd': delivery_id})}"


def parse_twilio_time(value: str | None) -> datetime | None:
    """Twilio's RFC 2822 `Timestamp` as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
