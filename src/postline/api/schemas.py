"""Request and answer shapes of the HTTP API (SPEC 3), as pydantic models.

`MessageCreate` validates what a client sends; the channel rules themselves
live in `postline.domain.validation` and run in its model validator, so the
OpenAPI document and the rules can never disagree on field names.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from postline.api import examples
from postline.domain.channels import Channel
from postline.domain.message import Message
from postline.domain.statuses import Status
from postline.domain.validation import (
    MAX_ATTACHMENT_NAME_CHARS,
    MAX_EMAIL_BYTES,
    MAX_METADATA_BYTES,
    MAX_MMS_ATTACHMENTS,
    MAX_ORDERING_KEY_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    CheckedSend,
    SendRuleError,
    check_send,
    check_url,
)

# The field descriptions quote the limits from `domain/validation.py`, the
# code that enforces them, so the document cannot drift from the rules.
E164 = "E.164 (`+` then 8 to 15 digits, the first 1-9)"
TEXT = f"at most {MAX_TEXT_CHARS} characters (Unicode code points)"
EMAIL_SIZE = f"{MAX_EMAIL_BYTES:,} bytes of UTF-8"
RFC3339 = "RFC 3339 time in UTC (`Z`)"


def _address(role: str) -> str:
    return (
        f"The {role}. sms, mms, whatsapp: {E164}; whatsapp also takes the `whatsapp:` "
        "prefix (stored without it, sent with it). email: an RFC 5322 address, `addr` "
        "or `Name <addr>` (a name holding `, ; : @ ( [` or a quote must be quoted)."
    )


_LENGTHS: JsonDict = {"minLength": 1, "maxLength": MAX_ATTACHMENT_NAME_CHARS}


class EmailAttachmentIn(BaseModel):
    """A file attached to an email, passed to SendGrid as it is."""

    model_config = ConfigDict(extra="forbid")
    # Lengths are documented only (json_schema_extra): `check_send` enforces
    # them, with messages naming the attachment's index.
    filename: str = Field(
        description=f"The file's name: one line, at most {MAX_ATTACHMENT_NAME_CHARS} characters.",
        json_schema_extra=_LENGTHS,
    )
    content_type: str = Field(
        description="Its media type, `type/subtype` with optional parameters, e.g. `text/plain`.",
        json_schema_extra=_LENGTHS,
    )
    content: str = Field(
        description="The file's bytes in standard base64.", json_schema_extra={"minLength": 1}
    )


class MessageCreate(BaseModel):
    """One message to send. Unknown fields are refused (`422`).

    The rules depend on `type`; each field says which apply to it. A broken
    rule is reported in the `422` answer's `details`, naming its field.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [e["value"] for e in examples.SEND.values()]},
    )

    from_: str = Field(alias="from", max_length=512, description=_address("sender"))
    to: str = Field(max_length=512, description=_address("recipient"))
    type: Channel = Field(
        description="The channel: `sms`, `mms`, `whatsapp` (all through Twilio) or `email` "
        "(through SendGrid). It decides which rules below apply."
    )
    body: str | None = Field(
        default=None,
        description=f"The text. sms: required, {TEXT}. mms: optional, {TEXT}. whatsapp: "
        f"{TEXT}; a body or one media URL is required. email: the text/plain part; "
        f"`body` and `html` together at most {EMAIL_SIZE}, and one of them is required. "
        "No control characters other than tab, line feed and carriage return.",
    )
    attachments: list[str | EmailAttachmentIn] = Field(
        default_factory=list,
        max_length=100,
        description=f"sms: none. mms: 1 to {MAX_MMS_ATTACHMENTS} media URLs (http or https, "
        f"at most {MAX_URL_CHARS} characters each; sent as Twilio `MediaUrl`). whatsapp: at "
        "most one media URL. email: objects `{filename, content_type, content}` with base64 "
        f"content; they count towards the request size, not towards the {EMAIL_SIZE} of "
        "the text.",
    )
    subject: str | None = Field(
        default=None,
        description=f"email only, and required there: one line of at most {MAX_SUBJECT_CHARS} "
        "characters (RFC 5322). Other channels must leave it out or null.",
    )
    html: str | None = Field(
        default=None,
        description=f"email only: the text/html part; with `body` at most {EMAIL_SIZE}. "
        "Other channels must leave it out or null.",
    )
    ordering_key: str | None = Field(
        default=None,
        json_schema_extra={"minLength": 1, "maxLength": MAX_ORDERING_KEY_CHARS},
        description=f"1 to {MAX_ORDERING_KEY_CHARS} characters, no control characters. "
        "Messages with the same key are sent one at a time, in the order they were "
        "accepted, across channels. Default: the recipient `to` (for email its bare "
        "address, lower-cased), so one person's messages keep their order.",
    )
    send_at: datetime | None = Field(
        default=None,
        description="Send no earlier than this RFC 3339 time; without a zone it is read as "
        "UTC. A future time answers `202` with status `scheduled` (in sync mode too); a past "
        "or null one sends now.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Your own JSON object, stored and returned as given: at most "
        f"{MAX_METADATA_BYTES:,} bytes as compact UTF-8 JSON, integers within 64 bits, "
        "no NUL character.",
    )
    callback_url: str | None = Field(
        default=None,
        json_schema_extra={"maxLength": MAX_URL_CHARS},
        description=f"An http or https URL of at most {MAX_URL_CHARS} characters. Postline "
        "POSTs the message there on each terminal or receipt status, signed per Standard "
        "Webhooks with the server's `CALLBACK_SIGNING_SECRET`: without that secret the "
        "send is refused (`422`). A host that is or resolves to a loopback, private, "
        "link-local or metadata address is refused (`422`) unless the server sets "
        "`CALLBACK_ALLOW_PRIVATE_NETWORKS=true`.",
    )

    list_unsubscribe: bool = Field(
        default=False,
        description="email only: add RFC 8058 one-click unsubscribe headers "
        "(`List-Unsubscribe` with a signed link to this server, `List-Unsubscribe-Post`). "
        "A POST to the link suppresses the recipient for this `from` address. Needs "
        "`PUBLIC_BASE_URL` and `CALLBACK_SIGNING_SECRET` on the server (`422` otherwise).",
    )

    @model_validator(mode="after")
    def _channel_rules(self) -> MessageCreate:
        try:
            self._checked = check_send(
                channel=self.type,
                from_addr=self.from_,
                to_addr=self.to,
                body=self.body,
                subject=self.subject,
                html=self.html,
                attachments=[
                    a.model_dump() if isinstance(a, EmailAttachmentIn) else a
                    for a in self.attachments
                ],
                ordering_key=self.ordering_key,
                metadata=self.metadata,
            )
            if self.callback_url is not None:
                check_url("callback_url", self.callback_url)
            if self.list_unsubscribe and self.type != "email":
                raise SendRuleError("list_unsubscribe", "is for email only")
            self.send_at = _utc(self.send_at)
        except SendRuleError as exc:
            raise PydanticCustomError(
                "send_rule", "{field}: {message}", {"field": exc.field, "message": exc.message}
            ) from exc
        return self

    @property
    def checked(self) -> CheckedSend:
        return self._checked

    _checked: CheckedSend

    def to_message(self, *, now: datetime) -> Message:
        """The message to store: its checked fields, a new id, and a status
        (`scheduled` when `send_at` is still ahead)."""
        checked = self._checked
        scheduled = self.send_at is not None and self.send_at > now
        values = {f.name: getattr(checked, f.name) for f in fields(checked) if f.name != "channel"}
        return Message(
            **values,
            id=uuid.uuid4(),
            type=checked.channel,
            status=Status.SCHEDULED if scheduled else Status.PENDING,
            send_at=self.send_at,
            callback_url=self.callback_url,
            list_unsubscribe=self.list_unsubscribe,
            created_at=now,
            updated_at=now,
        )


