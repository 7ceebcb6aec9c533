"""A provider's error message that quotes the number (Twilio's 21211 does) is kept without it: such details are
stored on the delivery, shown on the dashboard and logged."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.twilio_api import TwilioApi, number_forms
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, Fault, start
from warning.errors import DeliveryError, Reason

TO = "+8613912345604"


def test_number_forms_longest_first() -> None:
    assert number_forms(TO) == ["+8613912345604", "8613912345604", "13912345604"]
    assert number_forms("") == [] and number_forms("+862885551234")[-1] == "2885551234"


@pytest.mark.parametrize("quoted", [TO, "8613912345604", "13912345604"])
@pytest.mark.parametrize("kind", ["message", "call"])
async def test_the_number_is_not_kept_in_an_error_detail(aiohttp_server: Any, quoted: str, kind: str) -> None:
    fake, base = await start(aiohttp_server)
    fake.fail_number(TO, Fault(400, 21211, f"The 'To' number {quoted} is not a valid phone number."))
    async with aiohttp.ClientSession() as http:
        api = TwilioApi(http=http, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=base)
        with pytest.raises(DeliveryError) as caught:
            if kind == "message":
                await api.create_message(TO, "测试", from_="+15005550006")
            else:
                await api.create_call(TO, from_="+15005550006", twiml="<Response/>")
    err = caught.value
    assert err.reason is Reason.INVALID_ADDRESS and not err.retryable
    assert "13912345604" not in err.detail and "21211" in err.detail and "is not a valid phone number" in err.detail
