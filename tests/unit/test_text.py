"""Which characters count as controls (domain.text), checked against Unicode itself.

The three patterns are written as code point ranges; the properties state
them in Unicode's own terms (general category Cc, the line separators), so
a range typed one off is caught.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from postline.domain.text import ANY_CONTROL, CONTROL, HEADER_UNSAFE

# Every control and the characters next to them, then anything at all.
near_controls = st.characters(max_codepoint=0xA0) | st.sampled_from("\u2027\u2028\u2029\u202a")
texts = st.text(near_controls | st.characters(), max_size=30)


def is_cc(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def test_each_pattern_over_the_first_code_points_and_the_line_separators() -> None:
    for char in map(chr, [*range(0x3000), 0x2028, 0x2029, 0xFEFF, 0x10FFFF]):
        assert bool(ANY_CONTROL.search(char)) == is_cc(char), hex(ord(char))
        assert bool(CONTROL.search(char)) == (is_cc(char) and char not in "\t\n\r"), hex(ord(char))
        header_unsafe = (is_cc(char) and char != "\t") or char in "\u2028\u2029"
        assert bool(HEADER_UNSAFE.search(char)) == header_unsafe, hex(ord(char))


@given(text=texts)
def test_a_text_matches_when_one_of_its_characters_does(text: str) -> None:
    assert bool(ANY_CONTROL.search(text)) == any(is_cc(c) for c in text)
    assert bool(CONTROL.search(text)) == any(is_cc(c) and c not in "\t\n\r" for c in text)
    assert bool(HEADER_UNSAFE.search(text)) == any(
        (is_cc(c) and c != "\t") or c in "\u2028\u2029" for c in text
    )


@given(text=texts)
def test_the_patterns_nest(text: str) -> None:
    # What a body refuses, a header refuses too; what a header refuses, a key refuses,
    # except the line separators, which are text to a key.
    if CONTROL.search(text):
        assert HEADER_UNSAFE.search(text)
    if HEADER_UNSAFE.search(text.replace("\u2028", "").replace("\u2029", "")):
        assert ANY_CONTROL.search(text)
