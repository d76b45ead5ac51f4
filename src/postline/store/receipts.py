"""Applies delivery receipts to messages: guarded in SQL, idempotent, out-of-order safe.

A receipt only moves a message along an edge of the lifecycle graph, and
only out of a status the provider owns (`sent`, or `undelivered` ->
`delivered`; `domain/receipts.py`). The guard sits in the UPDATE's WHERE,
so it is re-checked against the row as it is when the UPDATE runs: a late
`sent`, a duplicate `delivered` or a `failed` after `delivered` change
nothing and add no event. Each change appends exactly one event. When one
batch holds several receipts for one message, the strongest is applied
(`RECEIPT_RANK`): the final state is the same whatever the arrival order.
A note (SendGrid `deferred`) is added to a `sent` message's history once
per distinct text, so a redelivered batch adds nothing; it is a `note`
event, which no count of outcomes includes.

Early receipts. A provider may report before the worker has written `sent`:
the message is still `sending` (SendGrid finds it by Postline's id), or its
SID is not stored yet (Twilio finds nothing). Moving such a message on the
spot would break the worker, whose status write only lands while the row is
still `sending` of its attempt: the SID and `sent_at` would be lost and the
ordering key never released. So the receipt is parked in `parked_receipts`
in the same statement, the webhook is acknowledged, and `settle_parked`
(run every second by each API process) applies it once the message is
`sent`, with the same guard. A parked receipt whose message has moved on
to a status it cannot apply to is dropped; one that never finds its
message (a SID from a lost attempt) expires after `PARKED_MAX_AGE_SECONDS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg

from postline.domain.receipts import RECEIPT_RANK, RECEIPT_WAITS, Receipt, receipt_sources
from postline.domain.statuses import Status

#: How long a parked receipt may wait for its message to be `sent`.
PARKED_MAX_AGE_SECONDS = 3600.0


def _quoted(statuses: Sequence[Status] | frozenset[Status]) -> str:
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))


def _guard(new: str, current: str) -> str:
    """SQL: `new` may follow `current` (built from the domain's graph, never from input)."""
    return " OR ".join(
        f"({new} = '{status.value}' AND {current} IN ({_quoted(receipt_sources(status))}))"
        for status in RECEIPT_RANK
    )


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{s.value}' THEN {rank}" for s, rank in RECEIPT_RANK.items())
    return f"CASE {column} {cases} ELSE 0 END"


_WAITS = _quoted(RECEIPT_WAITS)

# Moves each picked message and appends its event; shared by both statements.
# Rows are locked in id order first, so two batches touching the same
# messages queue up behind each other instead of deadlocking.
_APPLY_PICKED = f"""
lk AS (
    SELECT m.id FROM messages m JOIN pick p ON p.message_id = m.id
    WHERE {_guard("p.status", "m.status")}
    ORDER BY m.id
    FOR UPDATE OF m
), upd AS (
    UPDATE messages m
    SET status = p.status, error_code = p.code, error_message = p.msg,
        delivered_at = CASE WHEN p.status = 'delivered' THEN now() ELSE m.delivered_at END,
        updated_at = now()
    FROM pick p JOIN lk ON lk.id = p.message_id
    WHERE m.id = p.message_id AND ({_guard("p.status", "m.status")})
    RETURNING m.id, m.status, m.attempts, m.error_code, m.error_message, p.detail
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, error_code, error_message, detail)
    SELECT id, status, attempts, error_code, error_message, detail FROM upd
)"""

_APPLY = f"""
WITH r AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::int[])
         AS r(ord, provider, mid, pmid, status, code, msg, detail, rank)
), found AS (
    -- Postline's own id when the provider echoes it, else the provider's id.
    SELECT r.*, coalesce(
        (SELECT m.id FROM messages m WHERE m.id = r.mid),
        (SELECT m.id FROM messages m
         WHERE r.mid IS NULL AND m.provider_message_id = r.pmid
         ORDER BY m.seq DESC LIMIT 1)
    ) AS message_id
    FROM r
), seen AS (
    SELECT f.*, m.status AS current, m.attempts,
           f.status IS NOT NULL
           AND (m.status IN ({_WAITS})
                OR (f.message_id IS NULL AND f.mid IS NULL AND f.pmid IS NOT NULL)) AS waits
    FROM found f LEFT JOIN messages m ON m.id = f.message_id
), pick AS (
    SELECT DISTINCT ON (message_id) * FROM seen
    WHERE status IS NOT NULL AND message_id IS NOT NULL
    ORDER BY message_id, rank DESC, ord
), {_APPLY_PICKED}, notes AS (
    -- A note (SendGrid `deferred`) on a sent message, once per distinct text:
    -- with the message's status, but no outcome (`note`, migration 0014).
    INSERT INTO message_events (message_id, status, attempt, detail, note)
    SELECT DISTINCT ON (s.message_id, s.detail)
           s.message_id, s.current, s.attempts, s.detail, true
    FROM seen s
    WHERE s.status IS NULL AND s.current = 'sent'
      AND s.message_id NOT IN (SELECT id FROM upd)
      AND NOT EXISTS (SELECT 1 FROM message_events e
                      WHERE e.message_id = s.message_id AND e.detail = s.detail)
    RETURNING message_id, detail
), parked AS (
    INSERT INTO parked_receipts (provider, message_id, provider_message_id, status,
                                 error_code, error_message, detail)
    SELECT provider, message_id, pmid, status, code, msg, detail FROM seen WHERE waits
)
SELECT s.ord, s.message_id,
       CASE WHEN u.id IS NOT NULL THEN 'applied'
            WHEN s.waits THEN 'parked'
            WHEN n.message_id IS NOT NULL THEN 'noted'
            WHEN s.message_id IS NULL THEN 'unknown'
            ELSE 'ignored' END AS outcome,
       u.status AS new_status
FROM seen s
LEFT JOIN pick p ON p.ord = s.ord
LEFT JOIN upd u ON u.id = p.message_id
LEFT JOIN notes n ON s.status IS NULL AND n.message_id = s.message_id AND n.detail = s.detail
ORDER BY s.ord
"""

_SETTLE = f"""
WITH p AS (
    SELECT pr.id, pr.status, pr.error_code AS code, pr.error_message AS msg, pr.detail,
           pr.received_at,
           coalesce(pr.message_id,
                    (SELECT m.id FROM messages m
                     WHERE m.provider_message_id = pr.provider_message_id
                     ORDER BY m.seq DESC LIMIT 1)) AS message_id
    FROM parked_receipts pr
    WHERE pr.id > $1
    ORDER BY pr.id
    LIMIT $2
    FOR UPDATE OF pr SKIP LOCKED
), seen AS (
    SELECT p.*, m.status AS current, {_rank("p.status")} AS rank
    FROM p LEFT JOIN messages m ON m.id = p.message_id
), pick AS (
    SELECT DISTINCT ON (message_id) * FROM seen
    WHERE current IS NOT NULL AND current NOT IN ({_WAITS})
    ORDER BY message_id, rank DESC, id
), {_APPLY_PICKED}, done AS (
    -- Settled once the message left the waiting statuses (applied, or it can
    -- no longer apply), or expired.
    DELETE FROM parked_receipts d USING seen s
    WHERE d.id = s.id
      AND ((s.current IS NOT NULL AND s.current NOT IN ({_WAITS}))
           OR s.received_at < now() - $3::float8 * interval '1 second')
    RETURNING d.id, (s.current IS NULL OR s.current IN ({_WAITS})) AS expired
)
SELECT (SELECT max(id) FROM p) AS last_id,
       (SELECT count(*) FROM p) AS scanned,
       (SELECT count(*) FROM done WHERE expired) AS expired,
       (SELECT coalesce(array_agg(id), '{{}}') FROM upd) AS applied_ids,
       (SELECT coalesce(array_agg(status), '{{}}') FROM upd) AS applied_statuses
"""


@dataclass(frozen=True, slots=True)
class Applied:
    """A message a receipt moved, and where to (what client callbacks report)."""

    message_id: uuid.UUID
    status: Status


class ReceiptOutcome(StrEnum):
    """What became of one receipt (the `_APPLY` statement names them)."""

    APPLIED = "applied"  # it moved its message
    PARKED = "parked"  # it came before its message was recorded as sent: kept for later
    NOTED = "noted"  # recorded in the history, the status unchanged
    IGNORED = "ignored"  # a duplicate, a late or a superseded report
    UNKNOWN = "unknown"  # no such message


@dataclass(slots=True)
class ApplyResult:
    """What became of each receipt of a batch."""

    outcomes: list[ReceiptOutcome] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    parked: list[Receipt] = field(default_factory=list)
    unknown: list[Receipt] = field(default_factory=list)

    def count(self, outcome: ReceiptOutcome) -> int:
        return self.outcomes.count(outcome)


@dataclass(slots=True)
class SettleResult:
    """One pass over the parked receipts."""

    scanned: int = 0
    expired: int = 0
    applied: list[Applied] = field(default_factory=list)


class ReceiptStore:
    """Receipts against the messages, message_events and parked_receipts tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, receipts: Sequence[Receipt]) -> ApplyResult:
        """Applies a batch in one statement; parks what arrived before `sent`.

        Outcomes, one per receipt in order: `applied`, `parked`, `noted`,
        `unknown` (no such message) or `ignored` (a duplicate, a late or a
        superseded report).
        """
        result = ApplyResult()
        if not receipts:
            return result
        columns: list[list[Any]] = [[] for _ in range(9)]
        for ordinal, r in enumerate(receipts):
            values = (
                ordinal,
                r.provider,
                r.message_id,
                r.provider_message_id,
                r.status.value if r.status is not None else None,
                r.error_code,
                r.error_message,
                r.detail,
                r.rank,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        rows = await self.pool.fetch(_APPLY, *columns)
        for row in rows:
            outcome = ReceiptOutcome(row["outcome"])
            result.outcomes.append(outcome)
            if outcome is ReceiptOutcome.APPLIED:
                result.applied.append(Applied(row["message_id"], Status(row["new_status"])))
            elif outcome is ReceiptOutcome.PARKED:
                result.parked.append(receipts[row["ord"]])
            elif outcome is ReceiptOutcome.UNKNOWN:
                result.unknown.append(receipts[row["ord"]])
        return result

    async def settle_parked(
        self, *, max_age: float = PARKED_MAX_AGE_SECONDS, batch: int = 500
    ) -> SettleResult:
        """Applies parked receipts whose message is now `sent`; drops settled and expired ones."""
        result = SettleResult()
        last = 0
        while True:
            row = await self.pool.fetchrow(_SETTLE, last, batch, max_age)
            assert row is not None  # an aggregate query always answers one row
            if row["last_id"] is None:
                return result
            result.scanned += row["scanned"]
            result.expired += row["expired"]
            result.applied += [
                Applied(mid, Status(status))
                for mid, status in zip(row["applied_ids"], row["applied_statuses"], strict=True)
            ]
            if row["scanned"] < batch:
                return result
            last = row["last_id"]

    async def parked_count(self) -> int:
        count: int = await self.pool.fetchval("SELECT count(*) FROM parked_receipts")
        return count
