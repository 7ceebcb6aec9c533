"""KannelSmsChannel against the real Kannel gateway (bearerbox + smsbox + fake SMSC), and its DLR/MO tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.sms_kannel import KannelSmsChannel, parse_dlr, parse_mo
from tests.fakes.kannel import PASSWORD, USERNAME, KannelGateway, requires_kannel
from warning.channel import Outbound
from warning.delivery import DeliveryState
from warning.errors import DeliveryError, Reason

S = DeliveryState
ZH = ("【三台县应急管理局】暴雨红色预警：预计未来3小时三台县北部降雨量将达100毫米以上，山洪、滑坡、泥石流风险极高。"
      "请地灾点和沿河居民立即转移至安全地点。回复1确认")


class Hooks:
    """The service side of Kannel's callbacks: records every DLR and MO."""

    def __init__(self) -> None:
        self.dlrs: list[dict[str, str]] = []
        self.mos: list[dict[str, str]] = []
        self.changed = asyncio.Event()

    async def dlr(self, request: web.Request) -> web.Response:
        self.dlrs.append(dict(request.query))
        self.changed.set()
        return web.Response(text="ok")

    async def mo(self, request: web.Request) -> web.Response:
        self.mos.append(dict(request.query))
        self.changed.set()
        return web.Response(text="")

    async def wait(self, predicate: Any, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; dlrs={self.dlrs} mos={self.mos}"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass


@pytest.fixture
async def kannel(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[tuple[KannelGateway, Hooks, str]]:
    hooks = Hooks()
    app = web.Application()
    app.router.add_get("/hooks/kannel/dlr", hooks.dlr)
    app.router.add_get("/hooks/kannel/mo", hooks.mo)
    server = await aiohttp_server(app)
    public = str(server.make_url("")).rstrip("/")
    gateway = KannelGateway(tmp_path, public)
    try:
        await gateway.start()
        yield gateway, hooks, public
    finally:
        await gateway.stop()


def channel(http: aiohttp.ClientSession, url: str, public: str, **kw: Any) -> KannelSmsChannel:
    return KannelSmsChannel(name="sms-kannel", http=http, sendsms_url=url, username=USERNAME,
                            password=kw.pop("password", PASSWORD), public_url=public, timeout_s=2, **kw)


@requires_kannel
async def test_chinese_sms_through_real_kannel_arrives_encoded_and_dlrs_parse(http: Any, kannel: Any) -> None:
    gateway, hooks, public = kannel
    ch = channel(http, gateway.sendsms_url, public)
    [result] = await ch.send([Outbound("dl-42", "+8613800000002", ZH)])
    assert result.ok and result.provider_ref == "dl-42"
    assert 70 < len(ZH) <= 2 * 67
    await hooks.wait(lambda: len(hooks.dlrs) >= 2 and len(gateway.smsc.received) >= 2)
    parts = gateway.smsc.received
    assert all(p.to == "8613800000002" for p in parts)
    # two concatenated parts (UDH 05 00 03 ref 02 0n), their payloads UCS-2: nothing lost to '?'
    assert len(parts) == 2 and [p.udh[:3] + p.udh[4:] for p in parts] == [b"\x05\x00\x03\x02\x01",
                                                                           b"\x05\x00\x03\x02\x02"]
    assert b"".join(p.payload for p in parts).decode("utf-16-be") == ZH
    events = sorted((ch.parse_receipt(q) for q in hooks.dlrs), key=lambda e: e.state if e else "")  # type: ignore[arg-type]
    assert [(e.state, e.delivery_id) for e in events if e] == [(S.DELIVERED, "dl-42"), (S.SENT, "dl-42")]


@requires_kannel
async def test_kannel_mo_reply_in_chinese_parses(http: Any, kannel: Any) -> None:
    gateway, hooks, public = kannel
    await gateway.smsc.send_mo("8613800000003", "10086", "收到，已撤离 OK")
    await hooks.wait(lambda: hooks.mos)
    msg = channel(http, gateway.sendsms_url, public).parse_inbound(hooks.mos[0])
    assert msg is not None and (msg.sender, msg.to, msg.text) == ("8613800000003", "10086", "收到，已撤离 OK")


@requires_kannel
async def test_kannel_wrong_password_is_permanent_auth_error(http: Any, kannel: Any) -> None:
    gateway, _, public = kannel
    with pytest.raises(DeliveryError) as info:
        await channel(http, gateway.sendsms_url, public, password="not-the-password").send(
            [Outbound("d1", "+8613800000002", "hi")])
    assert (info.value.reason, info.value.retryable) == (Reason.AUTH_ERROR, False)
    assert "not-the-password" not in str(info.value)


@requires_kannel
async def test_kannel_missing_receiver_is_failed_result(http: Any, kannel: Any) -> None:
    gateway, _, public = kannel
    [result] = await channel(http, gateway.sendsms_url, public).send([Outbound("d1", "", "hi")])
    assert result.state is S.FAILED and result.error is not None
    assert (result.error.reason, result.error.retryable) == (Reason.INVALID_ADDRESS, False)


async def test_kannel_down_is_retryable(http: Any) -> None:
    from warning.redis_server import free_port

    ch = channel(http, f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms", "http://x")
    with pytest.raises(DeliveryError) as info:
        await ch.send([Outbound("d1", "+8613800000002", "hi")])
    assert info.value.retryable and info.value.reason is Reason.SERVER_ERROR


@pytest.mark.parametrize(("kind", "state", "error"), [
    ("1", S.DELIVERED, None), ("2", S.UNDELIVERED, "dlr2"), ("4", S.SENT, None), ("8", S.SENT, None),
    ("16", S.FAILED, "dlr16"), ("32", None, None), ("", None, None), ("99", None, None),
])
def test_dlr_type_table(kind: str, state: DeliveryState | None, error: str | None) -> None:
    event = parse_dlr("k", {"ref": "d5", "type": kind, "ts": "1795932194", "answer": "ACK/"})
    if state is None:
        assert event is None
        return
    assert event is not None and (event.state, event.delivery_id, event.error_code) == (state, "d5", error)
    assert event.at is not None and event.at.year == 2026


def test_dlr_smpp_error_code_is_kept() -> None:
    event = parse_dlr("k", {"ref": "d5", "type": "2", "answer": "id:1 sub:001 dlvrd:000 stat:UNDELIV err:034"})
    assert event is not None and event.error_code == "034"


def test_sendsms_query_encoding() -> None:
    ch = KannelSmsChannel.__new__(KannelSmsChannel)
    ch.__init__(name="k", http=None, sendsms_url="http://k/cgi-bin/sendsms", username="u",  # type: ignore[arg-type]
                password="p", public_url="https://warn.example.org/")
    zh = ch.query(Outbound("d1", "+8613800000002", "暴雨"))
    assert (zh["coding"], zh["charset"], zh["to"], zh["dlr-mask"]) == ("2", "UTF-8", "8613800000002", "31")
    assert zh["dlr-url"].startswith("https://warn.example.org/hooks/kannel/dlr?c=k&ref=d1&type=%d&")
    assert ch.query(Outbound("d1", "+86138", "Heavy rain {ok}"))["coding"] == "0"


def test_mo_requires_sender_and_text() -> None:
    assert parse_mo("k", {"text": "1"}) is None
    assert parse_mo("k", {"from": "8613800000003", "text": "1", "ts": "x"}) is not None
