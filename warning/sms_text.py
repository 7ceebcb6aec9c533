"""SMS length: GSM-7 or UCS-2, characters as the network counts them, and the number of parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: GSM 03.38 default alphabet (one septet each), 3GPP TS 23.038 §6.2.1
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: escape + char, two septets each, TS 23.038 §6.2.1.1
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
# Segment sizes (TS 23.040: 140 octets; a 6-octet concatenation UDH leaves 134 octets):
#: GSM-7 septets in a single message / per part of a concatenated one
GSM7_SINGLE, GSM7_PART = 160, 153
#: UCS-2 code units in a single message / per part (the limits Twilio and Kannel apply)
UCS2_SINGLE, UCS2_PART = 70, 67

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True, slots=True)
class SmsLength:
    """How the network sees a text: its encoding, its length in septets or UTF-16 units, its parts."""

    encoding: Encoding
    chars: int
    parts: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic set or its extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str, encoding: Encoding) -> list[int]:
    """The width of each character: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if encoding == "gsm7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _pack(widths: list[int], per_part: int) -> int:
    """Parts needed when a character may not be split across parts (escape pairs, surrogate pairs)."""
    parts, used = 1, 0
    for w in widths:
        if used + w > per_part:
            parts, used = parts + 1, 0
        used += w
    return parts


def measure(text: str) -> SmsLength:
    """Encoding, length and number of parts of `text`."""
    encoding: Encoding = "gsm7" if is_gsm7(text) else "ucs2"
    widths = _units(text, encoding)
    chars = sum(widths)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if encoding == "gsm7" else (UCS2_SINGLE, UCS2_PART)
    parts = 1 if chars <= single else _pack(widths, per_part)
    return SmsLength(encoding, chars, parts)


def segments(text: str) -> int:
    """The number of SMS parts `text` is sent as (an empty text is still one message)."""
    return measure(text).parts
