"""MqttDeviceChannel against the local Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from channels.mqtt import MqttDeviceChannel
from warning.channel import Outbound
from warning.errors import DeliveryError, Reason
from warning.redis_server import free_port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Mosquitto of our own on a spare port (scripts/test.sh installs it); the machine's 1883 otherwise."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        if _listening(1883):
            yield 1883
            return
        pytest.skip("no mosquitto binary and no MQTT broker on 127.0.0.1:1883")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_publishes_json_to_each_device_topic(broker_port: int) -> None:
    ch = MqttDeviceChannel(name="screens-mqtt", host="127.0.0.1", port=broker_port, public_url="https://warn.example.org",
                           topic_prefix="ew-test/", kind="broadcast")
    async with aiomqtt.Client("127.0.0.1", broker_port, timeout=3) as sub:
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
