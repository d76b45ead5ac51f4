"""The validation matrix of `check_send` (SPEC 3, 3.1), one row per rule and channel.

Each refused row names the field the API reports in its 422 details; the
HTTP tests (tests/integration/test_validation.py) only prove that a refusal
reaches the client in the error envelope and that nothing is stored. Display
names, attachment headers and the "refused or storable" properties live in
test_send_rules.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from postline.domain.channels import Channel
from postline.domain.validation import (
    MAX_EMAIL_BYTES,
    MAX_METADATA_BYTES,
    MAX_ORDERING_KEY_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    CheckedSend,
    SendRuleError,
    check_send,
    check_url,
)

SMS, MMS, WA, MAIL = Channel.SMS, Channel.MMS, Channel.WHATSAPP, Channel.EMAIL
PNG = "https://x.org/a.png"
BASE: dict[Channel, dict[str, Any]] = {
    SMS: {"from_addr": "+15551234567", "to_addr": "+15559876543", "body": "Test"},
    MMS: {"from_addr": "+15551234567", "to_addr": "+15559876543", "attachments": [PNG]},
    WA: {"from_addr": "+15551234567", "to_addr": "+15559876543", "body": "Test"},
    MAIL: {"from_addr": "a@example.com", "to_addr": "b@example.com", "body": "x", "subject": "s"},
}
DEFAULTS: dict[str, Any] = {"body": None, "subject": None, "html": None, "attachments": [],
                            "ordering_key": None, "metadata": {}}  # fmt: skip


def send(channel: Channel, **fields: Any) -> CheckedSend:
    return check_send(channel=channel, **{**DEFAULTS, **BASE[channel], **fields})


def refused_field(channel: Channel, **fields: Any) -> str:
    with pytest.raises(SendRuleError) as caught:
        send(channel, **fields)
    assert caught.value.message, "a refusal says why"
    return caught.value.field


def urls(n: int) -> list[str]:
    return [f"https://x.org/{i}.png" for i in range(n)]


def attachment(**fields: Any) -> dict[str, Any]:
    return {"filename": "a.txt", "content_type": "text/plain", "content": "eA==", **fields}


def url_of(length: int) -> str:
    return "https://x.org/" + "a" * (length - len("https://x.org/"))


PHONES = [SMS, MMS, WA]
BAD_E164 = {
    "not-e164": "5559876543", "leading-zero": "+0551234567", "too-short": "+1555",
    "seven-digits": "+1234567", "sixteen-digits": "+1555987654312345", "plus-only": "+",
    "empty": "", "spaces": "+1 555 987 6543", "double-plus": "++15559876543",
    "letters": "+1555abc6543", "arabic-digits": "+١٥٥٥٩٨٧٦٥٤٣", "trailing-newline":
    "+15559876543\n", "sql": "+15559876543' OR '1'='1", "email": "b@example.com",
}  # fmt: skip
BAD_EMAIL = {
    "not-an-address": "not-an-address", "no-domain": "a@", "no-local": "@b.com",
    "two-ats": "a@b@c.com", "domain-without-dot": "a@b", "unclosed-angle": "Name <a@b.com",
    "header-injection": "b@example.com\r\nBcc: x@evil.com", "script": "<script>@x.com",
    "empty": "", "phone": "+15559876543", "two-angles": "A <a@b.com> <c@d.com>",
}  # fmt: skip

REFUSED = [
    # addresses: E.164 on the phone channels, RFC 5322 on email; `from` and `to` alike
    *(pytest.param(ch, {side: value}, side.removesuffix("_addr"), id=f"{ch}-{side}-{name}")
      for ch in PHONES for side in ("from_addr", "to_addr") for name, value in BAD_E164.items()),
    *(pytest.param(MAIL, {side: value}, side.removesuffix("_addr"), id=f"email-{side}-{name}")
      for side in ("from_addr", "to_addr") for name, value in BAD_EMAIL.items()),
    pytest.param(WA, {"to_addr": "whatsapp:5559876543"}, "to", id="whatsapp-prefix-not-e164"),
    pytest.param(WA, {"to_addr": "whatsapp:whatsapp:+15559876543"}, "to", id="whatsapp-twice"),
    pytest.param(WA, {"to_addr": "WhatsApp:+15559876543"}, "to", id="whatsapp-prefix-case"),
    pytest.param(SMS, {"to_addr": "whatsapp:+15559876543"}, "to", id="sms-whatsapp-prefix"),
    pytest.param(MMS, {"from_addr": "whatsapp:+15551234567"}, "from", id="mms-whatsapp-prefix"),
    # bodies
    pytest.param(SMS, {"body": ""}, "body", id="sms-empty-body"),
    pytest.param(SMS, {"body": None}, "body", id="sms-no-body"),
    *(pytest.param(ch, {"body": "x" * (MAX_TEXT_CHARS + 1)}, "body", id=f"{ch}-body-1601")
      for ch in PHONES),
    pytest.param(SMS, {"body": "😀" * (MAX_TEXT_CHARS + 1)}, "body", id="sms-1601-code-points"),
    pytest.param(WA, {"body": None}, "body", id="whatsapp-neither-body-nor-media"),
    pytest.param(WA, {"body": ""}, "body", id="whatsapp-empty-body-no-media"),
    pytest.param(MAIL, {"body": None}, "body", id="email-no-content"),
    pytest.param(MAIL, {"body": "", "html": ""}, "body", id="email-empty-content"),
    pytest.param(MAIL, {"body": "x" * (MAX_EMAIL_BYTES + 1)}, "body", id="email-body-over-1mb"),
    pytest.param(MAIL, {"body": "é" * 500_001}, "body", id="email-body-1mb-in-utf8"),
    pytest.param(MAIL, {"body": "x" * 500_000, "html": "x" * 500_001}, "body",
                 id="email-body-and-html-over-1mb"),
    pytest.param(MAIL, {"body": None, "html": "é" * 500_001}, "body", id="email-html-over-1mb"),
    # control characters: C0 (but tab, LF, CR), DEL and C1, in each text field
    *(pytest.param(ch, {"body": f"a{c}b"}, "body", id=f"{ch}-body-{ord(c):#04x}")
      for ch in (SMS, MAIL) for c in "\x00\x07\x0b\x0c\x1b\x7f\x85\x9f"),
    pytest.param(MMS, {"body": "nul\x00byte"}, "body", id="mms-body-nul"),
    pytest.param(WA, {"body": "\x1b[31mred"}, "body", id="whatsapp-body-ansi-escape"),
    pytest.param(MAIL, {"html": "<p>\x00</p>"}, "html", id="email-html-nul"),
    pytest.param(MAIL, {"html": "<p>\x1b</p>"}, "html", id="email-html-escape"),
    # subject and html belong to email only
    *(pytest.param(ch, {"subject": "Hi"}, "subject", id=f"{ch}-subject") for ch in PHONES),
    *(pytest.param(ch, {"html": "<p>Hi</p>"}, "html", id=f"{ch}-html") for ch in PHONES),
    pytest.param(MAIL, {"subject": None}, "subject", id="email-no-subject"),
    pytest.param(MAIL, {"subject": ""}, "subject", id="email-empty-subject"),
    pytest.param(MAIL, {"subject": " \t "}, "subject", id="email-blank-subject"),
    pytest.param(MAIL, {"subject": "s" * (MAX_SUBJECT_CHARS + 1)}, "subject", id="subject-999"),
    pytest.param(MAIL, {"subject": "s\r\nBcc: x@evil.com"}, "subject",
                 id="email-header-injection"),
    pytest.param(MAIL, {"subject": "nul\x00"}, "subject", id="subject-nul"),
    # attachments: none on sms, 1..10 URLs on mms, 0..1 on whatsapp, objects on email
    pytest.param(SMS, {"attachments": [PNG]}, "attachments", id="sms-attachment"),
    pytest.param(MMS, {"attachments": []}, "attachments", id="mms-without-attachments"),
    pytest.param(MMS, {"attachments": urls(11)}, "attachments", id="mms-eleven-urls"),
    pytest.param(WA, {"attachments": urls(2)}, "attachments", id="whatsapp-two-urls"),
    *(pytest.param(ch, {"attachments": [url]}, "attachments.0", id=f"{ch}-url-{name}")
      for ch in (MMS, WA) for name, url in {
          "ftp": "ftp://x.org/a.png", "javascript": "javascript:alert(1)",
          "file": "file:///etc/passwd", "no-scheme": "x.org/a.png", "scheme-only": "https://",
          "space": "https://x.org/a b.png", "tab": "https://x.org/a\tb", "nul": "https://x/\x00",
          "too-long": url_of(MAX_URL_CHARS + 1), "upper-case-scheme": "HTTPS://x.org/a.png",
          "not-a-string": {"url": PNG}, "empty": "",
      }.items()),
    pytest.param(MMS, {"attachments": [PNG, "ftp://x.org/b"]}, "attachments.1", id="mms-2nd-bad"),
    pytest.param(MAIL, {"attachments": [PNG]}, "attachments.0", id="email-url-attachment"),
    pytest.param(MAIL, {"attachments": [{"filename": "a.txt", "content": "eA=="}]},
                 "attachments.0", id="email-attachment-missing-key"),
    pytest.param(MAIL, {"attachments": [attachment(disposition="inline")]}, "attachments.0",
                 id="email-attachment-extra-key"),
    pytest.param(MAIL, {"attachments": [attachment(content=b"eA==")]}, "attachments.0",
                 id="email-attachment-bytes"),
    pytest.param(MAIL, {"attachments": [attachment(filename="")]}, "attachments.0",
                 id="email-attachment-empty-filename"),
    pytest.param(MAIL, {"attachments": [attachment(content="not base64!")]},
                 "attachments.0.content", id="email-attachment-not-base64"),
    pytest.param(MAIL, {"attachments": [attachment(content="eA=")]}, "attachments.0.content",
                 id="email-attachment-bad-padding"),
    pytest.param(MAIL, {"attachments": [attachment(), attachment(content="!")]},
                 "attachments.1.content", id="email-2nd-attachment-bad"),
    # ordering key
    *(pytest.param(ch, {"ordering_key": ""}, "ordering_key", id=f"{ch}-ordering-key-empty")
      for ch in BASE),
    *(pytest.param(ch, {"ordering_key": "k" * (MAX_ORDERING_KEY_CHARS + 1)}, "ordering_key",
                   id=f"{ch}-ordering-key-257") for ch in BASE),
    pytest.param(SMS, {"ordering_key": "key\nother"}, "ordering_key", id="ordering-key-newline"),
    # metadata: at most 4 KB as JSON, plain JSON only
    pytest.param(SMS, {"metadata": {"k": "v" * 5000}}, "metadata", id="metadata-too-big"),
    pytest.param(SMS, {"metadata": {"k": "v" * (MAX_METADATA_BYTES - 7)}}, "metadata",
                 id="metadata-4097-bytes"),
    pytest.param(SMS, {"metadata": {"k": "é" * 2100}}, "metadata", id="metadata-over-4kb-utf8"),
    pytest.param(SMS, {"metadata": {1: "a"}}, "metadata", id="metadata-non-string-key"),
    pytest.param(SMS, {"metadata": {"k": object()}}, "metadata", id="metadata-not-json"),
    # several rules broken: the first checked is the one reported
    pytest.param(SMS, {"body": "\x00", "to_addr": "bad", "subject": "s"}, "body",
                 id="controls-first"),
    pytest.param(MAIL, {"subject": "\x00", "body": "\x00"}, "body", id="body-before-subject"),
    pytest.param(SMS, {"ordering_key": "\x00", "to_addr": "bad"}, "ordering_key",
                 id="key-controls-before-addresses"),
    pytest.param(MAIL, {"html": "\x00", "from_addr": "bad"}, "html", id="html-before-addresses"),
    pytest.param(SMS, {"from_addr": "bad", "to_addr": "bad"}, "from", id="from-before-to"),
    pytest.param(MAIL, {"to_addr": "bad", "subject": None}, "to", id="to-before-content"),
    pytest.param(SMS, {"subject": "s", "body": ""}, "subject", id="email-fields-before-body"),
    pytest.param(MMS, {"body": "x" * 1601, "attachments": []}, "body",
                 id="body-before-attachments"),
    pytest.param(MMS, {"attachments": [], "ordering_key": ""}, "attachments",
                 id="attachments-before-key-length"),
    pytest.param(SMS, {"ordering_key": "", "metadata": {"k": "v" * 5000}}, "ordering_key",
                 id="key-before-metadata"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "fields", "field"), REFUSED)
def test_a_broken_rule_is_refused_naming_its_field(
    channel: Channel, fields: dict[str, Any], field: str
) -> None:
    assert refused_field(channel, **fields) == field


ACCEPTED = [
    *(pytest.param(ch, {side: value}, id=f"{ch}-{side}-{name}")
      for ch in PHONES for side in ("from_addr", "to_addr")
      for name, value in {"8-digits": "+12345678", "15-digits": "+123456789012345"}.items()),
    pytest.param(SMS, {"body": "x" * MAX_TEXT_CHARS}, id="sms-body-1600"),
    pytest.param(SMS, {"body": "😀" * MAX_TEXT_CHARS}, id="sms-1600-code-points"),
    pytest.param(SMS, {"body": "tab\there\nnew line\r\n\u2028"}, id="sms-tab-and-line-breaks"),
    pytest.param(MMS, {"body": None, "attachments": urls(10)}, id="mms-ten-urls-no-body"),
    pytest.param(MMS, {"body": "x" * MAX_TEXT_CHARS}, id="mms-body-1600"),
    pytest.param(MMS, {"attachments": [url_of(MAX_URL_CHARS)]}, id="mms-url-2048"),
    pytest.param(MMS, {"attachments": ["http://x.org/a.png"]}, id="mms-plain-http"),
    pytest.param(WA, {"body": None, "attachments": [PNG]}, id="whatsapp-media-only"),
    pytest.param(WA, {"body": "", "attachments": [PNG]}, id="whatsapp-empty-body-and-media"),
    pytest.param(WA, {"body": "x" * MAX_TEXT_CHARS, "attachments": [PNG]}, id="whatsapp-both"),
    pytest.param(MAIL, {"body": None, "html": "<p>x</p>"}, id="email-html-only"),
    pytest.param(MAIL, {"html": "<p>page\x0cbreak</p>"}, id="email-html-form-feed"),
    pytest.param(MAIL, {"subject": "s" * MAX_SUBJECT_CHARS}, id="email-subject-998"),
    pytest.param(MAIL, {"body": "x" * MAX_EMAIL_BYTES}, id="email-body-1mb"),
    pytest.param(MAIL, {"body": "x" * 500_000, "html": "x" * 500_000}, id="email-both-1mb"),
    pytest.param(MAIL, {"attachments": [attachment(), attachment(filename="b.pdf")]},
                 id="email-two-attachments"),
    pytest.param(MAIL, {"to_addr": "B@Example.COM"}, id="email-upper-case"),
    pytest.param(MAIL, {"to_addr": "josé@exämple.com"}, id="email-international"),
    *(pytest.param(ch, {"ordering_key": "k" * MAX_ORDERING_KEY_CHARS}, id=f"{ch}-key-256")
      for ch in BASE),
    pytest.param(SMS, {"ordering_key": "booking 42 ünï"}, id="ordering-key-spaces-unicode"),
    pytest.param(SMS, {"metadata": {"k": "v" * (MAX_METADATA_BYTES - 8)}}, id="metadata-4096"),
    pytest.param(SMS, {"metadata": {"a": [1, 2.5, None, True, {"b": "c"}]}}, id="metadata-nested"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "fields"), ACCEPTED)
def test_a_send_at_the_limits_passes_unchanged(channel: Channel, fields: dict[str, Any]) -> None:
    checked = send(channel, **fields)
    assert checked.channel is channel
    for name in ("body", "subject", "html", "metadata", "attachments"):
        if name in fields:
            assert getattr(checked, name) == fields[name]


@pytest.mark.parametrize(
    ("channel", "fields", "key"),
    [
        (SMS, {}, "+15559876543"),
        (MMS, {}, "+15559876543"),
        (WA, {"to_addr": "whatsapp:+15559876543"}, "+15559876543"),
        (MAIL, {"to_addr": "Bob <B@Example.COM>"}, "b@example.com"),
        (MAIL, {"to_addr": "  b@example.com  "}, "b@example.com"),
        (SMS, {"ordering_key": "booking-42"}, "booking-42"),
        (MAIL, {"ordering_key": "Booking-42"}, "Booking-42"),
    ],
    ids=["sms", "mms", "whatsapp", "email-display-name", "email-spaces", "given", "given-case"],
)
def test_the_ordering_key_defaults_to_the_recipient(
    channel: Channel, fields: dict[str, Any], key: str
) -> None:
    assert send(channel, **fields).ordering_key == key


def test_addresses_are_normalised_per_channel() -> None:
    checked = send(WA, from_addr="whatsapp:+15551234567", to_addr="+15559876543")
    assert (checked.from_addr, checked.to_addr) == ("+15551234567", "+15559876543")
    checked = send(MAIL, from_addr="  Shop <shop@example.com> ", to_addr="B@Example.COM")
    assert (checked.from_addr, checked.to_addr) == ("Shop <shop@example.com>", "B@Example.COM")


@pytest.mark.parametrize(
    "url",
    ["ftp://x.org/hook", "javascript:alert(1)", "https://", "http://x.org/a b", "https://x/\x7f",
     url_of(MAX_URL_CHARS + 1), "//x.org/hook", 42],
    ids=["ftp", "javascript", "scheme-only", "space", "control", "too-long", "no-scheme",
         "not-a-string"],
)  # fmt: skip
def test_a_callback_url_of_the_wrong_shape_is_refused(url: Any) -> None:
    with pytest.raises(SendRuleError) as caught:
        check_url("callback_url", url)
    assert caught.value.field == "callback_url"


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://example.com:8080/h?a=1",
                                 url_of(MAX_URL_CHARS)])  # fmt: skip
def test_a_callback_url_of_the_right_shape_is_kept(url: str) -> None:
    assert check_url("callback_url", url) == url


# Gaps once found here, now closed.


def test_metadata_may_hold_the_six_characters_backslash_u0000() -> None:
    # A Windows path or a JSON snippet: a backslash, then "u0000", no NUL at all.
    assert send(SMS, metadata={"path": "C:\\u0000"}).metadata == {"path": "C:\\u0000"}


def test_a_lone_surrogate_is_a_refusal_not_a_crash() -> None:
    # The API's JSON parser refuses lone surrogates first; check_send alone does not.
    assert refused_field(MAIL, body="\ud800") == "body"


@pytest.mark.parametrize("url", ["https:///hook", "https://?a=1", "http://#x"])
def test_a_url_without_a_host_is_refused(url: str) -> None:
    with pytest.raises(SendRuleError):
        check_url("callback_url", url)


@pytest.mark.parametrize(
    "metadata",
    [{"k": "nul\x00"}, {"nul\x00": 1}, {"a": [{"b": "\x00"}]}],
    ids=["value", "key", "nested"],
)
def test_a_nul_anywhere_in_metadata_is_refused(metadata: dict[str, object]) -> None:
    assert refused_field(SMS, metadata=metadata) == "metadata"
