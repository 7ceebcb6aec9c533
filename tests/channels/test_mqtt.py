"""MqttDeviceChannel against the local Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import socket

import aiomqtt
import pytest

from channels.mqtt import MqttDeviceChannel
from warning.channel import Outbound
from warning.errors import DeliveryError, Reason
from warning.redis_server import free_port


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return True
    except OSError:
        return False


requires_broker = pytest.mark.skipif(not _broker_up(), reason="no MQTT broker (Mosquitto) on 127.0.0.1:1883")


@requires_broker
async def test_publishes_json_to_each_device_topic() -> None:
    ch = MqttDeviceChannel(name="screens-mqtt", host="127.0.0.1", public_url="https://warn.example.org",
                           topic_prefix="ew-test/", kind="broadcast")
    async with aiomqtt.Client("127.0.0.1", 1883, timeout=3) as sub:
        await sub.subscribe("ew-test/#", qos=1)
        results = await ch.send([Outbound("d1", "village/510722101001", "暴雨红色预警", meta={"level": "red"}),
                                 Outbound("d2", "bad/#", "x")])
        got = await asyncio.wait_for(anext(aiter(sub.messages)), 5)
    await ch.aclose()
    assert results[0].ok and results[1].error is not None and results[1].error.reason is Reason.INVALID_ADDRESS
    assert str(got.topic) == "ew-test/village/510722101001"
    body = json.loads(bytes(got.payload))  # type: ignore[arg-type]
    assert (body["delivery_id"], body["text"], body["speak_text"], body["repeat"]) == ("d1", "暴雨红色预警",
                                                                                         "暴雨红色预警", 3)


async def test_broker_down_is_retryable() -> None:
    ch = MqttDeviceChannel(name="m", host="127.0.0.1", port=free_port(), public_url="http://x", timeout_s=1,
                           password="mqtt-secret-pw")
    with pytest.raises(DeliveryError) as info:
        await ch.send([Outbound("d1", "t", "x")])
    assert info.value.retryable and "mqtt-secret-pw" not in str(info.value)
    await ch.aclose()
