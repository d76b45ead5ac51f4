"""Message rows: accepted, read, cancelled, retried; every write one round trip.

`MessageStore` is the one object the API, the services and the worker hold
for the messages table; each consumer sees only the narrow Protocol it needs
(`services/ports.py`). Its methods live by concern: here acceptance (with
idempotency keys), reads and the operator's changes; the worker's claims,
leases and fenced completions in `leases.py`; the queue-side reads of each
key's head in `heads.py`. Every change is guarded in SQL by the row's
status, so a request that comes too late changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import asyncpg
import orjson

from postline.domain.message import COLUMNS, Change, Event, Message
from postline.domain.statuses import Status
from postline.store.heads import HeadStore
from postline.store.leases import LeaseStore
from postline.store.rows import MESSAGE_COLUMNS, message_of


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


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class MessageStore(LeaseStore, HeadStore):
    """The messages and message_events tables."""

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
