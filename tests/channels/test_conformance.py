"""Every adapter through the conformance kit (tests/channels/conformance.py)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.devices_http import HttpDeviceChannel
from channels.mqtt import MqttDeviceChannel
from channels.simulator import SimulatorChannel
from channels.sms_kannel import KannelSmsChannel
from channels.sms_twilio import TwilioSmsChannel
from channels.voice_twilio import TwilioVoiceChannel
from tests.channels.conformance import (
    RETRY_AFTER,
    SECRET,
    SECRET_USER,
    STATUS_TABLE,
    AdapterSpec,
    Programmable,
    adapter_logs,
    assert_no_secret,
    check_receipt,
    outcome,
    send_one,
)
from warning.clock import FakeClock
from warning.delivery import DeliveryState
from warning.errors import DeliveryError, Reason
from warning.redis_server import free_port

S = DeliveryState
PUBLIC = "https://warn.example.org"

SPECS = [
    AdapterSpec(
        "sms_twilio",
        lambda http, base: TwilioSmsChannel(name="sms", http=http, account_sid=SECRET_USER, auth_token=SECRET,
                                            public_url=PUBLIC, from_="+15005550006", api_base=base, timeout_s=0.3),
        receipt_keys=("MessageStatus", "SmsStatus", "MessageSid", "ErrorCode", "d", "Timestamp"),
        receipt_examples=[({"MessageStatus": "delivered", "MessageSid": "SM1"}, S.DELIVERED),
                          ({"MessageStatus": "nonsense"}, None), ({}, None)],
    ),
    AdapterSpec(
        "voice_twilio",
        lambda http, base: TwilioVoiceChannel(name="voice", http=http, account_sid=SECRET_USER, auth_token=SECRET,
                                              public_url=PUBLIC, from_="+15005550006", api_base=base, timeout_s=0.3),
        ok_body=b'{"sid": "CA00000000000000000000000000000001", "status": "queued"}',
        receipt_keys=("CallStatus", "CallSid", "Digits", "ErrorCode", "d", "Timestamp"),
        receipt_examples=[({"CallStatus": "completed", "CallSid": "CA1"}, S.DELIVERED),
                          ({"Digits": "1", "CallSid": "CA1"}, S.ACKNOWLEDGED), ({"CallStatus": "x"}, None)],
    ),
    AdapterSpec(
        "sms_kannel",
        lambda http, base: KannelSmsChannel(name="kannel", http=http, sendsms_url=f"{base}/cgi-bin/sendsms",
                                            username=SECRET_USER, password=SECRET, public_url=PUBLIC, timeout_s=0.3),
        ok_status=202, ok_body=b"0: Accepted for delivery", ok_type="text/plain",
        receipt_keys=("ref", "type", "ts", "answer", "from", "to", "fid", "smsc"),
        receipt_examples=[({"ref": "d1", "type": "1"}, S.DELIVERED), ({"ref": "d1", "type": "8"}, S.SENT),
                          ({"type": "bogus"}, None)],
    ),
    AdapterSpec(
        "http_escreen",
        lambda http, base: HttpDeviceChannel(name="screens", http=http, public_url=PUBLIC, token=SECRET,
                                             timeout_s=0.3, allow_loopback=True),
        ok_status=200, ok_body=b'{"id": "screen-copy-1"}',
        address=lambda base, i: f"{base}/device/{i}",
        receipt_keys=("delivery_id", "status", "at", "error", "token", "device_ref"),
        receipt_examples=[({"delivery_id": "d1", "status": "displayed"}, S.DELIVERED),
                          ({"delivery_id": "d1", "status": "confirmed"}, S.ACKNOWLEDGED),
                          ({"status": "displayed"}, None)],
    ),
    AdapterSpec(
        "http_broadcast",
        lambda http, base: HttpDeviceChannel(name="speakers", http=http, public_url=PUBLIC, kind="broadcast",
                                             token=SECRET, timeout_s=0.3, allow_loopback=True),
        ok_status=200, ok_body=b"ok", ok_type="text/plain",
        address=lambda base, i: f"{base}/speaker/{i}",
        receipt_keys=("delivery_id", "status", "at", "error"),
        receipt_examples=[({"delivery_id": "d1", "status": "played"}, S.DELIVERED)],
    ),
]
SIMULATOR = AdapterSpec(
    "simulator", lambda http, base: SimulatorChannel(name="sim", clock=FakeClock()), http=False,
    receipt_keys=("d", "ref", "status"),
    receipt_examples=[({"d": "d1", "status": "delivered"}, S.DELIVERED), ({"status": "pending"}, None)],
)
MQTT = AdapterSpec(
    "mqtt", lambda http, base: MqttDeviceChannel(name="mqtt", host="127.0.0.1", public_url=PUBLIC,
                                                 username=SECRET_USER, password=SECRET), http=False,
    receipt_keys=("delivery_id", "status", "at", "error"),
    receipt_examples=[({"delivery_id": "d1", "status": "played"}, S.DELIVERED)],
)
ALL = [*SPECS, SIMULATOR, MQTT]


async def serve(aiohttp_server: Any, spec: AdapterSpec) -> tuple[Programmable, str]:
    fake = Programmable(spec.ok_status, spec.ok_body, spec.ok_type)
    server = await aiohttp_server(fake.app)
    return fake, str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("status", sorted(STATUS_TABLE))
async def test_status_classification(aiohttp_server: Any, http: aiohttp.ClientSession, spec: AdapterSpec,
                                     status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake, base = await serve(aiohttp_server, spec)
    channel = spec.build(http, base)
    fake.status = status
    got = await send_one(channel, spec.outbounds(base, 1)[0])
    found = outcome(got)
    assert found is not None
    assert found[:2] == STATUS_TABLE[status]
    if status == 429:
        assert found[2] == float(RETRY_AFTER)
    failure = got if isinstance(got, DeliveryError) else got[0].error
    assert_no_secret(str(failure), repr(failure), getattr(failure, "detail", ""), repr(channel), adapter_logs(caplog))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_success_is_accepted_with_a_ref(aiohttp_server: Any, http: aiohttp.ClientSession,
                                              spec: AdapterSpec) -> None:
    fake, base = await serve(aiohttp_server, spec)
    [result] = await spec.build(http, base).send(spec.outbounds(base, 1))
    assert result.ok and result.provider_ref and result.error is None and fake.seen == 1


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_timeout_and_refused_connection_are_retryable(aiohttp_server: Any, http: aiohttp.ClientSession,
                                                            spec: AdapterSpec,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake, base = await serve(aiohttp_server, spec)
    fake.hang = True
    channel = spec.build(http, base)
    hung = outcome(await send_one(channel, spec.outbounds(base, 1)[0]))
    fake.release()
    assert hung is not None and hung[:2] == (Reason.TIMEOUT, True)
    dead = f"http://127.0.0.1:{free_port()}"
    refused = await send_one(spec.build(http, dead), spec.outbounds(dead, 1)[0])
    found = outcome(refused)
    assert found is not None and found[:2] == (Reason.SERVER_ERROR, True)
    assert_no_secret(repr(refused), adapter_logs(caplog))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_batch_limit_and_one_result_per_outbound(aiohttp_server: Any, http: aiohttp.ClientSession,
                                                       spec: AdapterSpec) -> None:
    fake, base = await serve(aiohttp_server, spec)
    channel = spec.build(http, base)
    cap = channel.capabilities.max_batch
    with pytest.raises(ValueError, match="max_batch"):
        await channel.send(spec.outbounds(base, cap + 1))
    assert fake.seen == 0  # refused before anything went out
    n = min(cap, 3)
    results = await channel.send(spec.outbounds(base, n))
    assert [r.delivery_id for r in results] == [f"d{i}" for i in range(n)] and fake.seen == n


async def test_simulator_batch_limit() -> None:
    channel = SIMULATOR.build(None, "")  # type: ignore[arg-type]
    cap = channel.capabilities.max_batch
    with pytest.raises(ValueError, match="max_batch"):
        await channel.send(SIMULATOR.outbounds("", cap + 1))
    results = await channel.send(SIMULATOR.outbounds("", cap))
    assert [r.delivery_id for r in results] == [f"d{i}" for i in range(cap)] and all(r.ok for r in results)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
async def test_receipt_examples(http: aiohttp.ClientSession, spec: AdapterSpec) -> None:
    channel = spec.build(http, "http://127.0.0.1:9")
    for params, state in spec.receipt_examples:
        event = check_receipt(channel, params)
        assert (event.state if event else None) == state, params


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
async def test_parse_receipt_is_total(http: aiohttp.ClientSession, spec: AdapterSpec) -> None:
    channel = spec.build(http, "http://127.0.0.1:9")
    junk = st.text(max_size=40)
    interesting = st.sampled_from(["1", "2", "8", "16", "delivered", "completed", "busy", "displayed", "9" * 30,
                                   "-1", "", " ", "Wed, 01 Jul 2026 08:00:05 +0000", "2026-07-01T08:00:00",
                                   "2026-13-45T99:00", "\x00", "１"]) | junk
    keys = st.sampled_from(list(spec.receipt_keys)) | st.text(max_size=10)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(keys, interesting, max_size=8))
    def total(params: dict[str, str]) -> None:
        check_receipt(channel, params)

    total()


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
async def test_repr_hides_secrets(http: aiohttp.ClientSession, spec: AdapterSpec) -> None:
    channel = spec.build(http, "http://127.0.0.1:9")
    assert_no_secret(repr(channel), str(channel))
    assert SECRET not in repr(vars(channel).get("api", ""))
    assert SECRET_USER not in repr(vars(channel).get("api", ""))
