"""Channel rules for a send request (SPEC 3, 3.1): pure functions, no I/O.

`check_send` takes the fields a client gave and returns them normalised, or
raises `SendRuleError` naming the field, so the API can answer 422 with the
field in the error's details.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from postline.domain import addresses
from postline.domain.channels import Channel
from postline.domain.text import ANY_CONTROL, CONTROL, HEADER_UNSAFE

MAX_TEXT_CHARS = 1600
MAX_EMAIL_BYTES = 1_000_000
MAX_METADATA_BYTES = 4096
MAX_MMS_ATTACHMENTS = 10
MAX_URL_CHARS = 2048
MAX_ORDERING_KEY_CHARS = 256
MAX_SUBJECT_CHARS = 998  # RFC 5322 line limit

MAX_ATTACHMENT_NAME_CHARS = 255
# type "/" subtype, then parameters (RFC 6838 4.2 restricted names).
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(\s*;.*)?", re.ASCII)


class SendRuleError(ValueError):
    """A field breaks a channel rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class EmailAttachment:
    filename: str
    content_type: str
    content: str


@dataclass(frozen=True, slots=True)
class CheckedSend:
    """A send request that passed every rule, with addresses normalised."""

    channel: Channel
    from_addr: str
    to_addr: str
    body: str | None
    subject: str | None
    html: str | None
    attachments: list[Any]
    ordering_key: str
    metadata: dict[str, Any]


def _no_controls(field: str, value: str | None) -> None:
    if value is not None and CONTROL.search(value):
        raise SendRuleError(field, "must not contain control characters")