def _utc(moment: datetime | None) -> datetime | None:
    """`send_at` in UTC, as it is stored and answered.

    A time without a zone is read as UTC. A time whose UTC form falls
    outside years 1..9999 (`0001-01-01T00:00:00+01:00`) cannot be stored;
    left to the database driver it would fail the whole group of requests
    stored with it.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise SendRuleError("send_at", "must fall within years 1 to 9999 in UTC") from exc


class ErrorBody(BaseModel):
    """What went wrong; `code` is stable, `message` is for people."""

    code: str = Field(
        description="Machine-readable: `validation_error`, `not_found`, ... (each route "
        "lists the codes it answers, by status)."
    )
    message: str = Field(description="One line for a person; its wording may change.")
    details: list[Any] = Field(
        default_factory=list,
        description="For `validation_error`: one `{loc, msg, type}` per broken rule, `loc` "
        'naming the field (`["body"]`, `["attachments", "0"]`). The sent value is never '
        "echoed. Empty for other codes.",
    )


class ErrorEnvelope(BaseModel):
    """Every 4xx and 5xx answer of the API (not `/health`, which has its own shape)."""

    error: ErrorBody = Field(description="The one error of this answer.")


class MessageError(BaseModel):
    """Why a message (or one of its attempts) failed."""

    code: str | None = Field(
        description="The provider's error code when it gave one (Twilio's `21211`, ...), "
        "else Postline's (`timeout`, `network_error`, ...)."
    )
    message: str | None = Field(description="The provider's or Postline's explanation.")


class MessagePublic(BaseModel):
    """A message as every endpoint, status callback and sync answer shows it."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [examples.MESSAGE]}
    )

    id: str = Field(description="Postline's id for the message (a UUID).")
    status: Literal[
        "scheduled",
        "pending",
        "sending",
        "retrying",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "cancelled",
    ] = Field(
        description="`scheduled` (send_at ahead), `pending` (queued), `sending` (a worker holds "
        "it), `retrying` (transient failure, waiting out its backoff), `sent` (the provider "
        "accepted it), `delivered` / `undelivered` (the provider's receipt), `failed` "
        "(permanent error or attempts exhausted), `cancelled`."
    )
    type: Channel = Field(description="The channel, as sent.")
    from_: str = Field(
        alias="from", description="The sender, normalised (whatsapp without `whatsapp:`)."
    )
    to: str = Field(description="The recipient, normalised (whatsapp without `whatsapp:`).")
    body: str | None = Field(description="The text, as sent.")
    subject: str | None = Field(description="email: the subject; null for other channels.")
    html: str | None = Field(description="email: the HTML part; null for other channels.")
    attachments: list[Any] = Field(
        description="mms/whatsapp: media URLs; email: `{filename, content_type, content}`."
    )
    ordering_key: str = Field(description="The key it is ordered by: as sent, or the default.")
    send_at: str | None = Field(description=f"When it is scheduled for, {RFC3339}; or null.")
    metadata: dict[str, Any] = Field(description="Your metadata, as sent.")
    callback_url: str | None = Field(description="Where status callbacks go, or null.")
    list_unsubscribe: bool = Field(
        description="Whether the email carries one-click unsubscribe headers."
    )
    attempts: int = Field(description="Provider calls made so far, retries included.")
    error: MessageError | None = Field(description="Why it failed or is retrying, else null.")
    provider: str | None = Field(description="`twilio` or `sendgrid` once one accepted it.")
    provider_message_id: str | None = Field(
        description="The provider's id (Twilio `SM...`, SendGrid `X-Message-Id`), once sent."
    )
    next_attempt_at: str | None = Field(
        description=f"`retrying`: when its next attempt is due, {RFC3339}; else null."
    )
    created_at: str = Field(description=f"When it was accepted, {RFC3339}.")
    updated_at: str = Field(description=f"Its last status change, {RFC3339}.")
    sent_at: str | None = Field(description=f"When the provider accepted it, {RFC3339}.")
    delivered_at: str | None = Field(
        description=f"When the provider reported it delivered, {RFC3339}."
    )


class EventPublic(BaseModel):
    """One entry of a message's status history."""

    status: str = Field(description="The status the message entered.")
    at: str = Field(description=f"When, {RFC3339}.")
    attempt: int = Field(description="The attempt it belongs to (0 before the first).")
    error: MessageError | None = Field(description="The error of that attempt, if any.")
    detail: str | None = Field(
        description="Why, in words: `retry in 0.40s`, `receipt from twilio: delivered`, ..."
    )


class HealthPublic(BaseModel):
    """Readiness: `200` when both answer, `503` naming what is down."""

    status: Literal["ok", "degraded"] = Field(description="`degraded` when either is down.")
    database: Literal["ok", "down"] = Field(description="Whether PostgreSQL answers.")
    redis: Literal["ok", "down"] = Field(description="Whether Redis answers.")
