"""Where each ordering key stands: the queue-side reads of message rows.

Redis holds only hints; PostgreSQL decides. These projections tell the
worker and the reconciler which message a key waits for (its head), which
scheduled messages are due, and where a skipped entry stands, so the hints
can be rebuilt from the rows. `make_due` is the one write: a scheduled
message joins the back of its key's queue when its time comes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from postline.domain.channels import Channel
from postline.domain.ordering import Head
from postline.domain.statuses import Status


class HeadStore:
    """Keys' heads, due scheduled messages and the states of queue entries."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def next_heads(self, keys: Sequence[str]) -> list[Head]:
        """The first open message of each of `keys` (by position), if any."""
        if not keys:
            return []
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (ordering_key) id, type, ordering_key, status "
            "FROM messages WHERE ordering_key = ANY($1::text[]) "
            "AND status IN ('pending', 'sending', 'retrying') "
            "ORDER BY ordering_key, position",
            list(set(keys)),
        )
        return [_head(r) for r in rows]

    async def open_heads(
        self,
        *,
        after_key: str | None,
        limit: int,
        lease_grace: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
    ) -> list[Head]:
        """The message each key after `after_key` waits for, in key order.

        That is the key's `sending` message if it has one (nothing else of the
        key can go meanwhile, see `leases.py`), else its first open one.
        `lease_lost` is true for a `sending` head that a claim would take
        over: its lease ran out more than `lease_grace` seconds ago and its
        holder is not in `live`, or it ran out more than `hard_bound` ago.
        """
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (ordering_key) id, type, ordering_key, status, "
            "next_attempt_at, coalesce(lease_until, '-infinity') "
            "    < now() - $3::float8 * interval '1 second' "
            "  AND (held_by IS NULL OR NOT (held_by = ANY($4::text[])) "
            "       OR lease_until < now() - $5::float8 * interval '1 second') AS lease_lost "
            "FROM messages WHERE status IN ('pending', 'sending', 'retrying') "
            "AND ($1::text IS NULL OR ordering_key > $1) "
            "ORDER BY ordering_key, status = 'sending' DESC, position LIMIT $2",
            after_key,
            limit,
            lease_grace,
            list(live),
            hard_bound,
        )
        return [_head(r) for r in rows]

    async def make_due(
        self, ids: Sequence[uuid.UUID] | None = None, *, limit: int = 1000
    ) -> list[Head]:
        """Scheduled messages whose time has come join their key's queue (at its back).

        With `ids`, only those; without, any scheduled message already due
        (the reconciler's sweep). Returns the ones moved to `pending`.
        """
        return [_head(r) for r in await self.pool.fetch(_MAKE_DUE, ids, limit)]

    async def scheduled_before(self, *, until: float, limit: int) -> list[Head]:
        """Scheduled messages due within `until` seconds, soonest first."""
        rows = await self.pool.fetch(
            "SELECT id, type, ordering_key, status, send_at FROM messages "
            "WHERE status = 'scheduled' AND send_at < now() + $1::float8 * interval '1 second' "
            "ORDER BY send_at LIMIT $2",
            until,
            limit,
        )
        return [_head(r) for r in rows]

    async def states(self, ids: Sequence[uuid.UUID]) -> list[Head]:
        """Where each of `ids` stands (for the entries a claim skipped)."""
        if not ids:
            return []
        rows = await self.pool.fetch(
            "SELECT id, type, ordering_key, status, send_at, next_attempt_at FROM messages "
            "WHERE id = ANY($1::uuid[])",
            list(ids),
        )
        return [_head(r) for r in rows]


def _head(row: asyncpg.Record) -> Head:
    """A key's head from a row of the queue-side projections (id, type, key, status...)."""
    return Head(
        id=str(row["id"]),
        channel=Channel(row["type"]),
        ordering_key=row["ordering_key"],
        status=Status(row["status"]),
        next_attempt_at=row.get("next_attempt_at"),
        lease_lost=bool(row.get("lease_lost")),
        send_at=row.get("send_at"),
    )


_MAKE_DUE = """
WITH d AS (
    SELECT id, send_at, seq FROM messages
    WHERE status = 'scheduled'
      AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))
      -- the promote loop's ids were due by its clock: allow it a second of skew
      AND send_at <= now() + CASE WHEN $1::uuid[] IS NULL THEN interval '0'
                                  ELSE interval '1 second' END
    ORDER BY send_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), n AS (
    -- drawn after the sort: due messages of one key keep their due order
    SELECT id, nextval('messages_position_seq') AS position FROM d ORDER BY send_at, seq
), u AS (
    UPDATE messages m
    SET status = 'pending', position = n.position, updated_at = now()
    FROM n WHERE m.id = n.id
    RETURNING m.id, m.type, m.ordering_key, m.attempts, m.status
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'pending', attempts, 'due: joined its key''s queue' FROM u
)
SELECT id, type, ordering_key, status FROM u
"""