def _http_url(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise SendRuleError(field, "must be an http or https URL")
    if len(value) > MAX_URL_CHARS or len(value) <= len("https://"):
        raise SendRuleError(field, f"must be a URL of at most {MAX_URL_CHARS} characters")
    if CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise SendRuleError(field, "must not contain spaces or control characters")
    try:
        host = urlsplit(value).hostname
    except ValueError as exc:  # a malformed port or IPv6 literal
        raise SendRuleError(field, "must be a valid URL") from exc
    if not host:
        raise SendRuleError(field, "must name a host")
    return value


def check_url(field: str, value: str) -> str:
    return _http_url(field, value)


def _address(channel: Channel, field: str, value: str) -> str:
    try:
        if channel is Channel.EMAIL:
            return addresses.email(value)
        if channel is Channel.WHATSAPP:
            return addresses.whatsapp(value)
        return addresses.phone(value)
    except addresses.AddressError as exc:
        raise SendRuleError(field, str(exc)) from exc


def _media_urls(attachments: Sequence[Any], *, low: int, high: int, channel: str) -> list[str]:
    if not low <= len(attachments) <= high:
        want = f"{low} to {high}" if low != high else str(high)
        raise SendRuleError("attachments", f"{channel} takes {want} attachment URLs")
    return [_http_url(f"attachments.{i}", item) for i, item in enumerate(attachments)]


def _email_attachments(attachments: Sequence[Any]) -> list[dict[str, str]]:
    checked: list[dict[str, str]] = []
    for i, item in enumerate(attachments):
        field = f"attachments.{i}"
        if not isinstance(item, dict) or set(item) != {"filename", "content_type", "content"}:
            raise SendRuleError(
                field, "email attachments are objects {filename, content_type, content}"
            )
        if not all(isinstance(v, str) and v for v in item.values()):
            raise SendRuleError(field, "filename, content_type and content must be strings")
        _attachment_header(f"{field}.filename", item["filename"])
        _attachment_header(f"{field}.content_type", item["content_type"])
        if not _MEDIA_TYPE.fullmatch(item["content_type"]):
            raise SendRuleError(f"{field}.content_type", "must be a media type: 'type/subtype'")
        try:
            base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SendRuleError(f"{field}.content", "must be base64") from exc
        checked.append(dict(item))
    return checked


def _attachment_header(field: str, value: str) -> None:
    # Both go into the attachment's MIME headers.
    if len(value) > MAX_ATTACHMENT_NAME_CHARS:
        raise SendRuleError(field, f"must be at most {MAX_ATTACHMENT_NAME_CHARS} characters")
    if HEADER_UNSAFE.search(value):
        raise SendRuleError(field, "must be one line without control characters")


def _metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = orjson.dumps(metadata)
    except orjson.JSONEncodeError as exc:  # an integer past 64 bits, a NaN object key...
        raise SendRuleError("metadata", "must be plain JSON (numbers within 64 bits)") from exc
    if len(encoded) > MAX_METADATA_BYTES:
        raise SendRuleError("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    if _holds_nul(metadata):
        raise SendRuleError("metadata", "must not contain NUL characters")
    return metadata


def _holds_nul(value: Any) -> bool:
    """A NUL character in any key or string of a JSON value (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _text_channel_body(channel: Channel, body: str | None, *, required: bool) -> None:
    if required and not body:
        raise SendRuleError("body", f"{channel.value} needs a non-empty body")
    if body is not None and len(body) > MAX_TEXT_CHARS:
        raise SendRuleError("body", f"must be at most {MAX_TEXT_CHARS} characters")


def _no_email_fields(channel: Channel, subject: str | None, html: str | None) -> None:
    if subject is not None:
        raise SendRuleError("subject", f"{channel.value} messages have no subject")
    if html is not None:
        raise SendRuleError("html", f"{channel.value} messages have no html part")


def _email_content(subject: str | None, body: str | None, html: str | None) -> None:
    if not subject or not subject.strip():
        raise SendRuleError("subject", "email needs a subject")
    if len(subject) > MAX_SUBJECT_CHARS or HEADER_UNSAFE.search(subject):
        raise SendRuleError("subject", "must be one line of at most 998 characters")
    if not body and not html:
        raise SendRuleError("body", "email needs a body, an html part or both")
    size = _utf8_size("body", body) + _utf8_size("html", html)
    if size > MAX_EMAIL_BYTES:
        raise SendRuleError(
            "body", f"body and html together must be at most {MAX_EMAIL_BYTES} bytes"
        )


def _utf8_size(field: str, text: str | None) -> int:
    try:
        return len((text or "").encode())
    except UnicodeEncodeError as exc:  # a lone surrogate: not text any provider can carry
        raise SendRuleError(field, "must be valid Unicode text") from exc


def _attachments(channel: Channel, attachments: Sequence[Any], body: str | None) -> list[Any]:
    if channel is Channel.SMS:
        if attachments:
            raise SendRuleError("attachments", "sms takes no attachments: use mms")
        return []
    if channel is Channel.MMS:
        return _media_urls(attachments, low=1, high=MAX_MMS_ATTACHMENTS, channel="mms")
    if channel is Channel.WHATSAPP:
        urls = _media_urls(attachments, low=0, high=1, channel="whatsapp")
        if not body and not urls:
            raise SendRuleError("body", "whatsapp needs a body or one media URL")
        return urls
    return _email_attachments(attachments)


def check_send(
    *,
    channel: Channel,
    from_addr: str,
    to_addr: str,
    body: str | None,
    subject: str | None,
    html: str | None,
    attachments: Sequence[Any],
    ordering_key: str | None,
    metadata: dict[str, Any],
) -> CheckedSend:
    """Applies every rule of SPEC 3 for `channel`; raises SendRuleError on the first broken."""
    for field, value in (("body", body), ("subject", subject)):
        _no_controls(field, value)
    if ordering_key is not None and ANY_CONTROL.search(ordering_key):
        raise SendRuleError("ordering_key", "must not contain control characters")
    _no_controls("html", html.replace("\x0c", "") if html else None)
    frm = _address(channel, "from", from_addr)
    to = _address(channel, "to", to_addr)
    if channel is Channel.EMAIL:
        _email_content(subject, body, html)
    else:
        _no_email_fields(channel, subject, html)
        _text_channel_body(channel, body, required=channel is Channel.SMS)
    checked_attachments = _attachments(channel, attachments, body)
    if ordering_key is not None and not 1 <= len(ordering_key) <= MAX_ORDERING_KEY_CHARS:
        raise SendRuleError("ordering_key", f"must be 1 to {MAX_ORDERING_KEY_CHARS} characters")
    default_key = addresses.email_addr(to) if channel is Channel.EMAIL else to
    return CheckedSend(
        channel=channel,
        from_addr=frm,
        to_addr=to,
        body=body,
        subject=subject,
        html=html,
        attachments=checked_attachments,
        ordering_key=ordering_key if ordering_key is not None else default_key,
        metadata=_metadata(metadata),
    )
