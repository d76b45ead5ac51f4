"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com).

`webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
keyed by the secret `whsec_<base64 key>`. Any Standard Webhooks library
verifies what this signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


class BadSecret(ValueError):
    """The secret is not `whsec_` followed by base64."""


def secret_key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise BadSecret("CALLBACK_SIGNING_SECRET must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except ValueError as exc:
        raise BadSecret("CALLBACK_SIGNING_SECRET must be whsec_ followed by base64") from exc
    if len(key) < 16:
        raise BadSecret("CALLBACK_SIGNING_SECRET must hold at least 16 bytes")
    return key


def sign(key: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    payload = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id=webhook_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
        "user-agent": "Postline-Callbacks/1",
    }
