"""`/api/v1/suppressions`: who Postline will not send to (domain/suppression.py).

- `GET`: the active suppressions, newest first, keyset pages like messages.
- `POST`: suppress a recipient, for every sender or one, optionally until a
  time. Asking again keeps the first entry (the longer expiry wins).
- `DELETE /{channel}/{recipient}`: lift it (`?sender=` for one sender's
  entry, `?sender=*` for every entry of the recipient).

Addresses are taken in any form a send takes and stored in recipient form
(`addresses.recipient`): E.164 for phones, the bare address in lower case
for email.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator
from starlette.responses import Response

from postline.api.addresses import as_recipient
from postline.api.deps import AuthDep, ComponentsDep
from postline.api.errors import ApiError, validated
from postline.api.paging import CursorQuery, LimitQuery, before_seq, page_answer
from postline.api.responses import AUTHED, error_responses
from postline.api.routes.messages import BODY_ERRORS, json_response, read_json_body
from postline.api.strict_json import load_strict
from postline.domain.message import rfc3339
from postline.domain.suppression import (
    ANY_SENDER,
    Reason,
    Source,
    Suppression,
    SuppressionChannel,
)
from postline.store.suppressions import SuppressionFilters, SuppressionStore

router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"])

ALL_SENDERS = "*"


class SuppressionCreate(BaseModel):
    """A recipient to suppress."""

    model_config = {"extra": "forbid"}

    channel: SuppressionChannel = Field(
        description="`sms` (covers MMS: one number), `whatsapp` or `email`."
    )
    recipient: str = Field(
        max_length=512, description="An E.164 number or an email address, in any case."
    )
    sender: str | None = Field(
        default=None,
        max_length=512,
        description="Suppress only for this `from` address; omit for every sender.",
    )
    reason: Reason = Field(default=Reason.MANUAL, description="Why; `manual` by default.")
    expires_at: datetime | None = Field(
        default=None, description="When it lapses (RFC 3339); omit to keep it until lifted."
    )

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SuppressionPublic(BaseModel):
    """A suppression as stored."""

    channel: SuppressionChannel = Field(description="`sms` (and MMS), `whatsapp` or `email`.")
    recipient: str = Field(description="E.164, or the bare email address in lower case.")
    sender: str | None = Field(description="The one `from` it applies to; null: every sender.")
    reason: Reason = Field(description="Why the recipient is suppressed.")
    source: Source = Field(description="Who suppressed it: a provider's report or the API.")
    created_at: str = Field(description="When it was suppressed (RFC 3339, UTC).")
    expires_at: str | None = Field(description="When it lapses; null: until lifted.")


class SuppressionPage(BaseModel):
    """One page of suppressions, newest first."""

    items: list[SuppressionPublic] = Field(description="Up to `limit` active suppressions.")
    next_cursor: str | None = Field(
        description="Pass it back as `cursor` for the next page; null on the last page."
    )


def public_suppression(s: Suppression) -> dict[str, Any]:
    return {
        "channel": s.channel.value,
        "recipient": s.recipient,
        "sender": s.sender or None,
        "reason": s.reason.value,
        "source": s.source.value,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
    }


@router.post(
    "",
    status_code=201,
    summary="Suppress a recipient",
    response_model=SuppressionPublic,
    responses=error_responses(*BODY_ERRORS),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SuppressionCreate"}}
            },
        }
    },
)
async def suppress(request: Request, parts: ComponentsDep, _auth: AuthDep) -> Response:
    """Sends to the recipient (from `sender`, or from anyone) fail with `suppressed`."""
    body = validated(SuppressionCreate, load_strict(await read_json_body(request)))
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise ApiError(422, "expires_at must be in the future")
    wanted = Suppression(
        channel=body.channel,
        recipient=as_recipient(body.recipient, loc=["recipient"]),
        sender=as_recipient(body.sender, loc=["sender"]) if body.sender else ANY_SENDER,
        reason=body.reason,
        source=Source.API,
        expires_at=body.expires_at,
    )
    [stored] = await SuppressionStore(parts.pool).add([wanted])
    return json_response(201, public_suppression(stored))


@router.get(
    "",
    summary="List suppressions",
    response_model=SuppressionPage,
    responses=error_responses(*AUTHED, "validation_error"),
)
async def list_suppressions(
    parts: ComponentsDep,
    _auth: AuthDep,
    channel: Annotated[SuppressionChannel | None, Query(description="Only this channel.")] = None,
    recipient: Annotated[
        str | None, Query(max_length=512, description="Only this recipient (any case).")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    """Active suppressions, newest first; pass `next_cursor` back as `cursor`."""
    before = before_seq(cursor)
    filters = SuppressionFilters(
        channel=channel, recipient=as_recipient(recipient, loc=["recipient"]) if recipient else None
    )
    found, last = await SuppressionStore(parts.pool).page(filters, limit=limit, before_seq=before)
    return page_answer([public_suppression(s) for s in found], last)


@router.delete(
    "/{channel}/{recipient}",
    status_code=204,
    summary="Lift a suppression",
    responses=error_responses(*AUTHED, "not_found", "validation_error"),
)
async def lift(
    channel: SuppressionChannel,
    recipient: str,
    parts: ComponentsDep,
    _auth: AuthDep,
    sender: Annotated[
        str | None,
        Query(
            max_length=512,
            description="Lift only this sender's entry; `*` lifts every entry of the "
            "recipient; omit for the every-sender entry.",
        ),
    ] = None,
) -> Response:
    """Sends to the recipient go out again (`404` if nothing was suppressed)."""
    who = as_recipient(recipient, loc=["recipient"])
    if sender == ALL_SENDERS:
        which: str | None = None
    else:
        which = as_recipient(sender, loc=["sender"]) if sender else ANY_SENDER
    if not await SuppressionStore(parts.pool).remove(channel, who, sender=which):
        raise ApiError(404, "no such suppression")
    return Response(status_code=204)
