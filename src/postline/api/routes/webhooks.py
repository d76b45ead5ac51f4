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

The router's lifespan runs the `ReceiptIntake`: a group commit that stores
the receipts of concurrent requests in one statement, and the settler that
applies receipts which arrived before their message was recorded as `sent`
(`store/receipts.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, FastAPI, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from postline.api.bodies import read_limited
from postline.api.deps import ComponentsDep
from postline.api.errors import ApiError
from postline.api.schemas import ErrorEnvelope
from postline.batching import GroupCommit
from postline.domain.receipts import Receipt, sendgrid_receipts, twilio_receipt
from postline.domain.statuses import Status
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
from postline.queue.streams import RedisQueue
from postline.store.availability import DB_UNAVAILABLE
from postline.store.receipts import Applied, ApplyResult, ReceiptStore

log = logging.getLogger("postline.receipts")

#: How often each API process applies receipts that arrived before `sent`.
SETTLE_INTERVAL_SECONDS = 1.0
TWILIO_MAX_BYTES = 64 * 1024
# SendGrid batches events; a batch stays well under this.
SENDGRID_MAX_BYTES = 8 * 1024 * 1024

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 403, 413, 503)
}


class ReceiptIntake:
    """Stores the receipts of concurrent webhook requests a batch at a time.

    Twilio posts one status per request; under load many arrive together and
    a group commit turns them into one statement (SendGrid's arrays ride the
    same path). The intake also runs the settler for receipts that arrived
    before their message was recorded as `sent`.
    """

    def __init__(
        self,
        store: ReceiptStore,
        *,
        queue: RedisQueue | None = None,
        settle_every: float = SETTLE_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self._queue = queue
        self._commits: GroupCommit[list[Receipt]] = GroupCommit(
            self._flush, max_batch=100, parallel=2
        )
        self._settle_every = settle_every
        self._settler: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._commits.start()
        self._settler = asyncio.create_task(self._settle_forever(), name="receipt-settler")

    async def close(self) -> None:
        await self._commits.close()
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler

    async def submit(self, provider: str, receipts: list[Receipt]) -> None:
        """Returns once `receipts` are stored (applied, parked or found irrelevant)."""
        if not receipts:
            return
        try:
            await self._commits.submit(receipts)
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable, %s receipts not stored: %s", provider, exc)
            # Not 2xx, so the provider delivers the report again later.
            raise ApiError(503, "the database is unavailable", code="database_unavailable") from exc

    async def _flush(self, batch: Sequence[list[Receipt]]) -> None:
        result = await self.store.apply([r for receipts in batch for r in receipts])
        _log(result)
        await self._dead_letter(result.applied)

    async def _dead_letter(self, applied: Sequence[Applied]) -> None:
        """A message a receipt failed gets its dead letter too (SPEC 3.1), best effort."""
        failed = [a for a in applied if a.status == Status.FAILED]
        if not failed or self._queue is None:
            return
        try:
            await self._queue.dead_letter(
                [{"id": str(a.message_id), "source": "receipt"} for a in failed]
            )
        except (RedisError, OSError) as exc:
            log.warning("dead letters of %d receipt failures not written: %s", len(failed), exc)

    async def _settle_forever(self) -> None:
        while True:
            try:
                settled = await self.store.settle_parked()
            except DB_UNAVAILABLE as exc:
                log.warning("applying parked receipts failed, will retry: %s", exc)
            except Exception:  # a bug must not stop the settler; the next pass tries again
                log.exception("applying parked receipts crashed")
            else:
                await self._dead_letter(settled.applied)
                if settled.applied:
                    log.info("applied %d receipts that arrived before sent", len(settled.applied))
                if settled.expired:
                    log.warning(
                        "dropped %d receipts whose message never showed up", settled.expired
                    )
            await asyncio.sleep(self._settle_every)


def _log(result: ApplyResult) -> None:
    for receipt in result.unknown:
        log.info(
            "%s receipt for an unknown message: id=%s provider_id=%s status=%s",
            receipt.provider,
            receipt.message_id,
            receipt.provider_message_id,
            receipt.status,
        )
    for receipt in result.parked:
        log.info(
            "%s receipt kept until its message is recorded as sent: id=%s provider_id=%s",
            receipt.provider,
            receipt.message_id,
            receipt.provider_message_id,
        )
    log.debug(
        "receipts: %d applied, %d parked, %d noted, %d ignored, %d unknown",
        result.count("applied"),
        result.count("parked"),
        result.count("noted"),
        result.count("ignored"),
        result.count("unknown"),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's own lifespan, which has built the components by now."""
    parts = app.state.components
    intake = ReceiptIntake(ReceiptStore(parts.pool), queue=parts.queue)
    intake.start()
    app.state.receipts = intake
    try:
        yield
    finally:
        await intake.close()


router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], lifespan=lifespan)


def receipt_intake(request: Request) -> ReceiptIntake:
    intake: ReceiptIntake = request.app.state.receipts
    return intake


IntakeDep = Annotated[ReceiptIntake, Depends(receipt_intake)]


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query), else the request's own."""
    if not public_base_url:
        return str(request.url)
    url = public_base_url.rstrip("/") + request.url.path
    query = request.url.query
    return f"{url}?{query}" if query else url


@functools.lru_cache(maxsize=4)
def _public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    return load_sendgrid_public_key(encoded)


@router.post("/twilio/status", status_code=200, responses=ERRORS)
async def twilio_status(request: Request, parts: ComponentsDep, intake: IntakeDep) -> Response:
    """A Twilio message status callback."""
    raw = await read_limited(request, limit=TWILIO_MAX_BYTES, what="a webhook body")
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    settings = parts.settings
    url = signed_url(request, settings.public_base_url)
    signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
    token = settings.twilio_auth_token
    if not token or not twilio_signature_valid(token, url, pairs, signature):
        raise ApiError(403, f"missing or invalid {TWILIO_SIGNATURE_HEADER}")
    receipt = twilio_receipt(dict(pairs))
    await intake.submit("twilio", [receipt] if receipt is not None else [])
    return Response(status_code=200)


@router.post("/sendgrid/events", status_code=200, responses=ERRORS)
async def sendgrid_events(request: Request, parts: ComponentsDep, intake: IntakeDep) -> Response:
    """A batch of SendGrid Event Webhook events."""
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
    return Response(status_code=200)
