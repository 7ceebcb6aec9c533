"""The adapter conformance kit: what every Channel must do, checked the same way for each.

- status → (reason, retryable) for every HTTP status class, Retry-After honoured
- no secret in exceptions, results, logs or repr()
- parse_receipt is total: any mapping gives None or a ReceiptEvent, never an exception
- send() refuses more than max_batch and answers one result per Outbound, in order
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from warning.channel import Channel, Outbound, ReceiptEvent, SendResult
from warning.delivery import DeliveryState
from warning.errors import DeliveryError, Reason

SECRET = "s3cr3t-Conformance-Token-9876"
SECRET_USER = "ACconformance-user-4321"

#: HTTP status → (reason, retryable) every HTTP adapter must report (None: accepted).
STATUS_TABLE: dict[int, tuple[Reason, bool] | None] = {
    400: (Reason.CLIENT_ERROR, False), 404: (Reason.CLIENT_ERROR, False), 409: (Reason.CLIENT_ERROR, False),
    422: (Reason.CLIENT_ERROR, False), 401: (Reason.AUTH_ERROR, False), 403: (Reason.AUTH_ERROR, False),
    408: (Reason.TIMEOUT, True), 429: (Reason.RATE_LIMITED, True), 500: (Reason.SERVER_ERROR, True),
    502: (Reason.SERVER_ERROR, True), 503: (Reason.SERVER_ERROR, True), 504: (Reason.SERVER_ERROR, True),
}
RETRY_AFTER = "7"


@dataclass
class Programmable:
    """A provider stand-in for every adapter: answers each request with the programmed status, or hangs."""

    ok_status: int
    ok_body: bytes
    ok_type: str
    status: int | None = None  # None: the ok answer
    hang: bool = False
    seen: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.seen += 1
        body = await request.read()
        if self.hang:
            await self._release.wait()
        if self.status is None:
            return web.Response(status=self.ok_status, body=self.ok_body, content_type=self.ok_type)
        # a careless provider echoes the request back: the adapter must not pass that on
        echo = f"rejected {request.path_qs} {body.decode(errors='replace')} {SECRET} {SECRET_USER}"
        headers = {"Retry-After": RETRY_AFTER} if self.status in (429, 503) else {}
        return web.json_response({"message": echo}, status=self.status, headers=headers)

    def release(self) -> None:
        self._release.set()


@dataclass
class AdapterSpec:
    """How to build one adapter against a base URL, and what its callbacks look like."""

    name: str
    build: Callable[[aiohttp.ClientSession, str], Channel]
    ok_status: int = 201
    ok_body: bytes = b'{"sid": "SM00000000000000000000000000000001", "status": "queued"}'
    ok_type: str = "application/json"
    address: Callable[[str, int], str] = lambda base, i: f"+86138000000{i:02d}"
    receipt_keys: Sequence[str] = ()
    receipt_examples: Sequence[tuple[dict[str, str], DeliveryState | None]] = ()
    http: bool = True

    def outbounds(self, base: str, n: int) -> list[Outbound]:
        return [Outbound(f"d{i}", self.address(base, i), "暴雨红色预警：请立即转移。回复1确认",
                         meta={"level": "red", "twiml": ""}, callback_token="tok") for i in range(n)]


def outcome(results_or_error: Sequence[SendResult] | DeliveryError) -> tuple[Reason, bool, float | None] | None:
    """(reason, retryable, retry_after_s) of a one-message send, whether it raised or returned FAILED; None if ok."""
    if isinstance(results_or_error, DeliveryError):
        err = results_or_error
    else:
        [result] = results_or_error
        if result.ok:
            return None
        assert result.error is not None, "a FAILED result carries its DeliveryError"
        err = result.error
    return err.reason, err.retryable, err.retry_after_s


async def send_one(channel: Channel, out: Outbound) -> Sequence[SendResult] | DeliveryError:
    try:
        return await channel.send([out])
    except DeliveryError as err:
        return err


def assert_no_secret(*texts: Any) -> None:
    for text in texts:
        assert SECRET not in str(text), f"secret leaked in {text!r}"
        assert SECRET_USER not in str(text), f"user id leaked in {text!r}"


def check_receipt(channel: Channel, params: dict[str, str]) -> ReceiptEvent | None:
    result = channel.parse_receipt(params)
    assert result is None or isinstance(result, ReceiptEvent)
    if result is not None:
        assert isinstance(result.state, DeliveryState) and result.channel == channel.name
    return result


def adapter_logs(caplog: Any) -> str:
    """What our code logged (the stand-in server's own access log is not the adapter's)."""
    return "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records
                     if not r.name.startswith("aiohttp."))
