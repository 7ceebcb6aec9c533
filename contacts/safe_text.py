"""Text shown to people must show what it says: control, bidi-override and zero-width characters are refused.

A bidi override (U+202E) makes "1 level: red" read backwards on a screen, a zero-width space splits a
word that looks whole, a control character ends up inside an SMS. Names and headlines are one line;
descriptions and instructions may hold line breaks (and tabs), nothing else invisible.
"""

from __future__ import annotations

import unicodedata

#: explicit embeddings, overrides and isolates (U+202A–202E, U+2066–2069) and the implicit marks
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: zero-width space, non-joiner, joiner, word joiner, byte-order mark
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: what a multi-line text may hold besides printable characters
LINE_BREAKS = frozenset("\n\r\t")


def unsafe_char(text: str, *, multiline: bool = False) -> str | None:
    """The first character a person could not see or that reorders the text, as `U+XXXX (name)`; None if clean."""
    for ch in text:
        if ch.isprintable() and ch not in BIDI_CONTROLS and ch not in ZERO_WIDTH:
            continue
        if (multiline and ch in LINE_BREAKS) or unicodedata.category(ch) == "Zs":
            continue  # a line break where allowed; no-break and ideographic spaces print as a space
        return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control')})"
    return None


def unsafe_reason(text: str, *, multiline: bool = False) -> str | None:
    """A Chinese-first message for a field holding an unsafe character, or None."""
    found = unsafe_char(text, multiline=multiline)
    if found is None:
        return None
    allowed = "（换行除外）" if multiline else ""
    return (f"含不可见字符或方向控制字符{allowed} contains an invisible, control or bidi-override character: "
            f"{found}")
