"""The callbacks outbox: lease due rows, record outcomes.

A trigger on `messages` (migration 0005) writes a row here for every status
change of a message that has a `callback_url`, in the transaction of the
change itself, so no event is lost between the two. An inbound message's
`message.received` row is written with the inbound message itself
(`store/inbound.py`), its body already final; it names no message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from postline.domain.message import COLUMNS, Message
from postline.domain.statuses import Status
from postline.store.rows import message_of


@dataclass(frozen=True, slots=True)
class DueCallback:
    """One leased callback: the event, where it goes, and the message as it stands.

    An inbound message's callback has no message and no status: its
    `payload` was written with it.
    """

    id: uuid.UUID
    event_status: Status | None
    event_at: datetime
    url: str
    payload: bytes | None  # the body of the first try, reused on retries
    tries: int
    message: Message | None


_MESSAGE = ", ".join(f"m.{c} AS m_{c}" for c in COLUMNS)

# Leasing moves next_attempt_at forward, so a crashed dispatcher's rows come
# back by themselves after the lease, and two dispatchers never take one row.
_LEASE = f"""
WITH due AS (
    SELECT id FROM callbacks
    WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE callbacks c
    SET next_attempt_at = now() + $2::float8 * interval '1 second', attempts = c.attempts + 1
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.message_id, c.status, c.url, c.body, c.attempts, c.created_at
)
SELECT l.id AS callback_id, l.status AS event_status, l.url, l.body AS payload,
       l.attempts AS tries,
       l.created_at AS event_at, {_MESSAGE}
FROM leased l LEFT JOIN messages m ON m.id = l.message_id
"""


class CallbackStore:
    """The callbacks table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def lease(self, *, limit: int, lease_seconds: float) -> list[DueCallback]:
        rows = await self.pool.fetch(_LEASE, limit, lease_seconds)
        return [
            DueCallback(
                id=r["callback_id"],
                event_status=Status(r["event_status"]) if r["m_id"] is not None else None,
                event_at=r["event_at"],
                url=r["url"],
                payload=bytes(r["payload"]) if r["payload"] is not None else None,
                tries=r["tries"],
                message=message_of(r, prefix="m_") if r["m_id"] is not None else None,
            )
            for r in rows
        ]

    async def delivered(self, callback_id: uuid.UUID, body: bytes) -> None:
        await self.pool.execute(
            "UPDATE callbacks SET delivered_at = now(), body = coalesce(body, $2), "
            "last_error = NULL WHERE id = $1",
            callback_id,
            body,
        )

    async def failed(
        self,
        callback_id: uuid.UUID,
        body: bytes,
        *,
        error: str,
        next_attempt_at: datetime | None,
    ) -> None:
        """Schedules the next try, or gives up when `next_attempt_at` is None."""
        await self.pool.execute(
            "UPDATE callbacks SET body = coalesce(body, $2), last_error = $3, "
            "next_attempt_at = coalesce($4, next_attempt_at), "
            "gave_up_at = CASE WHEN $4::timestamptz IS NULL THEN now() END WHERE id = $1",
            callback_id,
            body,
            error[:500],
            next_attempt_at,
        )
