"""The log filter's masking where Chinese text touches the number, and viewers' view of field reports."""

from __future__ import annotations

import pytest

from warning.logs import redact


@pytest.mark.parametrize(("raw", "masked"), [
    ("请联系13912345602谢谢", "请联系139****5602谢谢"),
    ("号码：+8613912345602。", "号码：+861****5602。"),
    ("电话0086 139 1234 5602，", "电话008****5602，"),
    ("座机028-85551234转", "座机028****1234转"),
])
def test_a_number_next_to_chinese_text_is_masked(raw: str, masked: str) -> None:
    assert redact(raw) == masked


@pytest.mark.parametrize("raw", ["区划510722100001", "id c13912345602x", "sid SM13912345602"])
def test_codes_and_identifiers_are_left_alone(raw: str) -> None:
    assert redact(raw) == raw
