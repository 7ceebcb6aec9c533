"""Twilio SMS and voice adapters against the FakeTwilio stand-in, and their callback tables."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from channels.sms_twilio import MESSAGE_STATUS, TwilioSmsChannel
from channels.voice_twilio import CALL_STATUS, TwilioVoiceChannel, gather_reply
from tests.fakes import twilio as ft
from tests.fakes.twilio import HANG, INVALID_NUMBER, OPTED_OUT, UNAVAILABLE, FakeTwilio, rate_limited
from warning.channel import GATHER_URL_SLOT, Outbound
from warning.delivery import DeliveryState
from warning.errors import DeliveryError, Reason

S = DeliveryState
PUBLIC = "https://warn.example.org"
PHONE = "+8613800000001"


def sms(http: aiohttp.ClientSession, api_base: str, **kw: Any) -> TwilioSmsChannel:
    args: dict[str, Any] = {"name": "sms-primary", "http": http, "account_sid": ft.ACCOUNT_SID,
                            "auth_token": ft.AUTH_TOKEN, "public_url": PUBLIC, "from_": "+15005550006",
                            "api_base": api_base, "timeout_s": 0.5}
    return TwilioSmsChannel(**{**args, **kw})


def voice(http: aiohttp.ClientSession, api_base: str, **kw: Any) -> TwilioVoiceChannel:
    return TwilioVoiceChannel(name="voice", http=http, account_sid=ft.ACCOUNT_SID, auth_token=ft.AUTH_TOKEN,
                              public_url=PUBLIC, from_="+15005550006", api_base=api_base, timeout_s=0.5, **kw)


def out(i: int = 1, to: str = PHONE, body: str = "【县应急管理局】暴雨红色预警：请立即撤离。回复1确认") -> Outbound:
    return Outbound(delivery_id=f"d{i}", address=to, body=body)


async def test_sms_send_accepted_with_callback_carrying_our_id(http: Any, fake_twilio: Any) -> None:
    fake, base = fake_twilio
    [result] = await sms(http, base).send([out()])
    assert result.ok and result.provider_ref and result.provider_ref.startswith("SM") and len(result.provider_ref) == 34
    [req] = fake.requests
    assert req.form["To"] == PHONE and req.form["From"] == "+15005550006"
    assert req.form["Body"].startswith("【县应急管理局】")
    assert req.form["StatusCallback"] == f"{PUBLIC}/hooks/twilio/status?c=sms-primary&d=d1"


async def test_sms_messaging_service_instead_of_from(http: Any, fake_twilio: Any) -> None:
    fake, base = fake_twilio
    await sms(http, base, from_=None, messaging_service_sid="MG" + "a" * 32).send([out()])
    assert fake.requests[0].form["MessagingServiceSid"] == "MG" + "a" * 32 and "From" not in fake.requests[0].form


@pytest.mark.parametrize(("fault", "reason"), [(INVALID_NUMBER, Reason.INVALID_ADDRESS),
                                               (OPTED_OUT, Reason.OPTED_OUT)])
async def test_sms_recipient_errors_are_failed_results(http: Any, fake_twilio: Any, fault: Any, reason: Reason) -> None:
    fake, base = fake_twilio
    fake.fail_number(PHONE, fault)
    [result] = await sms(http, base).send([out()])
    assert result.state is S.FAILED and result.error is not None
    assert (result.error.reason, result.error.retryable) == (reason, False)
    assert str(fault.code) in result.error.detail


@pytest.mark.parametrize(("fault", "reason", "retry_after"), [
    (UNAVAILABLE, Reason.SERVER_ERROR, None),
    (rate_limited(7), Reason.RATE_LIMITED, 7.0),
    (HANG, Reason.TIMEOUT, None),
])
async def test_sms_transient_errors_raise_retryable(http: Any, fake_twilio: Any, fault: Any, reason: Reason,
                                                    retry_after: float | None) -> None:
    fake, base = fake_twilio
    fake.fail_next(fault)
    with pytest.raises(DeliveryError) as info:
        await sms(http, base).send([out()])
    assert (info.value.reason, info.value.retryable, info.value.retry_after_s) == (reason, True, retry_after)
    fake.release_hangs()
    [again] = await sms(http, base).send([out()])
    assert again.ok


async def test_sms_wrong_credentials_is_auth_error(http: Any, fake_twilio: Any) -> None:
    _, base = fake_twilio
    with pytest.raises(DeliveryError) as info:
        await sms(http, base, auth_token="wrong-token-abcdef").send([out()])
    assert (info.value.reason, info.value.retryable) == (Reason.AUTH_ERROR, False)
    assert "wrong-token-abcdef" not in str(info.value)


@pytest.mark.parametrize(("status", "state"), [
    ("queued", S.ACCEPTED), ("accepted", S.ACCEPTED), ("scheduled", S.ACCEPTED), ("sending", S.ACCEPTED),
    ("sent", S.SENT), ("partially_delivered", S.SENT), ("delivered", S.DELIVERED), ("read", S.DELIVERED),
    ("undelivered", S.UNDELIVERED), ("failed", S.FAILED), ("canceled", S.FAILED),
    ("receiving", None), ("received", None), ("bogus", None), ("", None),
])
def test_sms_status_table(status: str, state: DeliveryState | None) -> None:
    ch = TwilioSmsChannel.__new__(TwilioSmsChannel)
    ch.name = "sms-primary"
    params = {**ft.message_status_params("SM" + "1" * 32, status, error_code="30003"), "c": "sms-primary", "d": "d9"}
    event = ch.parse_receipt(params)
    if state is None:
        assert event is None
        return
    assert event is not None
    assert (event.state, event.provider_ref, event.delivery_id, event.error_code, event.raw_status) == (
        state, "SM" + "1" * 32, "d9", "30003", status)


def test_every_twilio_message_status_is_mapped() -> None:
    documented = {"queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled", "accepted",
                  "scheduled", "receiving", "received", "partially_delivered"}
    assert set(MESSAGE_STATUS) == documented


def test_inbound_sms_parsed() -> None:
    ch = TwilioSmsChannel.__new__(TwilioSmsChannel)
    ch.name = "sms-primary"
    msg = ch.parse_inbound(ft.inbound_sms_params("+8613800000001", "收到 K7Q"))
    assert msg is not None and (msg.sender, msg.text) == ("+8613800000001", "收到 K7Q")
    assert ch.parse_inbound({"Body": "x"}) is None


async def test_voice_call_twiml_reads_twice_inside_gather(http: Any, fake_twilio: Any) -> None:
    fake, base = fake_twilio
    [result] = await voice(http, base).send([Outbound("d7", PHONE, "暴雨红色预警。请立即转移。请按1确认收到。")])
    assert result.ok and result.provider_ref and result.provider_ref.startswith("CA")
    [req] = fake.requests
    root = ElementTree.fromstring(req.form["Twiml"].encode())
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action") == f"{PUBLIC}/hooks/twilio/gather?c=voice&d=d7"
    says = gather.findall("Say")
    assert len(says) == 2 and all(s.get("language") == "cmn-CN" and "请按1确认" in (s.text or "") for s in says)
    assert req.form["StatusCallback"] == f"{PUBLIC}/hooks/twilio/status?c=voice&d=d7"
    assert {v for k, v in req.multi if k == "StatusCallbackEvent"} == {"initiated", "ringing", "answered", "completed"}


async def test_voice_uses_rendered_twiml_and_fills_the_gather_slot(http: Any, fake_twilio: Any) -> None:
    fake, base = fake_twilio
    twiml = f'<Response><Gather numDigits="1" action="{GATHER_URL_SLOT}"><Say>&lt;&amp;&gt;</Say></Gather></Response>'
    await voice(http, base).send([Outbound("d8", PHONE, "x", meta={"twiml": twiml})])
    root = ElementTree.fromstring(fake.requests[0].form["Twiml"])
    assert root.find("Gather").get("action") == f"{PUBLIC}/hooks/twilio/gather?c=voice&d=d8"  # type: ignore[union-attr]
    assert root.find("Gather/Say").text == "<&>"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "state", "retryable"), [
    ("queued", S.ACCEPTED, False), ("initiated", S.ACCEPTED, False), ("ringing", S.SENT, False),
    ("in-progress", S.SENT, False), ("completed", S.DELIVERED, False), ("busy", S.FAILED, True),
    ("no-answer", S.FAILED, True), ("failed", S.FAILED, False), ("canceled", S.FAILED, False),
])
def test_voice_call_status_table(status: str, state: DeliveryState, retryable: bool) -> None:
    ch = TwilioVoiceChannel.__new__(TwilioVoiceChannel)
    ch.name = "voice"
    event = ch.parse_receipt({**ft.call_status_params("CA" + "2" * 32, status), "d": "d7"})
    assert event is not None and (event.state, event.retryable, event.ack) == (state, retryable, False)
    assert event.delivery_id == "d7" and event.at is not None
    if state is S.FAILED:
        assert event.error_code == status


def test_every_twilio_call_status_is_mapped() -> None:
    assert {"queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"} <= set(CALL_STATUS)


@pytest.mark.parametrize(("digits", "state", "ack"), [("1", S.ACKNOWLEDGED, True), ("2", S.DELIVERED, False),
                                                      ("#", S.DELIVERED, False)])
def test_voice_gather_digit_one_is_an_ack(digits: str, state: DeliveryState, ack: bool) -> None:
    ch = TwilioVoiceChannel.__new__(TwilioVoiceChannel)
    ch.name = "voice"
    event = ch.parse_receipt({**ft.gather_params("CA" + "3" * 32, digits), "d": "d7"})
    assert event is not None and (event.state, event.ack, event.digits, event.delivery_id) == (state, ack, digits, "d7")


def test_gather_reply_is_twiml() -> None:
    assert "已确认收到" in gather_reply(True)
    ElementTree.fromstring(gather_reply(False, "en").encode())


async def test_fake_signs_callbacks_like_twilio(http: Any, fake_twilio: FakeTwilio) -> None:
    from twilio.request_validator import RequestValidator

    fake, base = fake_twilio  # type: ignore[misc]
    await sms(http, base).send([out()])
    [(url, params)] = ft.status_callbacks(fake, ["delivered"])
    form, headers = ft.signed(url, params)
    assert RequestValidator(ft.AUTH_TOKEN).validate(url, form, headers["X-Twilio-Signature"])
    assert not RequestValidator(ft.AUTH_TOKEN).validate(url, {**form, "MessageStatus": "failed"},
                                                        headers["X-Twilio-Signature"])
