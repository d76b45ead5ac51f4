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
from pydantic_core import PydanticCustomError

from postline.domain.channels import Channel
from postline.domain.message import Message
from postline.domain.statuses import Status
from postline.domain.validation import CheckedSend, SendRuleError, check_send, check_url


class EmailAttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str
    content_type: str
    content: str = Field(description="base64")


class MessageCreate(BaseModel):
    """One message to send. Unknown fields are refused."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}
            ]
        },
    )

    from_: str = Field(alias="from", max_length=512)
    to: str = Field(max_length=512)
    type: Channel
    body: str | None = None
    attachments: list[str | EmailAttachmentIn] = Field(default_factory=list, max_length=100)
    subject: str | None = None
    html: str | None = None
    ordering_key: str | None = None
    send_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = None

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
    code: str
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class MessageError(BaseModel):
    code: str | None
    message: str | None


class MessagePublic(BaseModel):
    """A message as every endpoint returns it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
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
    ]
    type: Channel
    from_: str = Field(alias="from")
    to: str
    body: str | None
    subject: str | None
    html: str | None
    attachments: list[Any]
    ordering_key: str
    send_at: str | None
    metadata: dict[str, Any]
    callback_url: str | None
    attempts: int
    error: MessageError | None
    provider: str | None
    provider_message_id: str | None
    next_attempt_at: str | None
    created_at: str
    updated_at: str
    sent_at: str | None
    delivered_at: str | None


class EventPublic(BaseModel):
    status: str
    at: str
    attempt: int
    error: MessageError | None
    detail: str | None


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "down"]
    redis: Literal["ok", "down"]
