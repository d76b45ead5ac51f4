"""Unsubscribe tokens: a genuine one names its message, nothing else names any."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from postline.domain.unsubscribe import link_key, message_of, token_for

KEY = link_key(b"k" * 32)


@given(st.uuids())
def test_a_token_names_its_message(message_id: uuid.UUID) -> None:
    token = token_for(KEY, message_id)
    assert message_of(KEY, token) == message_id
    assert token.isascii() and "=" not in token and "/" not in token


@given(st.uuids(), st.integers(min_value=0, max_value=42), st.sampled_from("AQgw_-"))
def test_a_changed_token_names_nothing(message_id: uuid.UUID, at: int, char: str) -> None:
    token = token_for(KEY, message_id)
    changed = token[:at] + char + token[at + 1 :]
    if changed != token:
        assert message_of(KEY, changed) is None


@given(st.uuids())
def test_another_key_reads_nothing(message_id: uuid.UUID) -> None:
    assert message_of(link_key(b"x" * 32), token_for(KEY, message_id)) is None


@given(st.text(max_size=80))
def test_any_text_is_refused_or_genuine(text: str) -> None:
    found = message_of(KEY, text)
    assert found is None or token_for(KEY, found) == text
