"""HTTP devices (payload, acks), the simulator (clock-driven receipts and replies) and the adapter registry."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels import CHANNEL_TYPES, build_channel
from channels.devices_http import HttpDeviceChannel
from channels.simulator import Behaviour, SimulatorChannel
from channels.sms_twilio import TwilioSmsChannel
from warning.channel import Audience, ChannelKind, InboundMessage, Outbound, ReceiptEvent
from warning.clock import FakeClock
from warning.delivery import DeliveryState
from warning.errors import Reason

S = DeliveryState
PUBLIC = "https://warn.example.org"


async def test_device_payload_and_per_device_results(aiohttp_server: Any, http: aiohttp.ClientSession) -> None:
    got: list[dict[str, Any]] = []

    async def screen(request: web.Request) -> web.Response:
        got.append({"path": request.path, "auth": request.headers.get("Authorization"), **await request.json()})
        return web.json_response({"id": "copy-" + request.match_info["n"]})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/screen/{n}", screen)
    app.router.add_post("/broken", broken)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    ch = HttpDeviceChannel(name="screens", http=http, public_url=PUBLIC, token="device-token-123", allow_loopback=True)
    batch = [Outbound("d1", f"{base}/screen/1", "暴雨红色预警", meta={"level": "red", "colour": "#E60012"},
                      callback_token="ack-1"),
             Outbound("d2", f"{base}/broken", "x"), Outbound("d3", "not-a-url", "x")]
    r1, r2, r3 = await ch.send(batch)
    assert r1.ok and r1.provider_ref == "copy-1"
    assert not r2.ok and r2.error is not None and (r2.error.reason, r2.error.retryable) == (Reason.SERVER_ERROR, True)
    assert r3.error is not None and (r3.error.reason, r3.error.retryable) == (Reason.INVALID_ADDRESS, False)
    [body] = got
    assert body["auth"] == "Bearer device-token-123"
    assert (body["text"], body["level"], body["colour"], body["duration_s"], body["repeat"]) == (
        "暴雨红色预警", "red", "#E60012", 3600, 3)
    assert body["ack_url"] == f"{PUBLIC}/hooks/devices/ack" and body["ack_token"] == "ack-1"
    assert "speak_text" not in body


def test_broadcast_payload_speaks_and_reaches_an_area() -> None:
    ch = HttpDeviceChannel(name="speakers", http=None, public_url=PUBLIC, kind="broadcast")  # type: ignore[arg-type]
    assert ch.capabilities.kind is ChannelKind.BROADCAST and ch.capabilities.audience is Audience.AREA
    body = ch.payload(Outbound("d1", "http://x", "文字", meta={"speak_text": "各位村民请注意", "repeat": "5"}))
    assert body["speak_text"] == "各位村民请注意" and body["repeat"] == 5
    json.dumps(body)


@pytest.mark.parametrize(("status", "state", "ack"), [
    ("received", S.SENT, False), ("displayed", S.DELIVERED, False), ("played", S.DELIVERED, False),
    ("confirmed", S.ACKNOWLEDGED, True), ("failed", S.FAILED, False), ("exploded", None, False),
])
def test_device_ack_table(status: str, state: DeliveryState | None, ack: bool) -> None:
    ch = HttpDeviceChannel(name="screens", http=None, public_url=PUBLIC)  # type: ignore[arg-type]
    event = ch.parse_receipt({"delivery_id": "d1", "status": status, "at": "2026-07-01T08:00:00+08:00"})
    assert (event.state if event else None) == state
    if event:
        assert event.ack == ack and event.at is not None and event.delivery_id == "d1"


async def test_simulator_receipts_follow_the_clock() -> None:
    clock = FakeClock()
    sim = SimulatorChannel(name="sim", clock=clock, behaviour=Behaviour(delay_s=2.0, failure_rate=0.1,
                                                                        reply_share=0.5, reply_delay_s=10, seed=7))
    results = await sim.send([Outbound(f"d{i}", f"+86138000{i:05d}", "x") for i in range(100)])
    assert all(r.ok for r in results) and len({r.provider_ref for r in results}) == 100
    assert sim.pop_due() == []  # nothing before time passes
    clock.advance(3600)
    events = sim.pop_due()
    receipts = [e for e in events if isinstance(e, ReceiptEvent)]
    replies = [e for e in events if isinstance(e, InboundMessage)]
    finals = Counter(e.state for e in receipts if e.state is not S.SENT)
    assert finals[S.DELIVERED] + finals[S.UNDELIVERED] == 100 and 3 <= finals[S.UNDELIVERED] <= 20
    assert 25 <= len(replies) <= 75 and all(r.sender.startswith("+86138") for r in replies)
    assert sim.pending == 0


async def test_simulator_is_repeatable_with_a_seed() -> None:
    async def run() -> list[str]:
        clock = FakeClock()
        sim = SimulatorChannel(name="sim", clock=clock, behaviour=Behaviour(seed=3))
        await sim.send([Outbound(f"d{i}", f"+{i}", "x") for i in range(50)])
        clock.advance(3600)
        return [repr(e) for e in sim.pop_due()]

    assert await run() == await run()


async def test_simulator_events_stream_wakes_on_clock_advance() -> None:
    clock = FakeClock()
    sim = SimulatorChannel(name="sim", clock=clock, kind="voice",
                           behaviour=Behaviour(delay_s=5, failure_rate=0, reply_share=1.0, reply_delay_s=5))
    seen: list[Any] = []

    async def consume() -> None:
        async for event in sim.events():
            seen.append(event)

    task = asyncio.create_task(consume())
    await sim.send([Outbound("d1", "+8613800000001", "x")])
    for _ in range(200):  # advance in steps until both the receipt and the keypress came (no real sleeping)
        if len(seen) >= 2:
            break
        clock.advance(1)
        await asyncio.sleep(0)
    task.cancel()
    states = [e.state for e in seen]
    assert states == [S.DELIVERED, S.ACKNOWLEDGED] and seen[1].ack and seen[1].digits == "1"


async def test_simulator_invalid_address_fails() -> None:
    sim = SimulatorChannel(name="sim", clock=FakeClock(), invalid_addresses=frozenset({"+860"}))
    [r] = await sim.send([Outbound("d1", "+860", "x")])
    assert r.error is not None and r.error.reason is Reason.INVALID_ADDRESS


def test_registry_is_explicit() -> None:
    assert set(CHANNEL_TYPES) == {"sms_twilio", "voice_twilio", "sms_kannel", "http", "mqtt", "simulator"}


async def test_build_channel_from_tables(http: aiohttp.ClientSession) -> None:
    sms = build_channel("sms-primary", {"name": "sms-primary", "kind": "sms", "provider": "twilio",
                                        "account_sid": "AC1", "auth_token_env": "TW_TOKEN", "from": "+15005550006",
                                        "rate_per_s": 5, "failover": "sms-backup"},
                        http=http, clock=FakeClock(), public_url=PUBLIC, env={"TW_TOKEN": "tok-abcdef"})
    assert isinstance(sms, TwilioSmsChannel) and sms.capabilities.max_per_s == 5.0 and sms.api.auth_token == "tok-abcdef"
    sim = build_channel("sim", {"kind": "voice", "provider": "simulator", "reply_share": 0.5}, http=None,
                        clock=FakeClock(), public_url=PUBLIC)
    assert sim.capabilities.kind is ChannelKind.VOICE


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "sms", "provider": "smoke-signals"}, "channels.x.provider"),
    ({"kind": "voice", "provider": "kannel"}, "channels.x.kind"),
    ({"kind": "sms", "provider": "twilio", "account_sid": "AC1", "auth_token": "t", "from": "+1", "colour": 1},
     "channels.x.colour: unknown key"),
    ({"kind": "sms", "provider": "twilio", "auth_token": "t", "from": "+1"}, "channels.x.account_sid: required"),
    ({"kind": "sms", "provider": "twilio", "account_sid": "AC1", "auth_token": "t"}, "channels.x.from: required"),
    ({"kind": "sms", "provider": "twilio", "account_sid": "AC1", "auth_token_env": "NOPE", "from": "+1"},
     "NOPE is not set"),
    ({"kind": "sms", "provider": "kannel", "sendsms_url": "http://k", "username": "u", "password": "p",
      "timeout_s": "fast"}, "channels.x.timeout_s"),
    ({"kind": "sms", "provider": "simulator", "failure_rate": 2}, "shares between 0 and 1"),
])
async def test_build_channel_names_the_bad_key(http: aiohttp.ClientSession, table: dict[str, Any],
                                               message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build_channel("x", table, http=http, clock=FakeClock(), public_url=PUBLIC, env={})
