"""Logs never hold a whole phone number or a token."""

from __future__ import annotations

import json
import logging

import pytest

from warning.logs import JsonFormatter, RedactingFilter, redact, register_secret


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("to +8613800138000 ok", "to +861****8000 ok"),
        ("phone 13800138000", "phone 138****8000"),
        ("phone 138 0013 8000.", "phone 138****8000."),
        ("landline 028-85551234", "landline 028****1234"),
        ("region 510722100", "region 510722100"),  # a 9-digit region code is not a phone
    ],
)
def test_redact_masks_phones(raw: str, masked: str) -> None:
    assert redact(raw) == masked


def test_redact_hides_tokens_and_registered_secrets() -> None:
    register_secret("s3cr3t-provider-pw")
    out = redact("Authorization: Bearer abcdef123456 password=s3cr3t-provider-pw token=xyz987654")
    assert "abcdef123456" not in out and "s3cr3t-provider-pw" not in out and "xyz987654" not in out


def test_json_formatter_masks_arguments() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent to %s", ("+8613912345678",), None)
    assert RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "sent to +861****5678"
    assert "13912345678" not in json.dumps(line)


def test_village_code_is_not_masked() -> None:
    assert redact("village 510722100001") == "village 510722100001"
    assert redact("call 008613800138000") == "call 008****8000"
