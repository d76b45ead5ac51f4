"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com).

`webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
keyed by the secret `whsec_<base64 key>` (`settings.whsec_key` reads it).
Any Standard Webhooks library verifies what this signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


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
