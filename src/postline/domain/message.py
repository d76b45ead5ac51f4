"""The message: one type from acceptance to the last receipt (SPEC 2, 3).

`Message` is what the store returns and takes, what providers send, what the
worker and sync mode hold; `public_view` is the one JSON shape the API, the
callbacks and sync answers show. The store derives its column lists from
`Message`'s fields (`COLUMNS`), so a new column is a field here, a migration,
and (if clients send it) the request schema and its rule (README, "Adding a
field").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from postline.domain.channels import Channel
from postline.domain.statuses import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message as stored: what the client sent (normalised) and how its delivery stands."""

    id: uuid.UUID
    type: Channel
    status: Status
    from_addr: str
    to_addr: str
    body: str | None = None
    subject: str | None = None
    html: str | None = None
    attachments: list[Any] = field(default_factory=list)
    ordering_key: str
    send_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    #: email: carry RFC 8058 one-click unsubscribe headers (domain/unsubscribe.py)
    list_unsubscribe: bool = False
    attempts: int = 0
    #: attempts a retry budget is counted from: a manual retry gives a fresh budget
    attempts_base: int = 0
    error_code: str | None = None
    error_message: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    #: acceptance order (list paging); drawn by the store, None before it
    seq: int | None = None


class Claimed(NamedTuple):
    """A message a claim gave its holder, with the status it was claimed from
    (`sending`: taken over) and, if its recipient is suppressed, the reason
    (`domain/suppression.py`): then it must not reach a provider."""

    message: Message
    previous: Status
    suppressed_by: str | None = None


#: Message's fields, in order: the store's column list.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Message))


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a message's append-only history."""

    status: Status
    at: datetime
    attempt: int
    error_code: str | None = None
    error_message: str | None = None
    detail: str | None = None


class Change(StrEnum):
    """How a requested status change (cancel, manual retry) ended."""

    DONE = "done"
    CONFLICT = "conflict"  # the message's status does not allow it
    MISSING = "missing"


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _error(code: str | None, message: str | None) -> dict[str, str | None] | None:
    if code is None and message is None:
        return None
    return {"code": code, "message": message}


def public_view(message: Message) -> dict[str, Any]:
    """The message as every endpoint, callback and sync answer shows it (SPEC 3)."""
    m = message
    return {
        "id": str(m.id),
        "status": m.status.value,
        "type": m.type.value,
        "from": m.from_addr,
        "to": m.to_addr,
        "body": m.body,
        "subject": m.subject,
        "html": m.html,
        "attachments": m.attachments,
        "ordering_key": m.ordering_key,
        "send_at": rfc3339(m.send_at),
        "metadata": m.metadata,
        "callback_url": m.callback_url,
        "list_unsubscribe": m.list_unsubscribe,
        "attempts": m.attempts,
        "error": _error(m.error_code, m.error_message),
        "provider": m.provider,
        "provider_message_id": m.provider_message_id,
        "next_attempt_at": rfc3339(m.next_attempt_at),
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
        "sent_at": rfc3339(m.sent_at),
        "delivered_at": rfc3339(m.delivered_at),
    }


def public_event(event: Event) -> dict[str, Any]:
    """One history entry as `GET /messages/{id}/events` shows it."""
    return {
        "status": event.status.value,
        "at": rfc3339(event.at),
        "attempt": event.attempt,
        "error": _error(event.error_code, event.error_message),
        "detail": event.detail,
    }
