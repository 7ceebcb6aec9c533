"""MqttDeviceChannel: e-screens and broadcast terminals that listen on an MQTT topic; they ack at our HTTP hook."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import aiomqtt

from channels.base import check_batch, redact
from channels.devices_http import ACK_PATH, DEFAULT_DURATION_S, DEFAULT_REPEAT, parse_device_ack
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
from warning.errors import DeliveryError, Reason

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 50
DEFAULT_MAX_PER_S = 200.0
DEFAULT_TIMEOUT_S = 5.0
#: At-least-once: the broker confirms each message (PUBACK); devices drop repeats by delivery_id.
QOS = 1


class MqttDeviceChannel:
    """Publishes the warning as JSON to each device's topic through one broker connection."""

    capabilities = ChannelCapabilities(
        kind=ChannelKind.ESCREEN, audience=Audience.INDIVIDUAL, max_batch=DEFAULT_MAX_BATCH,
        max_per_s=DEFAULT_MAX_PER_S, max_body_chars=None, receipts=ReceiptLevel.DELIVERED, acks=True,
        address_kind=AddressKind.MQTT_TOPIC,
    )

    def __init__(self, *, name: str, host: str, public_url: str, port: int = 1883, kind: str = "escreen",
                 username: str | None = None, password: str | None = None, topic_prefix: str = "",
                 max_batch: int | None = None, max_per_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        device_kind = ChannelKind(kind)
        if device_kind not in (ChannelKind.ESCREEN, ChannelKind.BROADCAST):
            raise ValueError(f"{name}: kind must be escreen or broadcast, not {kind!r}")
        self.name = name
        self._host, self._port = host, port
        self._username, self._password = username, password
        self._prefix = topic_prefix
        self._timeout_s = timeout_s
        self._ack_url = f"{public_url.rstrip('/')}{ACK_PATH}"
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        base = type(self).capabilities
        self.capabilities = replace(
            base, kind=device_kind, max_batch=max_batch or base.max_batch,
            max_per_s=max_per_s if max_per_s is not None else base.max_per_s,
            audience=Audience.AREA if device_kind is ChannelKind.BROADCAST else Audience.INDIVIDUAL)

    def __repr__(self) -> str:
        return f"MqttDeviceChannel(name={self.name!r}, broker={self._host}:{self._port})"

    def payload(self, out: Outbound) -> bytes:
        """The JSON a device receives (the same fields as the HTTP devices)."""
        level = out.meta.get("level", "red")
        body: dict[str, object] = {
            "delivery_id": out.delivery_id, "text": out.body, "lang": out.lang, "level": level,
            "colour": out.meta.get("colour", ""), "msg_type": out.meta.get("msg_type", "alert"),
            "duration_s": int(out.meta.get("duration_s") or DEFAULT_DURATION_S.get(level, 900)),
            "repeat": int(out.meta.get("repeat") or DEFAULT_REPEAT.get(level, 1)),
            "exercise": out.meta.get("exercise") == "1", "ack_url": self._ack_url, "ack_token": out.callback_token,
        }
        if self.capabilities.kind is ChannelKind.BROADCAST:
            body["speak_text"] = out.meta.get("speak_text") or out.body
        return json.dumps(body, ensure_ascii=False).encode()

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is None:
                client = aiomqtt.Client(self._host, self._port, username=self._username, password=self._password,
                                        timeout=self._timeout_s, identifier=None)
                try:
                    await client.__aenter__()
                except aiomqtt.MqttError as exc:
                    raise self._error(exc) from None
                self._client = client
            return self._client

    def _error(self, exc: BaseException) -> DeliveryError:
        text = redact(f"{self.name}: broker {type(exc).__name__}: {exc}", self._password, self._username)
        refused = "not authori" in text.lower() or "bad user" in text.lower()
        return DeliveryError(Reason.AUTH_ERROR if refused else Reason.SERVER_ERROR, not refused, text)

    async def send(self, batch: Sequence[Outbound]) -> Sequence[SendResult]:
        """Publish every Outbound with QoS 1; a broken broker connection fails the call (retryable)."""
        check_batch(self.name, batch, self.capabilities.max_batch)
        bad = {out.delivery_id for out in batch if not out.address or "#" in out.address or "+" in out.address}
        client = await self._connected()
        try:
            await asyncio.gather(*(client.publish(self._prefix + out.address, self.payload(out), qos=QOS,
                                                  timeout=self._timeout_s) for out in batch if out.delivery_id not in bad))
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await self._drop()
            raise self._error(exc) from None
        return [SendResult.failed(out.delivery_id, DeliveryError(Reason.INVALID_ADDRESS, False,
                                                                 f"{self.name}: not a topic name"))
                if out.delivery_id in bad else SendResult.accepted(out.delivery_id, out.delivery_id) for out in batch]

    def parse_receipt(self, params: Mapping[str, str]) -> ReceiptEvent | None:
        """A device ack (posted to our HTTP hook) as a ReceiptEvent; never raises."""
        try:
            return parse_device_ack(self.name, params)
        except Exception:  # total by contract
            logger.warning("%s: unreadable device ack ignored", self.name, exc_info=True)
            return None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass

    async def aclose(self) -> None:
        """Disconnect from the broker."""
        await self._drop()
