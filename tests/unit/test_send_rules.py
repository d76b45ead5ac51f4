"""Text rules of a send (domain.validation, domain.addresses): pure, no servers.

The property tests state the promise behind them: whatever text a client
puts in any field, a send is either refused with a SendRuleError naming the
field, or holds nothing PostgreSQL would refuse (NUL in text, `\\u0000` in
jsonb) and nothing that could start a mail header of its own.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postline.domain import addresses
from postline.domain.channels import Channel
from postline.domain.text import HEADER_UNSAFE
from postline.domain.validation import CheckedSend, SendRuleError, check_send

MAIL: dict[str, Any] = {
    "channel": Channel.EMAIL, "from_addr": "a@example.com", "to_addr": "b@example.com",
    "body": "x", "subject": "s", "html": None, "attachments": [], "ordering_key": None,
    "metadata": {},
}  # fmt: skip


def mail(**fields: Any) -> CheckedSend:
    return check_send(**{**MAIL, **fields})


def attachment(**fields: str) -> dict[str, str]:
    return {"filename": "a.txt", "content_type": "text/plain", "content": "eA==", **fields}


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Bob <b@example.com>", "Bob"),
        ('"Bob, Jr" <b@example.com>', "Bob, Jr"),
        ('"Bo\\"b" <b@example.com>', 'Bo"b'),
        ("O'Brien <b@example.com>", "O'Brien"),
        ("Ünïcødé Ñame <b@example.com>", "Ünïcødé Ñame"),
        ("<b@example.com>", ""),
        ("b@example.com", ""),
    ],
)
def test_display_names_that_read_back_as_given(value: str, name: str) -> None:
    stored = addresses.email(value)
    assert addresses.email_parts(stored) == (name, "b@example.com")


@pytest.mark.parametrize(
    "value",
    [
        "Evil\r\nBcc: x@evil.com <b@example.com>",
        "Evil\nBcc: x@evil.com <b@example.com>",
        "Evil\rBcc: x@evil.com <b@example.com>",
        "Bo\x00b <b@example.com>",
        "Bo\x7fb <b@example.com>",
        "Bo\x85b <b@example.com>",
        "Bob\u2028Bcc: x <b@example.com>",
        "Bob\u2029 <b@example.com>",
        "Bob, x@evil.com <b@example.com>",  # a parser reads the address `Bob`
        "Bob: x; <b@example.com>",
        "Bob @ evil.com <b@example.com>",
        '"Bob <b@example.com>',
    ],
)
def test_display_names_that_could_change_the_headers_or_the_recipient(value: str) -> None:
    with pytest.raises(SendRuleError) as caught:
        mail(to_addr=value)
    assert caught.value.field == "to"
    with pytest.raises(SendRuleError) as caught:
        mail(from_addr=value)
    assert caught.value.field == "from"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content_type": "text/plain\x00"}, "attachments.0.content_type"),
        ({"content_type": "text/plain\r\nX-Injected: 1"}, "attachments.0.content_type"),
        ({"content_type": "text/plain\u2028"}, "attachments.0.content_type"),
        ({"content_type": "plain"}, "attachments.0.content_type"),
        ({"content_type": "text/" + "x" * 300}, "attachments.0.content_type"),
        ({"filename": "a\x00.txt"}, "attachments.0.filename"),
        ({"filename": "a.txt\r\nX-Injected: 1"}, "attachments.0.filename"),
        ({"filename": "a\x1b.txt"}, "attachments.0.filename"),
        ({"filename": "a" * 256}, "attachments.0.filename"),
    ],
)
def test_attachment_header_fields(fields: dict[str, str], field: str) -> None:
    with pytest.raises(SendRuleError) as caught:
        mail(attachments=[attachment(**fields)])
    assert caught.value.field == field


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"content_type": "text/plain; charset=utf-8"},
        {"content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {"filename": "Rechnung März 2030 (Kopie).pdf", "content_type": "application/pdf"},
        {"filename": "tab\there.txt"},
    ],
)
def test_ordinary_attachments_pass(fields: dict[str, str]) -> None:
    checked = mail(attachments=[attachment(**fields)])
    assert checked.attachments == [attachment(**fields)]


@pytest.mark.parametrize("key", ["a\x00", "a\nb", "a\rb", "a\tb", "a\x85b"])
def test_ordering_keys_hold_no_control_character(key: str) -> None:
    with pytest.raises(SendRuleError) as caught:
        mail(ordering_key=key)
    assert caught.value.field == "ordering_key"


def test_a_subject_may_hold_a_tab_but_no_line_break() -> None:
    assert mail(subject="Order\t42").subject == "Order\t42"
    for subject in ("a\r\nBcc: x", "a\nb", "a\u2028b", "a\x85b"):
        with pytest.raises(SendRuleError):
            mail(subject=subject)


@pytest.mark.parametrize(
    "metadata",
    [{"big": 2**70}, {"a\x00": 1}, {"a": "\x00"}, {"a": [{"b": "\x00"}]}],
    ids=["integer-past-64-bits", "nul-key", "nul-value", "nul-nested"],
)
def test_metadata_the_database_or_the_encoder_would_refuse(metadata: dict[str, Any]) -> None:
    with pytest.raises(SendRuleError) as caught:
        mail(metadata=metadata)
    assert caught.value.field == "metadata"


def _no_database_refusal(checked: CheckedSend) -> None:
    for text in (checked.from_addr, checked.to_addr, checked.body, checked.subject,
                 checked.html, checked.ordering_key):  # fmt: skip
        assert text is None or "\x00" not in text
    for document in (checked.attachments, checked.metadata):
        assert b"\\u0000" not in orjson.dumps(document)


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=40))
def test_any_display_name_is_refused_or_reads_back_the_validated_address(name: str) -> None:
    try:
        stored = addresses.email(f"{name} <b@example.com>")
    except addresses.AddressError:
        return
    assert addresses.email_parts(stored)[1] == "b@example.com"
    assert not HEADER_UNSAFE.search(stored)


@settings(max_examples=300, deadline=None)
@given(
    body=st.text(max_size=30),
    subject=st.text(max_size=30),
    html=st.none() | st.text(max_size=30),
    key=st.none() | st.text(max_size=30),
    filename=st.text(max_size=20),
    content_type=st.sampled_from(["text/plain", "image/png"]) | st.text(max_size=20),
    meta=st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3),
)
def test_any_text_is_refused_or_storable(
    body: str, subject: str, html: str | None, key: str | None, filename: str,
    content_type: str, meta: dict[str, Any],
) -> None:  # fmt: skip
    try:
        checked = mail(
            body=body, subject=subject, html=html, ordering_key=key, metadata=meta,
            attachments=[attachment(filename=filename, content_type=content_type)],
        )  # fmt: skip
    except SendRuleError:
        return
    _no_database_refusal(checked)
    assert checked.subject is not None and not HEADER_UNSAFE.search(checked.subject)
    for item in checked.attachments:
        assert not HEADER_UNSAFE.search(item["filename"] + item["content_type"])
