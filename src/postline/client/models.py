"""The API's answers as typed values: a message, its events, batch results.

Each mirrors the JSON the API shows (SPEC 3) with datetimes parsed; fields
the client does not know yet are ignored, so a newer server does not break
an older client. `status` and `type` stay strings for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _required_when(value: Any) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """What went wrong: a message's or an event's `error`, or a batch item's."""

    code: str | None
    message: str | None
    details: tuple[Any, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Problem | None:
        if data is None:
            return None
        return cls(
            code=data.get("code"),
            message=data.get("message"),
            details=tuple(data.get("details") or ()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message as the API shows it (`GET /api/v1/messages/{id}`).

    `from_` is the JSON's `from`. `attachments` is a tuple so the value stays
    read-only; `metadata` is the client's own dictionary, given back.
    """

    id: str
    status: str
    type: str
    from_: str
    to: str
    body: str | None = None
    subject: str | None = None
    html: str | None = None
    attachments: tuple[Any, ...] = ()
    ordering_key: str | None = None
    send_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    list_unsubscribe: bool = False
    attempts: int = 0
    error: Problem | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        """The message from its JSON (an answer, or a callback event's `data`)."""
        return cls(
            id=data["id"],
            status=data["status"],
            type=data["type"],
            from_=data["from"],
            to=data["to"],
            body=data.get("body"),
            subject=data.get("subject"),
            html=data.get("html"),
            attachments=tuple(data.get("attachments") or ()),
            ordering_key=data.get("ordering_key"),
            send_at=_when(data.get("send_at")),
            metadata=dict(data.get("metadata") or {}),
            callback_url=data.get("callback_url"),
            list_unsubscribe=bool(data.get("list_unsubscribe", False)),
            attempts=int(data.get("attempts", 0)),
            error=Problem.from_json(data.get("error")),
            provider=data.get("provider"),
            provider_message_id=data.get("provider_message_id"),
            next_attempt_at=_when(data.get("next_attempt_at")),
            created_at=_required_when(data["created_at"]),
            updated_at=_required_when(data["updated_at"]),
            sent_at=_when(data.get("sent_at")),
            delivered_at=_when(data.get("delivered_at")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of a message's status history, oldest first."""

    status: str
    at: datetime
    attempt: int
    error: Problem | None = None
    detail: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            status=data["status"],
            at=_required_when(data["at"]),
            attempt=int(data["attempt"]),
            error=Problem.from_json(data.get("error")),
            detail=data.get("detail"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchItem:
    """One message of a batch: accepted (`id`, `status`) or refused (`error`)."""

    index: int
    id: str | None = None
    status: str | None = None
    error: Problem | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchItem:
        return cls(
            index=int(data["index"]),
            id=data.get("id"),
            status=data.get("status"),
            error=Problem.from_json(data.get("error")),
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `GET /api/v1/messages`; the clients' `list` walks them."""

    items: tuple[Message, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Page:
        items = tuple(Message.from_json(item) for item in data["items"])
        return cls(items, data.get("next_cursor"))
