"""SMS length: GSM-7 with extension characters, UCS-2 boundaries, parts."""

from __future__ import annotations

import pytest

from warning.sms_text import is_gsm7, measure, segments


@pytest.mark.parametrize(("text", "encoding", "chars", "parts"), [
    ("", "gsm7", 0, 1),
    ("a" * 160, "gsm7", 160, 1),
    ("a" * 161, "gsm7", 161, 2),
    ("a" * 306, "gsm7", 306, 2),
    ("a" * 307, "gsm7", 307, 3),
    ("€" * 80, "gsm7", 160, 1),  # extension characters count two septets
    ("€" * 81, "gsm7", 162, 2),
    ("[" + "a" * 159, "gsm7", 161, 2),
    ("a" * 152 + "{", "gsm7", 154, 1),
    ("a" * 152 + "{" + "a" * 8, "gsm7", 162, 2),  # an escape pair is never split: part 1 holds 152
    ("Ça va? ¿Sé? 50% @home", "gsm7", 21, 1),
    ("Ça va? ¿Sí?", "ucs2", 11, 1),  # í is not in the GSM-7 set
    ("暴" * 70, "ucs2", 70, 1),
    ("暴" * 71, "ucs2", 71, 2),
    ("暴" * 134, "ucs2", 134, 2),
    ("暴" * 135, "ucs2", 135, 3),
    ("a" * 69 + "暴", "ucs2", 70, 1),  # one Chinese character makes the whole text UCS-2
    ("😀" * 35, "ucs2", 70, 1),  # outside the BMP: two UTF-16 units
    ("a" * 66 + "😀" + "a" * 66, "ucs2", 134, 3),  # a surrogate pair is not split across parts
    ("【县应急管理局】", "ucs2", 8, 1),
    ("ç", "ucs2", 1, 1),  # lower-case c-cedilla is not in the GSM-7 set (only Ç)
])
def test_measure_table(text: str, encoding: str, chars: int, parts: int) -> None:
    m = measure(text)
    assert (m.encoding, m.chars, m.parts) == (encoding, chars, parts)
    assert segments(text) == parts


def test_is_gsm7() -> None:
    assert is_gsm7("Hello {world} ~ | ^ €")
    assert not is_gsm7("预警")
