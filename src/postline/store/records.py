"""Rows as the API shows them (SPEC 3 answer shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncpg import Record

MESSAGE_COLUMNS = (
    "id, seq, type, status, from_addr, to_addr, body, subject, html, attachments, "
    "ordering_key, send_at, metadata, callback_url, attempts, attempts_base, error_code, "
    "error_message, provider, provider_message_id, next_attempt_at, created_at, "
    "updated_at, sent_at, delivered_at"
)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def public_message(row: Record | dict[str, Any]) -> dict[str, Any]:
    """The message as every endpoint returns it."""
    error = None
    if row["error_code"] is not None or row["error_message"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "type": row["type"],
        "from": row["from_addr"],
        "to": row["to_addr"],
        "body": row["body"],
        "subject": row["subject"],
        "html": row["html"],
        "attachments": row["attachments"],
        "ordering_key": row["ordering_key"],
        "send_at": rfc3339(row["send_at"]),
        "metadata": row["metadata"],
        "callback_url": row["callback_url"],
        "attempts": row["attempts"],
        "error": error,
        "provider": row["provider"],
        "provider_message_id": row["provider_message_id"],
        "next_attempt_at": rfc3339(row["next_attempt_at"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "sent_at": rfc3339(row["sent_at"]),
        "delivered_at": rfc3339(row["delivered_at"]),
    }


def public_event(row: Record) -> dict[str, Any]:
    error = None
    if row["error_code"] is not None or row["error_message"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {
        "status": row["status"],
        "at": rfc3339(row["at"]),
        "attempt": row["attempt"],
        "error": error,
        "detail": row["detail"],
    }
