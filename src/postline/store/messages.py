"""Message rows: every write is one round trip, batched, and fenced by status.

Transitions are guarded in SQL, not in Python: a claim only takes a message
that may be sent now, and a completion only lands while the row is still in
the `sending` state of the very attempt that finished. A late worker or a
duplicate therefore can never step a message backwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import asyncpg
import orjson

from postline.domain.channels import Channel, Provider
from postline.domain.message import COLUMNS, Change, Claimed, Event, Message
from postline.domain.ordering import Head
from postline.domain.outcomes import Outcome
from postline.domain.pacing import Sender
from postline.domain.statuses import Status
from postline.domain.suppression import TWILIO_OPT_OUT_CODES, Reason, Source
from postline.store.rows import MESSAGE_COLUMNS, message_of
from postline.store.suppressions import CHANNEL_OF, SUPPRESSED_BY


def _insert_sql() -> str:
    """The INSERT of accepted messages: one array per column of `Message` (but
    `seq`) and the idempotency key; JSON travels as text."""
    names = [*_WRITTEN, "idempotency_key"]
    wire = ["text" if c in _JSON else _column_type(c) for c in names]
    arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(wire, start=1))
    values = ", ".join(f"u.{c}::jsonb" if c in _JSON else f"u.{c}" for c in names)
    return f"""
WITH ins AS (
    INSERT INTO messages ({", ".join(names)}, position)
    SELECT {values},
           CASE WHEN u.status = 'scheduled' THEN NULL ELSE nextval('messages_position_seq') END
    FROM unnest({arrays}) WITH ORDINALITY AS u({", ".join(names)}, n)
    ORDER BY u.n  -- positions are drawn in request order (a batch keeps its order)
    RETURNING id, status, created_at
)
INSERT INTO message_events (message_id, status, attempt, detail, at)
SELECT id, status, 0, 'accepted', created_at FROM ins
"""


def _column_type(column: str) -> str:
    """The PostgreSQL type of a `Message` field's column, from its annotation."""
    kind = _FIELD_TYPES.get(column, "str")
    if "UUID" in kind:
        return "uuid"
    if "datetime" in kind:
        return "timestamptz"
    if kind == "int":
        return "int4"
    if kind == "bool":
        return "bool"
    if kind.startswith(("list", "dict")):
        return "jsonb"
    return "text"


_FIELD_TYPES = {f.name: str(f.type) for f in fields(Message)}
#: What an INSERT writes: every field but `seq`, which PostgreSQL draws.
_WRITTEN = tuple(c for c in COLUMNS if c != "seq")
_JSON = frozenset(c for c in _WRITTEN if _column_type(c) == "jsonb")
_INSERT = _insert_sql()


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
    SELECT m.id, m.status AS previous, {SUPPRESSED_BY.format(m="m")} AS suppressed_by
    FROM messages m
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
        -- from now, not from the transaction's start: the advisory lock may have
        -- kept it waiting, and the worker counts its lease from the answer
        lease_until = clock_timestamp() + $3::float8 * interval '1 second'
    FROM p WHERE m.id = p.id
    RETURNING m.*, p.previous, p.suppressed_by
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'sending', attempts,
           CASE WHEN previous = 'sending'
                THEN 'attempted again: the worker that held it was lost' END
    FROM c
)
SELECT {MESSAGE_COLUMNS}, previous, suppressed_by FROM c
"""

#: Of $1, the pending messages and due retries that are their key's first
#: open message while none of the key is being sent: what `_CLAIM` would
#: take, read without locks. Pacing charges only these, so the entries a
#: claim refuses (later messages of a key, pushed at acceptance) cost no
#: slot; a race that slips through is refunded after the claim.
_PACEABLE = """
SELECT m.id, m.type, m.from_addr, m.ordering_key
FROM messages m
WHERE m.id = ANY($1::uuid[])
  AND (m.status = 'pending'
       OR (m.status = 'retrying'
           AND coalesce(m.next_attempt_at, now()) <= now() + interval '1 second'))
  AND NOT EXISTS (
      SELECT 1 FROM messages o
      WHERE o.ordering_key = m.ordering_key
        AND o.status IN ('pending', 'sending', 'retrying')
        AND o.id <> m.id
        AND (o.status = 'sending' OR o.position < m.position))
