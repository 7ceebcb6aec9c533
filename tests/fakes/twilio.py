"""FakeTwilio: a stand-in HTTP server speaking the Twilio REST protocol (Messages, Calls), with programmable faults.

Use it as an aiohttp app: `server = await aiohttp_server(fake.app)`, then point an adapter's
`api_base` at `str(server.make_url(""))`. Every request is recorded; faults are set per number
or for the next calls; status callbacks are signed exactly as Twilio signs them.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"


@dataclass(frozen=True)
class Fault:
    """One programmed failure: an HTTP status with a Twilio error code, a Retry-After, or a hang."""

    status: int = 503
    code: int | None = None
    message: str = ""
    retry_after: str | None = None
    hang: bool = False  # never answer (until the server closes): the client's timeout fires


INVALID_NUMBER = Fault(400, 21211, "The 'To' number is not a valid phone number.")
OPTED_OUT = Fault(400, 21610, "Attempt to send to unsubscribed recipient")
UNAVAILABLE = Fault(503, None, "Service Unavailable")
HANG = Fault(hang=True)


def rate_limited(retry_after_s: float = 1) -> Fault:
    return Fault(429, 20429, "Too Many Requests", retry_after=f"{retry_after_s:g}")


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    kind: str  # "Messages" or "Calls"
    form: Mapping[str, str]
    multi: tuple[tuple[str, str], ...]
    sid: str | None  # the sid answered, None when a fault answered
    status: int

    @property
    def to(self) -> str:
        return self.form.get("To", "")


@dataclass
class FakeTwilio:
    """The stand-in server. Faults: `fail_number` (every request to it), `fail_next` (the next requests), `script`."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    requests: list[Recorded] = field(default_factory=list)
    _number_faults: dict[str, Fault] = field(default_factory=dict)
    _scripted: dict[str, deque[Fault | None]] = field(default_factory=lambda: defaultdict(deque))
    _next: deque[Fault | None] = field(default_factory=deque)
    _release: asyncio.Event | None = None
    _count: int = 0

    @property
    def app(self) -> web.Application:
        """A fresh aiohttp app serving this fake's state."""
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._calls)
        app.on_shutdown.append(self._on_shutdown)
        return app

    # ---- programming faults ----------------------------------------------------------------
    def fail_number(self, to: str, fault: Fault = INVALID_NUMBER) -> None:
        """Every request to `to` answers with `fault`."""
        self._number_faults[to] = fault

    def script(self, to: str, *faults: Fault | None) -> None:
        """The next requests to `to` answer with these faults in turn (None: succeed), then succeed."""
        self._scripted[to].extend(faults)

    def fail_next(self, *faults: Fault | None) -> None:
        """The next requests, whoever they are for, answer with these faults in turn (None: succeed)."""
        self._next.extend(faults)

    def release_hangs(self) -> None:
        """Let hanging requests finish (with 503) so a test can shut down quickly."""
        if self._release is not None:
            self._release.set()

    # ---- what happened --------------------------------------------------------------------
    def accepted(self, kind: str = "Messages") -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind and r.sid is not None]

    def accepted_count_by_number(self, kind: str = "Messages") -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for r in self.accepted(kind):
            counts[r.to] += 1
        return dict(counts)

    # ---- handlers ---------------------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "Messages", "SM")

    async def _calls(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "Calls", "CA")

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == expected and request.match_info["sid"] == self.account_sid

    def _fault_for(self, to: str) -> Fault | None:
        if to in self._number_faults:
            return self._number_faults[to]
        if self._scripted.get(to):
            return self._scripted[to].popleft()
        if self._next:
            return self._next.popleft()
        return None

    async def _create(self, request: web.Request, kind: str, prefix: str) -> web.StreamResponse:
        self._count += 1
        multi = tuple(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        form = dict(multi)
        if not self._authorised(request):
            self.requests.append(Recorded(kind, form, multi, None, 401))
            return _error(401, 20003, "Authenticate")
        missing = [k for k in ("To",) if not form.get(k)]
        if kind == "Messages" and not (form.get("From") or form.get("MessagingServiceSid")):
            missing.append("From")
        if missing:
            self.requests.append(Recorded(kind, form, multi, None, 400))
            return _error(400, 21604 if "To" in missing else 21603, f"A '{missing[0]}' is required.")
        fault = self._fault_for(form["To"])
        if fault is not None:
            return await self._answer_fault(kind, form, multi, fault)
        sid = prefix + secrets.token_hex(16)
        self.requests.append(Recorded(kind, form, multi, sid, 201))
        return web.json_response(_resource(kind, sid, self.account_sid, form), status=201)

    async def _answer_fault(self, kind: str, form: dict[str, str], multi: tuple[tuple[str, str], ...],
                            fault: Fault) -> web.StreamResponse:
        if fault.hang:
            if self._release is None:
                self._release = asyncio.Event()
            self.requests.append(Recorded(kind, form, multi, None, 0))
            await self._release.wait()
            return _error(503, None, "released")
        self.requests.append(Recorded(kind, form, multi, None, fault.status))
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return _error(fault.status, fault.code, fault.message or "error", headers=headers)

    async def _on_shutdown(self, app: web.Application) -> None:
        self.release_hangs()


def _error(status: int, code: int | None, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"code": code or status, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code or status}"}
    return web.json_response(body, status=status, headers=headers)


def _resource(kind: str, sid: str, account_sid: str, form: Mapping[str, str]) -> dict[str, Any]:
    common = {"sid": sid, "account_sid": account_sid, "to": form.get("To"), "api_version": "2010-04-01",
              "date_created": "Wed, 01 Jul 2026 08:00:00 +0000", "date_updated": "Wed, 01 Jul 2026 08:00:00 +0000",
              "status": "queued", "price": None, "price_unit": "USD",
              "uri": f"/2010-04-01/Accounts/{account_sid}/{kind}/{sid}.json"}
    if kind == "Messages":
        body = form.get("Body", "")
        ucs2 = any(ord(c) > 127 for c in body)
        per = (70, 67) if ucs2 else (160, 153)
        segments = 1 if len(body) <= per[0] else -(-len(body) // per[1])
        return {**common, "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": body, "num_segments": str(segments), "num_media": "0", "direction": "outbound-api",
                "error_code": None, "error_message": None, "date_sent": None}
    return {**common, "from": form.get("From"), "direction": "outbound-api", "answered_by": None,
            "duration": None, "start_time": None, "end_time": None, "parent_call_sid": None}


# ---- signed callbacks -----------------------------------------------------------------------

def sign(url: str, params: Mapping[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for a POST of `params` to `url`."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def message_status_params(sid: str, status: str, *, to: str = "+8613800000001", from_: str = "+15005550006",
                          error_code: str | None = None, account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form of a message status callback, with the fields Twilio sends."""
    params = {"MessageSid": sid, "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": to,
              "From": from_, "AccountSid": account_sid, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    return params


def call_status_params(sid: str, status: str, *, to: str = "+8613800000001", from_: str = "+15005550006",
                       account_sid: str = ACCOUNT_SID, duration_s: int | None = None) -> dict[str, str]:
    """The form of a call status callback."""
    params = {"CallSid": sid, "CallStatus": status, "To": to, "From": from_, "AccountSid": account_sid,
              "ApiVersion": "2010-04-01", "Direction": "outbound-api", "Timestamp": "Wed, 01 Jul 2026 08:00:05 +0000",
              "SequenceNumber": "0", "CallbackSource": "call-progress-events"}
    if duration_s is not None:
        params["CallDuration"] = str(duration_s)
    return params


def gather_params(sid: str, digits: str, *, account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form Twilio posts to a Gather action."""
    return {"CallSid": sid, "Digits": digits, "CallStatus": "in-progress", "AccountSid": account_sid,
            "ApiVersion": "2010-04-01", "FinishedOnKey": ""}


def inbound_sms_params(from_: str, body: str, *, to: str = "+15005550006",
                       account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form of an inbound SMS webhook."""
    sid = "SM" + secrets.token_hex(16)
    return {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": account_sid, "From": from_,
            "To": to, "Body": body, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01"}


def signed(url: str, params: Mapping[str, str], auth_token: str = AUTH_TOKEN) -> tuple[dict[str, str], dict[str, str]]:
    """(form, headers) for posting a callback to `url` as Twilio would, signature included."""
    return dict(params), {"X-Twilio-Signature": sign(url, params, auth_token)}


def status_callbacks(fake: FakeTwilio, statuses: Iterable[str], kind: str = "Messages") -> list[tuple[str, dict[str, str]]]:
    """For every accepted request: (StatusCallback URL, form) per status, in order, ready to sign and post."""
    out: list[tuple[str, dict[str, str]]] = []
    for rec in fake.accepted(kind):
        url = rec.form.get("StatusCallback")
        if not url or rec.sid is None:
            continue
        for status in statuses:
            params = (message_status_params(rec.sid, status, to=rec.to) if kind == "Messages"
                      else call_status_params(rec.sid, status, to=rec.to))
            out.append((url, params))
    return out


async def start(aiohttp_server: Any, fake: FakeTwilio | None = None) -> tuple[FakeTwilio, str]:
    """Serve a FakeTwilio with pytest-aiohttp's `aiohttp_server`; returns it and its api_base."""
    fake = fake or FakeTwilio()
    server = await aiohttp_server(fake.app)
    return fake, str(server.make_url("")).rstrip("/")
