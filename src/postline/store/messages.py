"""Message rows: every write is one round trip, batched, and fenced by status.

Transitions are guarded in SQL, not in Python: a claim only takes a message
that may be sent now, and a completion only lands while the row is still in
the `sending` state of the very attempt that finished. A late worker or a
duplicate therefore can never step a message backwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from postline.store.records import MESSAGE_COLUMNS


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message about to be stored."""

    id: uuid.UUID
    type: str
    status: str
    from_addr: str
    to_addr: str
    body: str | None
    subject: str | None
    html: str | None
    attachments: list[Any]
    ordering_key: str
    send_at: datetime | None
    metadata: dict[str, Any]
    callback_url: str | None
    idempotency_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, to be written by `complete`."""

    id: uuid.UUID
    attempt: int
    status: str  # sent | retrying | failed
    provider: str | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    detail: str | None = None


_INSERT = """
WITH ins AS (
    INSERT INTO messages (id, type, status, from_addr, to_addr, body, subject, html,
                          attachments, ordering_key, send_at, metadata, callback_url,
                          idempotency_key, created_at, updated_at, position)
    SELECT u.id, u.type, u.status, u.f, u.t, u.b, u.s, u.h, u.a::jsonb, u.k, u.sa,
           u.m::jsonb, u.cb, u.ik, u.ca, u.ca,
           CASE WHEN u.status = 'scheduled' THEN NULL ELSE nextval('messages_position_seq') END
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                $12::text[], $13::text[], $14::text[], $15::timestamptz[]) WITH ORDINALITY
         AS u(id, type, status, f, t, b, s, h, a, k, sa, m, cb, ik, ca, n)
    ORDER BY u.n  -- positions are drawn in request order (a batch keeps its order)
    RETURNING id, status, created_at
)
INSERT INTO message_events (message_id, status, attempt, detail, at)
SELECT id, status, 0, 'accepted', created_at FROM ins
"""

#: Takes the claimable ones of $1 for holder $2, leased for $3 seconds.
#: Claimable: pending, a retry that is due, or a `sending` whose lease ran out
#: and whose holder is gone (not among the live workers $4), or whose lease
#: ran out more than $5 seconds ago (a hard bound, for a holder that lives
#: on but cannot finish) -- and only while no other message of the same key is
#: being sent, nor (for the first two) open ahead of it. Runs after
#: `postline_lock_keys`, in the same transaction, so two claims of one key
#: never both pass the check.
#:
#: A lost `sending` message goes again before anything ahead of it by
#: position: it was its key's first open message when it was claimed, so a
#: message now ahead of it drew its position earlier but committed later (a
#: large accept batch still running), and was accepted after it. Refusing it
#: would stall the key for good: each of the two would wait for the other.
_CLAIM = f"""
WITH p AS (
    SELECT m.id, m.status AS previous FROM messages m
    WHERE m.id = ANY($1::uuid[])
      AND (m.status = 'pending'
           OR (m.status = 'retrying'
               AND coalesce(m.next_attempt_at, now()) <= now() + interval '1 second')
           OR (m.status = 'sending' AND coalesce(m.lease_until, '-infinity') < now()
               -- a live holder (heartbeat) keeps it until the hard bound
               AND (m.held_by IS NULL OR NOT (m.held_by = ANY($4::text[]))
                    OR m.lease_until < now() - $5::float8 * interval '1 second')))
      AND NOT EXISTS (
          SELECT 1 FROM messages o
          WHERE o.ordering_key = m.ordering_key
            AND o.status IN ('pending', 'sending', 'retrying')
            AND o.id <> m.id
            AND (o.status = 'sending' OR (o.position < m.position AND m.status <> 'sending')))
    ORDER BY m.id
    FOR UPDATE OF m
), c AS (
    UPDATE messages m
    SET status = 'sending', attempts = m.attempts + 1, updated_at = now(),
        next_attempt_at = NULL, held_by = $2,
        lease_until = now() + $3::float8 * interval '1 second'
    FROM p WHERE m.id = p.id
    RETURNING m.*, p.previous
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'sending', attempts,
           CASE WHEN previous = 'sending'
                THEN 'attempted again: the worker that held it was lost' END
    FROM c
)
SELECT {MESSAGE_COLUMNS}, previous FROM c
"""

_COMPLETE = """
WITH d AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::timestamptz[], $9::text[])
         AS d(id, attempt, status, provider, pmid, code, msg, next_at, detail)
), upd AS (
    UPDATE messages m
    SET status = d.status,
        provider = coalesce(d.provider, m.provider),
        provider_message_id = coalesce(d.pmid, m.provider_message_id),
        error_code = d.code, error_message = d.msg,
        next_attempt_at = d.next_at,
        sent_at = CASE WHEN d.status = 'sent' THEN now() ELSE m.sent_at END,
        updated_at = now(), held_by = NULL, lease_until = NULL
    FROM d
    WHERE m.id = d.id AND m.status = 'sending' AND m.attempts = d.attempt
    RETURNING m.id, m.status, m.attempts, m.error_code, m.error_message, d.detail
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, error_code, error_message, detail)
    SELECT id, status, attempts, error_code, error_message, detail FROM upd
)
SELECT id FROM upd
"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class MessageStore:
    """The messages and message_events tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(
        self, rows: Sequence[NewMessage], *, connection: asyncpg.Connection | None = None
    ) -> None:
        """Stores accepted messages and their first event in one statement."""
        columns: list[list[Any]] = [[] for _ in range(15)]
        for r in rows:
            values = (
                r.id, r.type, r.status, r.from_addr, r.to_addr, r.body, r.subject, r.html,
                _json(r.attachments), r.ordering_key, r.send_at, _json(r.metadata),
                r.callback_url, r.idempotency_key, r.created_at,
            )  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await (connection or self.pool).execute(_INSERT, *columns)

    async def get(self, message_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id
        )

    async def events(self, message_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT status, attempt, error_code, error_message, detail, at "
                "FROM message_events WHERE message_id = $1 ORDER BY id",
                message_id,
            )
        )

    async def claim(
        self,
        ids: Sequence[uuid.UUID],
        *,
        holder: str,
        lease: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
    ) -> list[asyncpg.Record]:
        """Moves the claimable ones of `ids` to `sending` (attempts + 1), leased to `holder`.

        A message is claimable when it may be sent now and is the first open
        message of its ordering key (see `_CLAIM`); a `sending` one only once
        its lease has expired and its holder is not in `live`, or its lease
        expired more than `hard_bound` seconds ago.
        """
        if not ids:
            return []
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT postline_lock_keys($1::uuid[])", list(ids))
            return list(
                await connection.fetch(_CLAIM, list(ids), holder, lease, list(live), hard_bound)
            )

    async def release(self, message_id: uuid.UUID, *, holder: str) -> None:
        """Gives up `holder`'s claim on a message it will not send: once the
        lease runs out, another worker may take it without waiting for the
        hard bound."""
        await self.pool.execute(
            "UPDATE messages SET held_by = NULL "
            "WHERE id = $1 AND held_by = $2 AND status = 'sending'",
            message_id,
            holder,
        )

    async def renew(self, ids: Sequence[uuid.UUID], *, holder: str, lease: float) -> int:
        """Extends `holder`'s leases on `ids`; returns how many it still holds."""
        if not ids:
            return 0
        result = await self.pool.execute(
            "UPDATE messages SET lease_until = now() + $3::float8 * interval '1 second' "
            "WHERE id = ANY($1::uuid[]) AND status = 'sending' AND held_by = $2",
            list(ids),
            holder,
            lease,
        )
        return int(result.split()[-1])

    async def next_heads(self, keys: Sequence[str]) -> list[asyncpg.Record]:
        """The first open message of each of `keys` (by position), if any."""
        if not keys:
            return []
        return list(
            await self.pool.fetch(
                "SELECT DISTINCT ON (ordering_key) id, type, status, ordering_key "
                "FROM messages WHERE ordering_key = ANY($1::text[]) "
                "AND status IN ('pending', 'sending', 'retrying') "
                "ORDER BY ordering_key, position",
                list(set(keys)),
            )
        )

    async def open_heads(
        self,
        *,
        after_key: str | None,
        limit: int,
        lease_grace: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
    ) -> list[asyncpg.Record]:
        """The message each key after `after_key` waits for, in key order.

        That is the key's `sending` message if it has one (nothing else of the
        key can go meanwhile, see `_CLAIM`), else its first open one.
        `lease_lost` is true for a `sending` head that a claim would take
        over: its lease ran out more than `lease_grace` seconds ago and its
        holder is not in `live`, or it ran out more than `hard_bound` ago.
        """
        return list(
            await self.pool.fetch(
                "SELECT DISTINCT ON (ordering_key) id, type, status, ordering_key, "
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
        )

    async def make_due(
        self, ids: Sequence[uuid.UUID] | None = None, *, limit: int = 1000
    ) -> list[asyncpg.Record]:
        """Scheduled messages whose time has come join their key's queue (at its back).

        With `ids`, only those; without, any scheduled message already due
        (the reconciler's sweep). Returns the ones moved to `pending`.
        """
        return list(await self.pool.fetch(_MAKE_DUE, ids, limit))

    async def scheduled_before(self, *, until: float, limit: int) -> list[asyncpg.Record]:
        """Scheduled messages due within `until` seconds, soonest first."""
        return list(
            await self.pool.fetch(
                "SELECT id, type, ordering_key, send_at FROM messages "
                "WHERE status = 'scheduled' AND send_at < now() + $1::float8 * interval '1 second' "
                "ORDER BY send_at LIMIT $2",
                until,
                limit,
            )
        )

    async def complete(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Writes attempt outcomes; returns the ids whose row was still that attempt's."""
        if not outcomes:
            return set()
        columns: list[list[Any]] = [[] for _ in range(9)]
        for o in outcomes:
            values = (
                o.id, o.attempt, o.status, o.provider, o.provider_message_id, o.error_code,
                o.error_message, o.next_attempt_at, o.detail,
            )  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        rows = await self.pool.fetch(_COMPLETE, *columns)
        return {row["id"] for row in rows}

    async def states(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
        """Status, channel and ordering key of each id (for entries a claim skipped)."""
        if not ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT id, status, type, ordering_key, send_at, next_attempt_at FROM messages "
            "WHERE id = ANY($1::uuid[])",
            list(ids),
        )
        return {row["id"]: row for row in rows}

    async def insert_idempotent(
        self, row: NewMessage, *, key: str, request_hash: bytes
    ) -> tuple[bool, uuid.UUID, bytes]:
        """Stores `row` unless `key` was used in the last 24 hours.

        Returns (created, message id, request hash of the key's message). Two
        identical requests at once serialise on the key's unique index: the
        second waits for the first to commit, then finds its message.
        """
        for _ in range(3):
            try:
                async with self.pool.acquire() as connection, connection.transaction():
                    await self.insert([row], connection=connection)
                    if await connection.fetchval(_CLAIM_KEY, key, request_hash, row.id):
                        return True, row.id, request_hash
                    raise _KeyTaken  # rolls the insert back
            except _KeyTaken:
                original = await self.idempotent_original(key)
                if original is not None:
                    return False, *original
                # Purged between the two statements: try again from the top.
        raise RuntimeError(f"idempotency key {key!r} kept changing")

    async def idempotent_original(self, key: str) -> tuple[uuid.UUID, bytes] | None:
        row = await self.pool.fetchrow(
            "SELECT message_id, request_hash FROM idempotency_keys WHERE key = $1", key
        )
        return (row["message_id"], bytes(row["request_hash"])) if row else None

    async def purge_idempotency_keys(self, *, older_than_hours: float = 24) -> int:
        result = await self.pool.execute(
            "DELETE FROM idempotency_keys "
            "WHERE created_at < now() - $1::float8 * interval '1 hour'",
            older_than_hours,
        )
        return int(result.split()[-1])

    async def cancel(self, message_id: uuid.UUID) -> tuple[str, asyncpg.Record | None]:
        """Cancels a scheduled, pending or retrying message.

        Returns ("cancelled", row), ("conflict", row) when its status does not
        allow it, or ("missing", None).
        """
        row = await self.pool.fetchrow(_CANCEL, message_id)
        if row is not None:
            return "cancelled", row
        current = await self.get(message_id)
        return ("conflict", current) if current is not None else ("missing", None)

    async def retry_failed(self, message_id: uuid.UUID) -> tuple[str, asyncpg.Record | None]:
        """Moves a failed message back to pending with a fresh attempt budget."""
        row = await self.pool.fetchrow(_RETRY, message_id)
        if row is not None:
            return "queued", row
        current = await self.get(message_id)
        return ("conflict", current) if current is not None else ("missing", None)


class _KeyTaken(Exception):
    """Rolls back the transaction of a request whose idempotency key is taken."""


_CLAIM_KEY = """
INSERT INTO idempotency_keys (key, request_hash, message_id) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, message_id = EXCLUDED.message_id, created_at = now()
    WHERE idempotency_keys.created_at < now() - interval '24 hours'
RETURNING true
"""

_CANCEL = f"""
WITH c AS (
    UPDATE messages SET status = 'cancelled', updated_at = now(), next_attempt_at = NULL
    WHERE id = $1 AND status IN ('scheduled', 'pending', 'retrying')
    RETURNING *
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'cancelled', attempts, 'cancelled by request' FROM c
)
SELECT {MESSAGE_COLUMNS} FROM c
"""

_RETRY = f"""
WITH r AS (
    UPDATE messages
    SET status = 'pending', attempts_base = attempts, error_code = NULL, error_message = NULL,
        next_attempt_at = NULL, updated_at = now(), position = nextval('messages_position_seq')
    WHERE id = $1 AND status = 'failed'
    RETURNING *
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'pending', attempts, 'retry requested: fresh budget of attempts' FROM r
)
SELECT {MESSAGE_COLUMNS} FROM r
"""

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
    RETURNING m.id, m.type, m.ordering_key, m.attempts
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'pending', attempts, 'due: joined its key''s queue' FROM u
)
SELECT id, type, ordering_key FROM u
"""