"""

_COMPLETE = f"""
WITH d AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[],
                         $11::float8[])
         AS d(id, attempt, status, provider, pmid, route, code, msg, next_at, detail, hold)
), upd AS (
    UPDATE messages m
    SET status = d.status,
        provider = coalesce(d.provider, m.provider),
        provider_message_id = coalesce(d.pmid, m.provider_message_id),
        route = coalesce(d.route, m.route),
        error_code = d.code, error_message = d.msg,
        next_attempt_at = d.next_at,
        -- a throttled attempt (429 under pacing) gives its attempt back
        attempts_base = m.attempts_base + CASE WHEN d.hold IS NOT NULL THEN 1 ELSE 0 END,
        sent_at = CASE WHEN d.status = 'sent' THEN now() ELSE m.sent_at END,
        updated_at = now(), held_by = NULL, lease_until = NULL
    FROM d
    WHERE m.id = d.id AND m.status = 'sending' AND m.attempts = d.attempt
    RETURNING m.id, m.status, m.attempts, m.error_code, m.error_message, d.detail,
              m.type, m.to_addr, m.from_addr, m.provider, d.route
), ev AS (
    INSERT INTO message_events
        (message_id, status, attempt, error_code, error_message, detail, route)
    SELECT id, status, attempts, error_code, error_message, detail, route FROM upd
), opt_out AS (
    -- the provider says the recipient opted out of this sender: suppress the pair
    INSERT INTO suppressions (channel, recipient, sender, reason, source)
    SELECT {CHANNEL_OF.format(m="upd")}, message_recipient(upd.type, upd.to_addr),
           message_recipient(upd.type, upd.from_addr), '{Reason.OPT_OUT}', '{Source.TWILIO}'
    FROM upd WHERE upd.provider = '{Provider.TWILIO}' AND upd.error_code = ANY($12::text[])
    ON CONFLICT (channel, recipient, sender) DO UPDATE
        SET expires_at = NULL, reason = EXCLUDED.reason, source = EXCLUDED.source,
            created_at = now()
        WHERE suppressions.expires_at IS NOT NULL
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
        self,
        messages: Sequence[Message],
        *,
        idempotency_key: str | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> None:
        """Stores accepted messages and their first event in one statement."""
        columns: list[list[Any]] = [[] for _ in range(len(_WRITTEN) + 1)]
        for m in messages:
            for column, name in zip(columns, _WRITTEN, strict=False):
                value = getattr(m, name)
                column.append(_json(value) if name in _JSON else value)
            columns[-1].append(idempotency_key)
        await (connection or self.pool).execute(_INSERT, *columns)

    async def ping(self) -> None:
        """Raises unless PostgreSQL answers."""
        await self.pool.fetchval("SELECT 1")

    async def get(self, message_id: uuid.UUID) -> Message | None:
        row = await self.pool.fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id
        )
        return message_of(row) if row is not None else None

    async def events(self, message_id: uuid.UUID) -> list[Event]:
        rows = await self.pool.fetch(
            "SELECT status, at, attempt, error_code, error_message, detail, route "
            "FROM message_events WHERE message_id = $1 ORDER BY id",
            message_id,
        )
        return [Event(Status(r["status"]), *tuple(r)[1:]) for r in rows]

    async def claim(
        self,
        ids: Sequence[uuid.UUID],
        *,
        holder: str,
        lease: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
    ) -> list[Claimed]:
        """Claims what may be sent now of `ids`; returns each message claimed
        with the status it was claimed from (`sending`: taken over) and the
        reason its recipient is suppressed, if it is.

        Only a pending message or a due retry that is the first open
        message of its ordering key (see `_CLAIM`); a `sending` one only once
        its lease has expired and its holder is not in `live`, or its lease
        expired more than `hard_bound` seconds ago.
        """
        if not ids:
            return []
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT postline_lock_keys($1::uuid[])", list(ids))
            rows = await connection.fetch(_CLAIM, list(ids), holder, lease, list(live), hard_bound)
        return [Claimed(message_of(r), Status(r["previous"]), r["suppressed_by"]) for r in rows]

    async def release(self, message_id: uuid.UUID, *, holder: str) -> None:
        """Gives up `holder`'s claim on a message it will not send: once the
        lease runs out, another worker may take it without waiting for the
        hard bound."""
        await self.release_many([message_id], holder=holder)

    async def release_many(self, ids: Sequence[uuid.UUID], *, holder: str) -> None:
        """`release` for each of `ids` that `holder` holds."""
        if not ids:
            return
        await self.pool.execute(
            "UPDATE messages SET held_by = NULL "
            "WHERE id = ANY($1::uuid[]) AND held_by = $2 AND status = 'sending'",
            list(ids),
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
        key can go meanwhile, see `_CLAIM`), else its first open one.
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

    async def complete(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Writes attempt outcomes; returns the ids whose row was still that attempt's."""
        if not outcomes:
            return set()
        columns: list[list[Any]] = [[] for _ in _OUTCOME_FIELDS]
        for o in outcomes:
            for column, name in zip(columns, _OUTCOME_FIELDS, strict=True):
                column.append(getattr(o, name))
        rows = await self.pool.fetch(_COMPLETE, *columns, sorted(TWILIO_OPT_OUT_CODES))
        return {row["id"] for row in rows}

    async def senders(self, ids: Sequence[uuid.UUID]) -> list[Sender]:
        """Of `ids`, the messages a claim would take now but for their pace
        (`_PACEABLE`), with their channel, sender and key."""
        if not ids:
            return []
        rows = await self.pool.fetch(_PACEABLE, list(ids))
        return [
            Sender(r["id"], Channel(r["type"]), r["from_addr"], r["ordering_key"]) for r in rows
        ]

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

    async def insert_idempotent(
        self, message: Message, *, key: str, request_hash: bytes
    ) -> tuple[bool, uuid.UUID, bytes]:
        """Stores `message` unless `key` was used in the last 24 hours.

        Returns (created, message id, request hash of the key's message). Two
        identical requests at once serialise on the key's unique index: the
        second waits for the first to commit, then finds its message.
        """
        for _ in range(3):
            try:
                async with self.pool.acquire() as connection, connection.transaction():
                    await self.insert([message], idempotency_key=key, connection=connection)
                    if await connection.fetchval(_CLAIM_KEY, key, request_hash, message.id):
                        return True, message.id, request_hash
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

    async def cancel(self, message_id: uuid.UUID) -> tuple[Change, Message | None]:
        """Cancels a scheduled, pending or retrying message.

        Returns (DONE, the message), (CONFLICT, it) when its status does not
        allow it, or (MISSING, None).
        """
        return await self._change(_CANCEL, message_id)

    async def retry_failed(self, message_id: uuid.UUID) -> tuple[Change, Message | None]:
        """Moves a failed message back to pending with a fresh attempt budget."""
        return await self._change(_RETRY, message_id)

    async def _change(self, statement: str, message_id: uuid.UUID) -> tuple[Change, Message | None]:
        row = await self.pool.fetchrow(statement, message_id)
        if row is not None:
            return Change.DONE, message_of(row)
        current = await self.get(message_id)
        return (Change.CONFLICT, current) if current is not None else (Change.MISSING, None)


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


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))


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
    RETURNING m.id, m.type, m.ordering_key, m.attempts, m.status
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, detail)
    SELECT id, 'pending', attempts, 'due: joined its key''s queue' FROM u
)
SELECT id, type, ordering_key, status FROM u
"""
