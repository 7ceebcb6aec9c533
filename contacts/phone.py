"""Phone numbers: normalised to E.164 once, at write time, and masked for display."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
#: numbers a voice call can reach but an SMS cannot
_VOICE_ONLY = {PhoneNumberType.FIXED_LINE, PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER,
               PhoneNumberType.UAN}
_TRANSLATE = str.maketrans("０１２３４５６７８９＋－（）　", "0123456789+-() ")


class InvalidPhoneNumber(ValueError):
    """A number that cannot be stored; the message is for a clerk, Chinese first."""

    def __init__(self, raw: str, reason_zh: str, reason_en: str) -> None:
        self.raw, self.reason_zh, self.reason_en = raw, reason_zh, reason_en
        super().__init__(f"{reason_zh} {reason_en}: {raw}")


def normalize_e164(raw: str, default_region: str = "CN") -> tuple[str, str]:
    """The E.164 form of a typed number and its kind, `mobile` or `landline` (voice only).

    `138 0013 8000`, `+86-13800138000`, `008613800138000` and `13800138000` all give
    `+8613800138000`. Raises InvalidPhoneNumber with a reason a clerk understands.
    """
    text = str(raw).translate(_TRANSLATE).strip()
    shown = text[:40]
    if not text:
        raise InvalidPhoneNumber(shown, "手机号码为空", "phone number is empty")
    if text.startswith("00"):  # international call prefix written as digits (0086...)
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException:
        raise InvalidPhoneNumber(shown, "手机号码无效", "invalid phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(shown, "手机号码无效", "invalid phone number")
    kind = phonenumbers.number_type(number)
    if kind in _MOBILE:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164), "mobile"
    if kind in _VOICE_ONLY:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164), "landline"
    raise InvalidPhoneNumber(shown, "不是个人电话号码（热线、付费或共享号码）",
                             "not a personal number (toll-free, premium or shared-cost)")


def mask_phone(e164: str) -> str:
    """The number with its middle hidden, in national form: `+8613800138000` → `138****8000`."""
    try:
        number = phonenumbers.parse(e164, None)
        national = phonenumbers.national_significant_number(number)
        prefix = "" if number.country_code == 86 else f"+{number.country_code} "
    except NumberParseException:
        national, prefix = "".join(ch for ch in e164 if ch.isdigit()), ""
    if national and national[0] != "1" and prefix == "" and len(national) >= 9:
        national = "0" + national  # mainland landlines are written with their trunk prefix
    if len(national) < 8:
        return prefix + "*" * len(national)
    return f"{prefix}{national[:3]}****{national[-4:]}"
