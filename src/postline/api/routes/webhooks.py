"""`/api/v1/webhooks`: delivery receipts from the providers (SPEC 3, "Provider callbacks").

- `POST /twilio/status`: a Twilio status callback, form-encoded, signed with
  `X-Twilio-Signature` (HMAC-SHA1 keyed by TWILIO_AUTH_TOKEN over the URL
  Twilio called and the sorted form parameters). The URL is PUBLIC_BASE_URL
  + path (+ query) when set, which is what Twilio sees behind a proxy; else
  the request's own URL.
- `POST /sendgrid/events`: SendGrid's signed Event Webhook, a JSON array,
  verified with SENDGRID_WEBHOOK_PUBLIC_KEY. A batch signed with a timestamp
  more than 10 minutes from now (either way) is `403`: a replay, or a clock
  too far off to tell it from one.

A missing or wrong signature, or no key to check it with, is `403` and
nothing in the body is acted on. A verified request is answered `200` with an
empty body as soon as its receipts are stored, including receipts for
messages Postline does not know, so the provider stops retrying; they are
logged. Replaying a genuine request is harmless: applying is idempotent.

The receipts go to the `ReceiptIntake` the app's lifespan runs
(`services/receipts.py`). Twilio's inbound message webhook, under the same
prefix and checked by the same `verified_twilio_form`, is in `inbound.py`.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Annotated
from urllib.parse import parse_qsl

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from postline.api.bodies import read_limited
from postline.api.deps import ComponentsDep
from postline.api.errors import ApiError
from postline.api.responses import error_responses
from postline.domain.receipts import sendgrid_receipts, twilio_receipt
from postline.domain.suppression import sendgrid_suppressions
from postline.providers.signatures import (
    SENDGRID_MAX_SKEW_SECONDS,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    InvalidKeyError,
    load_sendgrid_public_key,
    sendgrid_signature_valid,
    sendgrid_timestamp_fresh,
    twilio_signature_valid,
)
from postline.services.receipts import ReceiptIntake
from postline.settings import Settings
from postline.store.suppressions import SuppressionStore

log = logging.getLogger("postline.receipts")

#: How often each API process applies receipts that arrived before `sent`.
SETTLE_INTERVAL_SECONDS = 1.0
TWILIO_MAX_BYTES = 64 * 1024
# SendGrid batches events; a batch stays well under this.
SENDGRID_MAX_BYTES = 8 * 1024 * 1024

ERRORS = error_responses(
    "bad_request",
    "client_disconnected",
    "forbidden",
    "payload_too_large",
    "database_unavailable",
    "service_unavailable",
)


router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


def receipt_intake(parts: ComponentsDep) -> ReceiptIntake:
    return parts.receipts


IntakeDep = Annotated[ReceiptIntake, Depends(receipt_intake)]


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query), else the request's own."""
    if not public_base_url:
        return str(request.url)
    url = public_base_url.rstrip("/") + request.url.path
    query = request.url.query
    return f"{url}?{query}" if query else url


async def verified_twilio_form(request: Request, settings: Settings) -> list[tuple[str, str]]:
    """The form of a Twilio webhook whose `X-Twilio-Signature` holds; else `403`."""
    raw = await read_limited(request, limit=TWILIO_MAX_BYTES, what="a webhook body")
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    url = signed_url(request, settings.public_base_url)
    signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
    token = settings.twilio_auth_token
    if not token or not twilio_signature_valid(token, url, pairs, signature):
        raise ApiError(403, f"missing or invalid {TWILIO_SIGNATURE_HEADER}")
    return pairs


@functools.lru_cache(maxsize=4)
def _public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    return load_sendgrid_public_key(encoded)


@router.post(
    "/twilio/status",
    status_code=200,
    responses=ERRORS,
    description="A Twilio message status callback: form-encoded, signed with "
    f"`{TWILIO_SIGNATURE_HEADER}`, at most {TWILIO_MAX_BYTES} bytes.",
)
async def twilio_status(request: Request, parts: ComponentsDep, intake: IntakeDep) -> Response:
    pairs = await verified_twilio_form(request, parts.settings)
    receipt = twilio_receipt(dict(pairs))
    await intake.submit("twilio", [receipt] if receipt is not None else [])
    return Response(status_code=200)


@router.post(
    "/sendgrid/events",
    status_code=200,
    responses=ERRORS,
    description="A batch of SendGrid Event Webhook events: a JSON array, signed with "
    f"`{SENDGRID_SIGNATURE_HEADER}`, at most {SENDGRID_MAX_BYTES} bytes.",
)
async def sendgrid_events(request: Request, parts: ComponentsDep, intake: IntakeDep) -> Response:
    raw = await read_limited(request, limit=SENDGRID_MAX_BYTES, what="a webhook body")
    encoded = parts.settings.sendgrid_webhook_public_key
    if not encoded:
        raise ApiError(403, "SENDGRID_WEBHOOK_PUBLIC_KEY is not configured")
    try:
        key = _public_key(encoded)
    except InvalidKeyError as exc:
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used: %s", exc)
        raise ApiError(403, "SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used") from exc
    signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
    if not sendgrid_signature_valid(key, raw, signature, timestamp):
        raise ApiError(403, f"missing or invalid {SENDGRID_SIGNATURE_HEADER}")
    if not sendgrid_timestamp_fresh(timestamp, now=time.time()):
        minutes = SENDGRID_MAX_SKEW_SECONDS // 60
        raise ApiError(
            403, f"{SENDGRID_TIMESTAMP_HEADER} is more than {minutes} minutes off (replay)"
        )
    try:
        events = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "the body must be a JSON array of events") from exc
    if not isinstance(events, list):
        raise ApiError(400, "the body must be a JSON array of events")
    await intake.submit("sendgrid", sendgrid_receipts(events))
    # Bounces, spam reports and unsubscribes also stop later sends (idempotent).
    await SuppressionStore(parts.pool).add(sendgrid_suppressions(events))
    return Response(status_code=200)
