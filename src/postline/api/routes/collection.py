"""The messages collection: batch send, and listing with keyset pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from postline.api import examples
from postline.api.addresses import as_recipient
from postline.api.bodies import MAX_REQUEST_BYTES
from postline.api.callback_urls import batch_target_errors
from postline.api.deps import BEARER_SECURITY, AuthDep, Components, ComponentsDep, check_api_key
from postline.api.errors import ApiError, item_error
from postline.api.paging import CursorQuery, LimitQuery, before_seq, page_answer
from postline.api.responses import AUTHED, error_responses
from postline.api.routes.messages import BODY_ERRORS, checked_send, json_response, read_json_body
from postline.api.schemas import ErrorBody, MessageCreate, MessagePublic
from postline.api.strict_json import load_strict
from postline.domain.channels import Channel
from postline.domain.message import public_view
from postline.domain.statuses import Status
from postline.domain.validation import MAX_ORDERING_KEY_CHARS
from postline.store.listing import (
    Filters,
    MessageListing,
)

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])

MAX_BATCH = 1000
# PostgreSQL text cannot hold NUL; no stored address or key holds a control character.
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"


class BatchItemResult(BaseModel):
    """One item's outcome: `id` and `status` when accepted, else `error`."""

    index: int = Field(description="The item's position in `messages`, from 0.")
    id: str | None = Field(default=None, description="The accepted message's id.")
    status: str | None = Field(
        default=None, description="The accepted message's status: `pending` or `scheduled`."
    )
    error: ErrorBody | None = Field(
        default=None,
        description="Why the item was refused, as in a single send's `422` answer.",
    )


class BatchResult(BaseModel):
    """One result per item, in the order of `messages`."""

    model_config = {"json_schema_extra": {"examples": [examples.BATCH_RESULT]}}

    results: list[BatchItemResult] = Field(description="One entry per item sent, by index.")


class MessagePage(BaseModel):
    """One page of messages, newest first."""

    items: list[MessagePublic] = Field(description="Up to `limit` messages, newest first.")
    next_cursor: str | None = Field(
        description="Pass it back as `cursor` for the next page; null on the last page."
    )


BATCH_DESCRIPTION = f"""Accepts 1 to {MAX_BATCH} messages in one request of at most
{MAX_REQUEST_BYTES} bytes. Each item follows the rules of a single send; the valid
ones are stored (in one transaction) and queued, the invalid ones are reported by
index, and the answer is `202` either way. A body that is not
`{{"messages": [...]}}` with 1 to {MAX_BATCH} items is `422`."""


def _items(raw: bytes) -> list[Any]:
    body = load_strict(raw)
    if not isinstance(body, dict) or set(body) != {"messages"}:
        raise ApiError(422, 'the body must be {"messages": [ ...send bodies ]}')
    items = body["messages"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(422, f"messages must be a list of 1 to {MAX_BATCH} send bodies")
    return items


@router.post(
    "/batch",
    status_code=202,
    response_model=BatchResult,
    summary="Send a batch",
    description=BATCH_DESCRIPTION,
    response_description="Accepted items by index, and the refused ones with their error",
    responses=error_responses(*BODY_ERRORS),
    openapi_extra={
        "security": BEARER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/BatchCreate"},
                    "examples": examples.BATCH,
                }
            },
        },
    },
)
async def send_batch(request: Request) -> Response:
    parts: Components = request.app.state.components
    check_api_key(request, parts)
    items = _items(await read_json_body(request))
    now = datetime.now(UTC)
    errors: dict[int, dict[str, Any]] = {}
    valid: dict[int, MessageCreate] = {}
    for index, item in enumerate(items):
        try:
            valid[index] = checked_send(item, parts.settings)
        except ApiError as exc:
            errors[index] = item_error(exc)
    callback_urls = {i: p.callback_url for i, p in valid.items() if p.callback_url}
    errors.update(await batch_target_errors(parts.settings, callback_urls))
    results: list[dict[str, Any]] = []
    messages = []
    for index in range(len(items)):
        if index in errors:
            results.append({"index": index, "error": errors[index]})
            continue
        message = valid[index].to_message(now=now)
        messages.append(message)
        results.append({"index": index, "id": str(message.id), "status": message.status.value})
    if messages:
        await parts.acceptor.accept(messages)
        for message in messages:
            parts.metrics.accepted.labels(message.type.value).inc()
    return json_response(202, {"results": results})


@router.get(
    "",
    summary="List messages",
    response_model=MessagePage,
    responses=error_responses(*AUTHED, "validation_error"),
)
async def list_all(
    parts: ComponentsDep,
    _auth: AuthDep,
    status: Annotated[Status | None, Query(description="Only messages in this status.")] = None,
    type: Annotated[  # the SPEC's parameter name
        Channel | None, Query(description="Only messages of this channel.")
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=512,
            pattern=NO_CONTROLS,
            description="Only messages to this recipient: an E.164 number (encode its `+` as "
            "`%2B`; whatsapp numbers with or without `whatsapp:`) or an email address, in any "
            "case, with or without a display name. Anything else is `422`.",
        ),
    ] = None,
    ordering_key: Annotated[
        str | None,
        Query(
            max_length=MAX_ORDERING_KEY_CHARS,
            pattern=NO_CONTROLS,
            description="Only messages with this ordering key.",
        ),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    """Messages newest first; pass `next_cursor` back as `cursor` for the next page."""
    before = before_seq(cursor)
    filters = Filters(
        status=status.value if status else None,
        type=type.value if type else None,
        to=as_recipient(to, loc=["query", "to"]) if to is not None else None,
        ordering_key=ordering_key,
    )
    messages, last = await MessageListing(parts.pool).page(filters, limit=limit, before_seq=before)
    return page_answer([public_view(m) for m in messages], last)
