"""A worker's hold on message rows: claim, renew, release, and the fenced completion.

A claim only takes a message that may be sent now (`_CLAIM`), and marks it
`sending`, held by one worker for a lease. A completion only lands while
the row is still in the `sending` state of the very attempt that finished
(`_COMPLETE`): a late worker or a duplicate can never step a message
backwards. The checks sit in SQL, re-read against the row under its lock,
not in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import asyncpg

from postline.domain.channels import Channel, Provider
from postline.domain.message import Claimed
from postline.domain.outcomes import Outcome
from postline.domain.pacing import Sender
from postline.domain.statuses import Status
from postline.domain.suppression import TWILIO_OPT_OUT_CODES, Reason, Source
from postline.store.rows import MESSAGE_COLUMNS, message_of
from postline.store.suppressions import CHANNEL_OF, SUPPRESSED_BY

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
      -- under pacing, a pending message or a due retry goes only with its slot
      AND (m.status = 'sending' OR $6::uuid[] IS NULL OR m.id = ANY($6::uuid[]))
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
#: slot. The races either way are closed: a message charged here that the
#: claim refuses gets its slot back, and one that became its key's first
#: after this read is not claimed without a slot (`paced`, $6 of `_CLAIM`).
_PACEABLE = """
SELECT m.id, m.type, m.from_addr, m.ordering_key, m.route
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


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))


class LeaseStore:
    """Claims, leases and completions of message rows (what a worker writes)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(
        self,
        ids: Sequence[uuid.UUID],
        *,
        holder: str,
        lease: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
        paced: Sequence[uuid.UUID] | None = None,
    ) -> list[Claimed]:
        """Claims what may be sent now of `ids`; returns each message claimed
        with the status it was claimed from (`sending`: taken over) and the
        reason its recipient is suppressed, if it is.

        Only a pending message or a due retry that is the first open
        message of its ordering key (see `_CLAIM`), and under pacing only
        one in `paced` (its slot taken: one that became its key's first
        after pacing passed it over waits for its own turn); a `sending` one
        only once its lease has expired and its holder is not in `live`, or
        its lease expired more than `hard_bound` seconds ago.
        """
        if not ids:
            return []
        slots = None if paced is None else list(paced)
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT postline_lock_keys($1::uuid[])", list(ids))
            rows = await connection.fetch(
                _CLAIM, list(ids), holder, lease, list(live), hard_bound, slots
            )
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
        (`_PACEABLE`), with their channel, sender, key and last route."""
        if not ids:
            return []
        rows = await self.pool.fetch(_PACEABLE, list(ids))
        return [
            Sender(r["id"], Channel(r["type"]), r["from_addr"], r["ordering_key"], r["route"])
            for r in rows
        ]
