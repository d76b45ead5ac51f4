"""One-click unsubscribe links (RFC 8058) for email, signed so nobody can forge one.

An email sent with `list_unsubscribe: true` carries

    List-Unsubscribe: <PUBLIC_BASE_URL/api/v1/unsubscribe/TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

TOKEN is the message id and an HMAC-SHA256 tag of it (truncated to 128
bits), base64url without padding: a mailbox provider POSTs to the URL and
Postline suppresses that recipient for that message's sender. The key is
derived from the server's callback signing secret (`link_key`), so one
secret configures both; rotating it retires the links already sent, which
then answer 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass

UNSUBSCRIBE_PATH = "/api/v1/unsubscribe/"
_TAG_BYTES = 16
_CONTEXT = b"postline list-unsubscribe v1"


def link_key(signing_key: bytes) -> bytes:
    """The links' own key, derived from the callback signing key."""
    return hmac.new(signing_key, _CONTEXT, hashlib.sha256).digest()


def _tag(key: bytes, message_id: uuid.UUID) -> bytes:
    return hmac.new(key, message_id.bytes, hashlib.sha256).digest()[:_TAG_BYTES]


def token_for(key: bytes, message_id: uuid.UUID) -> str:
    raw = message_id.bytes + _tag(key, message_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def message_of(key: bytes, token: str) -> uuid.UUID | None:
    """The message id a genuine token names, else None."""
    if not token.isascii() or len(token) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 + _TAG_BYTES:
        return None
    message_id = uuid.UUID(bytes=raw[:16])
    if not hmac.compare_digest(raw[16:], _tag(key, message_id)):
        return None
    return message_id


@dataclass(frozen=True, slots=True)
class Links:
    """Makes and reads the links of one server (its public URL and link key)."""

    base_url: str
    key: bytes

    def url(self, message_id: uuid.UUID) -> str:
        return self.base_url.rstrip("/") + UNSUBSCRIBE_PATH + token_for(self.key, message_id)

    def message_of(self, token: str) -> uuid.UUID | None:
        return message_of(self.key, token)


def headers_for(url: str) -> dict[str, str]:
    """The two RFC 8058 headers for a message whose link is `url`."""
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
