"""Verifying Postline's client callbacks (Standard Webhooks 1.0, SPEC 3.1).

A callback carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` signatures of
"<id>.<timestamp>.<body>", keyed by the secret `whsec_<base64 key>`. The
timestamp is signed too, so refusing old ones refuses replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from postline.client.errors import BadSignature, InvalidCallback, StaleCallback

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one


def signing_key(secret: str) -> bytes:
    """The HMAC key in a `whsec_<base64>` secret (the prefix may be left out)."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret must be whsec_ followed by base64") from exc


def verify_callback(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The callback's event (`{"type", "timestamp", "data"}`) once its signature
    and timestamp hold; `InvalidCallback` (or a subclass) otherwise.

    `body` must be the bytes as received, before any JSON parsing.
    """
    found = {name.lower(): value for name, value in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in found
    ]
    if missing:
        raise InvalidCallback(f"missing header(s): {', '.join(missing)}")
    stamp = found["webhook-timestamp"].strip()
    if not stamp.isascii() or not stamp.isdigit():
        raise InvalidCallback("webhook-timestamp is not Unix seconds")
    age = (time.time() if now is None else now) - int(stamp)
    if abs(age) > tolerance:
        raise StaleCallback(f"webhook-timestamp is {age:.0f} s from now (tolerance {tolerance} s)")
    payload = f"{found['webhook-id']}.{stamp}.".encode() + body
    expected = hmac.new(signing_key(secret), payload, hashlib.sha256).digest()
    if not any(_matches(candidate, expected) for candidate in found["webhook-signature"].split()):
        raise BadSignature("no v1 signature matches this secret")
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise InvalidCallback("the body is not JSON") from exc
    if not isinstance(event, dict):
        raise InvalidCallback("the body is not a JSON object")
    return event


def _matches(candidate: str, expected: bytes) -> bool:
    version, _, encoded = candidate.partition(",")
    if version != "v1":
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    return hmac.compare_digest(given, expected)
