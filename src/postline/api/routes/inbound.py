"""Inbound messages: Twilio's inbound webhook in, `GET /api/v1/inbound` out.

- `POST /api/v1/webhooks/twilio/inbound`: what a recipient sent to one of
  Postline's numbers (SMS, MMS or WhatsApp), form-encoded and signed like
  the status webhook (`webhooks.verified_twilio_form`: `403` unsigned or
  wrongly signed). Stored once per `MessageSid`, its keyword applied
  (`domain/inbound.py`), its `message.received` callback queued
  (`services/inbound.py`). Answered `200` with TwiML: `<Response/>`, or a
  `<Message>` holding INBOUND_HELP_REPLY for HELP, which Twilio sends back
  to the recipient. A signed form that is not an inbound message is `400`
  and nothing is stored.
- `GET /api/v1/inbound`: the stored ones, newest first, in keyset pages.
"""

from __future__ import annotations

from typing import Annotated
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from postline.api.addresses import as_recipient
from postline.api.deps import AuthDep, ComponentsDep
from postline.api.errors import ApiError, field_error
from postline.api.paging import CursorQuery, LimitQuery, before_seq, page_answer
from postline.api.responses import AUTHED, error_responses
from postline.api.routes.collection import NO_CONTROLS
from postline.api.routes.webhooks import ERRORS, TWILIO_MAX_BYTES, verified_twilio_form
from postline.domain.inbound import Action, InboundChannel, InboundError, public_inbound
from postline.providers.signatures import TWILIO_SIGNATURE_HEADER
from postline.services.inbound import InboundIntake
from postline.store.inbound import InboundFilters, InboundStore

webhook_router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/api/v1/inbound", tags=["inbound"])

TWIML = "text/xml"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def twiml(reply: str | None) -> Response:
    """Twilio's answer: nothing to send back, or one message to the sender."""
    inner = f"<Response><Message>{escape(reply)}</Message></Response>" if reply else "<Response/>"
    return Response(_XML_HEAD + inner, status_code=200, media_type=TWIML)


class MediaPublic(BaseModel):
    """One media item of an inbound MMS or WhatsApp message."""

    url: str = Field(description="Where Twilio keeps the media (fetching it needs Twilio auth).")
    content_type: str | None = Field(description="Its MIME type, as Twilio reported it.")


class InboundPublic(BaseModel):
    """An inbound message as stored."""

    id: str = Field(description="Postline's id of the inbound message (a UUID).")
    provider_message_id: str = Field(description="Twilio's `MessageSid`.")
    channel: InboundChannel = Field(description="`sms`, `mms` (it carried media) or `whatsapp`.")
    from_: str = Field(alias="from", description="Who sent it: E.164 (no `whatsapp:`).")
    to: str = Field(description="The Postline number it was sent to: E.164.")
    body: str = Field(description="The text as received (up to 4096 characters).")
    media: list[MediaPublic] = Field(description="Media items, up to 10; empty for plain text.")
    keyword: str | None = Field(
        description="The opt-out keyword the whole trimmed body is, in upper case; null if none."
    )
    action: Action = Field(
        description="What Postline did: `opt_out` (that sender), `opt_out_all` (every "
        "sender), `opt_in` (opt-outs lifted), `help` (replied), or `none`."
    )
    reply: str | None = Field(description="The reply sent back (HELP); null if none.")
    received_at: str = Field(description="When Postline stored it (RFC 3339, UTC).")


class InboundPage(BaseModel):
    """One page of inbound messages, newest first."""

    items: list[InboundPublic] = Field(description="Up to `limit` inbound messages.")
    next_cursor: str | None = Field(
        description="Pass it back as `cursor` for the next page; null on the last page."
    )


@webhook_router.post(
    "/twilio/inbound",
    status_code=200,
    responses={
        200: {
            "description": "Stored (or stored before): TwiML, empty or with the HELP reply",
            "content": {TWIML: {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
    response_class=Response,
    description="A Twilio inbound message webhook (SMS, MMS or WhatsApp): form-encoded, "
    f"signed with `{TWILIO_SIGNATURE_HEADER}`, at most {TWILIO_MAX_BYTES} bytes.",
)
async def twilio_inbound(request: Request, parts: ComponentsDep) -> Response:
    pairs = await verified_twilio_form(request, parts.settings)
    settings = parts.settings
    intake = InboundIntake(
        InboundStore(parts.pool),
        help_reply=settings.inbound_help_reply,
        callback_url=settings.inbound_callback_url,
    )
    try:
        recorded = await intake.receive(dict(pairs))
    except InboundError as exc:
        raise ApiError(400, f"not an inbound message: {exc}") from exc
    stored = recorded.message
    if recorded.new:
        parts.metrics.inbound.labels(stored.channel.value, stored.action.value).inc()
    return twiml(stored.reply)


def _number(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    found = as_recipient(value, loc=["query", field])
    if "@" in found:
        raise field_error(["query", field], "must be an E.164 number: inbound comes from phones")
    return found


_ADDRESS = (
    "an E.164 number (encode its `+` as `%2B`; with or without `whatsapp:`). Anything else "
    "is `422`."
)


@router.get(
    "",
    summary="List inbound messages",
    response_model=InboundPage,
    responses=error_responses(*AUTHED, "validation_error"),
)
async def list_inbound(
    parts: ComponentsDep,
    _auth: AuthDep,
    from_: Annotated[
        str | None,
        Query(
            alias="from", max_length=512, pattern=NO_CONTROLS, description=f"Only from {_ADDRESS}"
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(max_length=512, pattern=NO_CONTROLS, description=f"Only to {_ADDRESS}"),
    ] = None,
    channel: Annotated[InboundChannel | None, Query(description="Only this channel.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    """Inbound messages newest first; pass `next_cursor` back as `cursor` for the next page."""
    before = before_seq(cursor)
    filters = InboundFilters(
        from_addr=_number("from", from_), to_addr=_number("to", to), channel=channel
    )
    found, last = await InboundStore(parts.pool).page(filters, limit=limit, before_seq=before)
    return page_answer([public_inbound(m) for m in found], last)
