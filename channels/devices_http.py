"""HttpDeviceChannel: e-screens and broadcast terminals that take a JSON POST, and their acknowledgments."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from ipaddress import ip_address

import aiohttp
from yarl import URL

from channels.base import check_batch, classify_status, map_errors, redact
from contacts.addresses import is_local_ip
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
from warning.errors import DeliveryError, Reason

logger = logging.getLogger(__name__)
S = DeliveryState

ACK_PATH = "/hooks/devices/ack"
DEFAULT_MAX_BATCH = 20
DEFAULT_MAX_PER_S = 50.0
DEFAULT_TIMEOUT_S = 5.0
#: How long a screen shows the warning, and how often a loudspeaker repeats it, unless meta says otherwise.
DEFAULT_DURATION_S = {"red": 3600, "orange": 1800, "yellow": 900, "blue": 600}
DEFAULT_REPEAT = {"red": 3, "orange": 2, "yellow": 1, "blue": 1}
#: Device ack statuses → state. Shown/played proves delivery; a button press on the device is a person confirming.
DEVICE_STATUS: Mapping[str, DeliveryState] = {
    "received": S.SENT,
    "displayed": S.DELIVERED,
    "played": S.DELIVERED,
    "confirmed": S.ACKNOWLEDGED,
    "failed": S.FAILED,
}


def parse_device_ack(channel: str, params: Mapping[str, str]) -> ReceiptEvent | None:
    """A device's ack (delivery_id, status, optional at / error) as a ReceiptEvent; None when unknown.

    The per-device `token` is checked by the webhook against the one we sent; parsing does not judge it.
    """
    delivery_id = params.get("delivery_id") or params.get("d")
    raw = (params.get("status") or "").strip().lower()
    state = DEVICE_STATUS.get(raw)
    if not delivery_id or state is None:
        if raw and raw not in DEVICE_STATUS:
            logger.warning("%s: unknown device status %r ignored", channel, raw[:40])
        return None
    at = None
    if params.get("at"):
        try:
            at = datetime.fromisoformat(params["at"])
            at = at if at.tzinfo else None
        except ValueError:
            at = None
    error = (params.get("error") or "device_error")[:60] if state is S.FAILED else None
    return ReceiptEvent(channel=channel, provider_ref=params.get("device_ref") or None, delivery_id=delivery_id,
                        state=state, at=at, error_code=error, raw_status=raw, ack=state is S.ACKNOWLEDGED)


class HttpDeviceChannel:
    """Pushes the warning to each device's own URL as JSON; devices confirm display/playback at our ack hook."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.ESCREEN, audience=Audience.INDIVIDUAL, max_batch=DEFAULT_MAX_BATCH,
        max_per_s=DEFAULT_MAX_PER_S, max_body_chars=None, receipts=ReceiptLevel.DELIVERED, acks=True,
        address_kind=AddressKind.URL,
    )

    def __init__(self, *, name: str, http: aiohttp.ClientSession, public_url: str, kind: str = "escreen",
                 token: str | None = None, max_batch: int | None = None, max_per_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, allow_loopback: bool = False) -> None:
        device_kind = ChannelKind(kind)
        if device_kind not in (ChannelKind.ESCREEN, ChannelKind.BROADCAST):
            raise ValueError(f"{name}: kind must be escreen or broadcast, not {kind!r}")
        self.name = name
        self._http = http
        self._allow_loopback = allow_loopback
        self._ack_url = f"{public_url.rstrip('/')}{ACK_PATH}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.capabilities = replace(
            type(self).capabilities, kind=device_kind,
            max_batch=max_batch or type(self).capabilities.max_batch,
            max_per_s=max_per_s if max_per_s is not None else type(self).capabilities.max_per_s,
            # a loudspeaker is heard by whoever is near it: a device per area
            audience=Audience.AREA if device_kind is ChannelKind.BROADCAST else Audience.INDIVIDUAL,
        )

    def __repr__(self) -> str:
        return f"HttpDeviceChannel(name={self.name!r}, kind={self.capabilities.kind.value!r})"

    def payload(self, out: Outbound) -> dict[str, object]:
        """The JSON a device receives."""
        level = out.meta.get("level", "red")
        body: dict[str, object] = {
            "delivery_id": out.delivery_id, "text": out.body, "lang": out.lang, "level": level,
            "colour": out.meta.get("colour", ""), "msg_type": out.meta.get("msg_type", "alert"),
            "duration_s": int(out.meta.get("duration_s") or DEFAULT_DURATION_S.get(level, 900)),
            "repeat": int(out.meta.get("repeat") or DEFAULT_REPEAT.get(level, 1)),
            "exercise": out.meta.get("exercise") == "1",
            "ack_url": self._ack_url, "ack_token": out.callback_token,
        }
        if self.capabilities.kind is ChannelKind.BROADCAST:
            body["speak_text"] = out.meta.get("speak_text") or out.body
        return body

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """POST to every device at once; each device's failure is its own result (retryable or not)."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        return list(await asyncio.gather(*(self._push(out) for out in batch)))

    async def _push(self, out: Outbound) -> SendResult:
        try:
            ref = await self._post(out)
        except DeliveryError as err:
            return SendResult.failed(out.delivery_id, err)
        return SendResult.accepted(out.delivery_id, ref)

    async def _post(self, out: Outbound) -> str:
        if not out.address.startswith(("http://", "https://")):
            raise DeliveryError(Reason.INVALID_ADDRESS, False, f"{self.name}: device address is not a URL")
        data = json.dumps(self.payload(out), ensure_ascii=False).encode()
        headers = {**self._headers, "Content-Type": "application/json; charset=utf-8"}
        with map_errors(f"{self.name} device"):
            url, host_headers, tls_name = await self._target(out.address)
            # a redirect is not followed: a device answers where it was registered, or the send fails
            async with self._http.post(url, data=data, headers={**headers, **host_headers}, timeout=self._timeout,
                                       allow_redirects=False, server_hostname=tls_name) as resp:
                text = await resp.read()
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        error = classify_status(status, retry_after, detail=redact(f"{self.name} device HTTP {status}", self._token))
        if error is not None:
            raise error
        return _device_ref(text) or out.delivery_id

    async def _target(self, address: str) -> tuple[URL, dict[str, str], str | None]:
        """Where to connect: the device's host resolved here and checked, and the request pinned to the checked
        address (the Host header and the TLS name keep the original), so a name cannot resolve to this machine or
        a link-local network (cloud metadata) between the check and the connection. Unless `allow_loopback`."""
        url = URL(address)
        host = url.host
        if self._allow_loopback or not host:
            return url, {}, None
        if is_local_ip(host):
            raise DeliveryError(Reason.INVALID_ADDRESS, False, f"{self.name}: device address is on this machine "
                                                               "or a link-local network")
        try:
            ip_address(host)
            return url, {}, None  # a literal address, checked above
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
        except OSError:  # as aiohttp's own lookup failing: perhaps the resolver, perhaps the name
            raise DeliveryError(Reason.SERVER_ERROR, True, f"{self.name}: device host not resolved") from None
        found = [str(info[4][0]) for info in infos]
        if not found or any(is_local_ip(ip) for ip in found):
            raise DeliveryError(Reason.INVALID_ADDRESS, False, f"{self.name}: device host resolves to this machine "
                                                               "or a link-local network")
        tls_name = host if url.scheme == "https" else None
        return url.with_host(found[0]), {"Host": url.host_port_subcomponent or host}, tls_name

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A device ack as a ReceiptEvent; never raises."""
        try:
            return parse_device_ack(self.name, params)
        except Exception:  # total by contract
            logger.warning("%s: unreadable device ack ignored", self.name, exc_info=True)
            return None

    async def aclose(self) -> None:
        """Nothing of our own to close: the HTTP session is borrowed."""


def _device_ref(body: bytes) -> str | None:
    """The id a device gives its copy of the message, when its answer is JSON with an `id`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    ref = data.get("id") if isinstance(data, dict) else None
    return str(ref)[:100] if isinstance(ref, str | int) and str(ref) else None
