"""Phone normalisation to E.164, kinds, refusals and masking."""

from __future__ import annotations

import pytest

from contacts.phone import InvalidPhoneNumber, mask_phone, normalize_e164


@pytest.mark.parametrize("raw", ["138 0013 8000", "+86-13800138000", "008613800138000", "13800138000",
                                 "+86 138 0013 8000", "(+86) 138-0013-8000", "１３８００１３８０００", "8613800138000"])
def test_normalize_same_person(raw: str) -> None:
    assert normalize_e164(raw) == ("+8613800138000", "mobile")


@pytest.mark.parametrize(("raw", "e164", "kind"), [
    ("0816-5221234", "+868165221234", "landline"),
    ("(0816) 522 1234", "+868165221234", "landline"),
    ("010-12345678", "+861012345678", "landline"),
    ("+1 650 253 0000", "+16502530000", "mobile"),
    ("15000001234", "+8615000001234", "mobile"),
])
def test_normalize_kinds(raw: str, e164: str, kind: str) -> None:
    assert normalize_e164(raw) == (e164, kind)


def test_default_region_is_configurable() -> None:
    assert normalize_e164("650 253 0000", "US") == ("+16502530000", "mobile")


@pytest.mark.parametrize(("raw", "reason"), [
    ("12345", "手机号码无效"), ("", "手机号码为空"), ("abc", "手机号码无效"), ("1380013800", "手机号码无效"),
    ("138001380001", "手机号码无效"), ("400-810-1234", "不是个人电话号码"),
])
def test_invalid_numbers_are_refused_with_a_clerk_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as err:
        normalize_e164(raw)
    assert reason in str(err.value)
    assert err.value.reason_en


@pytest.mark.parametrize(("e164", "masked"), [
    ("+8613800138000", "138****8000"),
    ("+868165221234", "081****1234"),
    ("+16502530000", "+1 650****0000"),
])
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked
