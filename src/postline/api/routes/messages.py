"""`/api/v1/messages`: send, read, history."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from postline.api import examples
from postline.api.bodies import MAX_REQUEST_BYTES, read_limited
from postline.api.callback_urls import check_callback_target
from postline.api.deps import BEARER_SECURITY, AuthDep, Components, ComponentsDep, check_api_key
from postline.api.errors import ApiError, invalid, validated
from postline.api.responses import AUTHED, error_responses
from postline.api.schemas import EventPublic, MessageCreate, MessagePublic
from postline.api.strict_json import load_strict
from postline.domain.message import Change, Message, public_event, public_view
from postline.domain.statuses import Status
from postline.domain.text import ANY_CONTROL
from postline.services import changes
from postline.settings import Settings

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])

MAX_IDEMPOTENCY_KEY = 255
# What a send or a batch may answer besides its 2xx.
BODY_ERRORS = (
    *AUTHED,
    "client_disconnected",
    "payload_too_large",
    "unsupported_media_type",
    "validation_error",
)
ONE_MESSAGE = error_responses(*AUTHED, "not_found")
SEND_DESCRIPTION = f"""Accepts one message: `202` with status `pending` (or `scheduled`) once it
is stored in PostgreSQL, before any provider call; workers send it. In sync mode
(`SYNC_MESSAGE_PROCESSING=true`) one attempt is made inline and the answer is `201`
with its outcome (`sent`, `failed`, or `retrying` for a transient failure), or `201` `pending`
when an earlier message of its key is still open, or (with pacing on) its sender or provider
account has no slot free now: the workers send it then.

With an `Idempotency-Key`, the same key and the same JSON body within 24 h answer
`200` with the first message and queue nothing; the same key with another body is
`409`. The body may be at most {MAX_REQUEST_BYTES} bytes; each field's limits are in
the `MessageCreate` schema."""


def json_response(status: int, value: Any) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


async def read_json_body(request: Request) -> bytes:
    """The raw body, after the content-type and size checks."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    return await read_limited(request, limit=MAX_REQUEST_BYTES)


def checked_send(document: Any, settings: Settings) -> MessageCreate:
    """One send body, validated; 422 if it breaks a rule or needs what the
    server is not set up for (a batch reports it per item)."""
    payload = validated(MessageCreate, document)
    unmet = _unmet_needs(payload, settings)
    if unmet:
        raise invalid(unmet, unmet[0]["msg"])
    return payload


def _unmet_needs(payload: MessageCreate, settings: Settings) -> list[dict[str, Any]]:
    """Fields the server is not set up for, as 422 details (empty: none)."""
    unmet = []
    if payload.callback_url and not settings.callback_signing_secret:
        unmet.append(("callback_url", "CALLBACK_SIGNING_SECRET"))
    if payload.list_unsubscribe and not (
        settings.public_base_url and settings.callback_signing_secret
    ):
        unmet.append(("list_unsubscribe", "PUBLIC_BASE_URL and CALLBACK_SIGNING_SECRET"))
    return [
        {"loc": [field], "msg": f"{field} needs {what} to be set on the server", "type": "config"}
        for field, what in unmet
    ]


def checked_idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header as given, or 400 `invalid_idempotency_key`.

    An empty or blank key is a client bug (an unset variable, most often);
    stored like any other key, it would turn every later request carrying
    it into a replay of the first (SPEC 3: an empty key is 400).
    """
    if value is None:
        return None
    if not value.strip():
        problem = "must not be empty"
    elif len(value) > MAX_IDEMPOTENCY_KEY:
        problem = f"may be at most {MAX_IDEMPOTENCY_KEY} characters"
    elif ANY_CONTROL.search(value):
        problem = "must not contain control characters"
    else:
        return value
    raise ApiError(400, f"Idempotency-Key {problem}", code="invalid_idempotency_key")


@router.post(
    "/send",
    status_code=202,
    response_model=MessagePublic,
    summary="Send a message",
    description=SEND_DESCRIPTION,
    response_description="Accepted: stored and queued (`pending`), or `scheduled`",
    responses={
        200: {"model": MessagePublic, "description": "Idempotency-Key replay: the first message"},
        201: {"model": MessagePublic, "description": "Sent inline (sync mode): its outcome"},
        # not_found: a replayed key whose first message was deleted meanwhile.
        **error_responses(
            *BODY_ERRORS, "invalid_idempotency_key", "idempotency_key_reused", "not_found"
        ),
    },
    openapi_extra={
        "security": BEARER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/MessageCreate"},
                    "examples": examples.SEND,
                }
            },
        },
    },
)
async def send_message(
    request: Request,
    # Documented only (json_schema_extra): the route checks the key itself, so
    # every bad key gets the same 400 `invalid_idempotency_key`.
    _idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        json_schema_extra={"minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        description=f"Optional; 1 to {MAX_IDEMPOTENCY_KEY} characters, no control characters. "
        "Sending again with the same key and body within 24 h returns the first message.",
    ),
) -> Response:
    # The hottest route skips FastAPI's dependency solving (a sixth of its CPU
    # time when measured); the header parameter above only documents it.
    parts: Components = request.app.state.components
    check_api_key(request, parts)
    idempotency_key = checked_idempotency_key(request.headers.get("idempotency-key"))
    raw = await read_json_body(request)
    payload = checked_send(load_strict(raw), parts.settings)
    if payload.callback_url:
        await check_callback_target(parts.settings, payload.callback_url)
    message = payload.to_message(now=datetime.now(UTC))
    inline = parts.inline if message.status is Status.PENDING else None
    if idempotency_key is not None:
        request_hash = hashlib.sha256(
            orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
        ).digest()
        created, message_id, first_hash = await parts.acceptor.accept_idempotent(
            message, key=idempotency_key, request_hash=request_hash, enqueue=inline is None
        )
        if not created:
            if first_hash != request_hash:
                raise ApiError(
                    409,
                    "this Idempotency-Key was used with a different body",
                    code="idempotency_key_reused",
                )
            return json_response(200, public_view(await _stored(parts, message_id)))
    else:
        await parts.acceptor.accept([message], enqueue=inline is None)
    parts.metrics.accepted.labels(message.type.value).inc()
    if inline is not None:
        return json_response(201, public_view(await inline.send(message)))
    return json_response(202, public_view(message))


async def _stored(parts: Components, message_id: uuid.UUID) -> Message:
    message = await parts.store.get(message_id)
    if message is None:  # deleted after it was accepted: nothing to show, but not a 5xx
        raise ApiError(404, "no message with that id")
    return message


@router.get(
    "/{message_id:uuid}",
    summary="Read a message",
    response_model=MessagePublic,
    responses=ONE_MESSAGE,
)
async def get_message(message_id: uuid.UUID, parts: ComponentsDep, _auth: AuthDep) -> Response:
    """The message with its current status (`404` for an unknown id)."""
    return json_response(200, public_view(await _stored(parts, message_id)))


@router.get(
    "/{message_id:uuid}/events",
    summary="A message's status history",
    response_model=list[EventPublic],
    responses={200: {"content": {"application/json": {"example": examples.EVENTS}}}, **ONE_MESSAGE},
)
async def get_events(message_id: uuid.UUID, parts: ComponentsDep, _auth: AuthDep) -> Response:
    """Every status change, oldest first, with its attempt and error."""
    events = await parts.store.events(message_id)
    if not events and await parts.store.get(message_id) is None:
        raise ApiError(404, "no message with that id")
    return json_response(200, [public_event(e) for e in events])


@router.post(
    "/{message_id:uuid}/cancel",
    summary="Cancel a message",
    response_model=MessagePublic,
    responses=error_responses(*AUTHED, "not_found", "not_cancellable"),
)
async def cancel_message(message_id: uuid.UUID, parts: ComponentsDep, _auth: AuthDep) -> Response:
    """Cancels a scheduled, pending or retrying message (200); 409 from any other status."""
    change, message = await changes.cancel(parts.store, parts.queue, message_id)
    if change is Change.MISSING or message is None:
        raise ApiError(404, "no message with that id")
    if change is Change.CONFLICT:
        raise ApiError(
            409, f"a {message.status.value} message cannot be cancelled", code="not_cancellable"
        )
    return json_response(200, public_view(message))


@router.post(
    "/{message_id:uuid}/retry",
    status_code=202,
    summary="Retry a failed message",
    response_model=MessagePublic,
    responses=error_responses(*AUTHED, "not_found", "not_retryable"),
)
async def retry_message(message_id: uuid.UUID, parts: ComponentsDep, _auth: AuthDep) -> Response:
    """Re-queues a failed message with a fresh budget of attempts (202); 409 otherwise."""
    change, message = await changes.retry(parts.store, parts.queue, message_id)
    if change is Change.MISSING or message is None:
        raise ApiError(404, "no message with that id")
    if change is Change.CONFLICT:
        raise ApiError(
            409,
            f"only failed messages can be retried, not {message.status.value}",
            code="not_retryable",
        )
    return json_response(202, public_view(message))
