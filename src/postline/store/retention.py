"""Deletes what housekeeping may delete (`domain/retention.py`), one bounded batch a statement.

Each kind is a table, the column that names a row and the condition that
marks it for deletion, given its age (`$1`, seconds). A batch takes the
oldest `limit` such rows through an index (migration 0013) and locks them
`FOR UPDATE SKIP LOCKED`: a row another transaction is changing is left for
a later batch, and one whose change took it out of the condition (a failed
message retried, an expired suppression renewed) is not taken. Each batch
is its own statement, so its locks are few and short.

ON DELETE CASCADE takes a message's events, callbacks, parked receipts and
idempotency key, and an inbound message's callback, each found through an
index on its reference. The statement that deletes messages first adds
their outcome events to `purged_outcomes`, so the cluster-wide outcome
totals (`store/stats.py`), which count events, never drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from postline.domain.retention import Kind
from postline.domain.statuses import SETTLED
from postline.store.stats import OUTCOMES


@dataclass(frozen=True, slots=True)
class _Rule:
    table: str
    key: str
    age: str  # the column the age is measured on, and the batch's order
    extra: str = "true"
    also: str = ""  # more of the statement, run on the batch (`doomed`) before it goes

    def where(self) -> str:
        return f"t.{self.age} < now() - $1::float8 * interval '1 second' AND {self.extra}"


def _no_callback_waiting(column: str) -> str:
    """SQL: no client callback of row `t` is still being tried (its body is read from it)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.{column} = t.id "
        "AND c.delivered_at IS NULL AND c.gave_up_at IS NULL)"
    )


_SETTLED = ", ".join(f"'{s.value}'" for s in sorted(SETTLED))

_TALLY_OUTCOMES = f"""
, tally AS (
    INSERT INTO purged_outcomes (channel, status, n)
    SELECT m.type, e.status, count(*)
    FROM doomed d JOIN messages m ON m.id = d.id JOIN message_events e ON e.message_id = d.id
    WHERE e.status IN ({", ".join(f"'{status}'" for status in sorted(OUTCOMES))}) AND NOT e.note
    GROUP BY m.type, e.status
    ON CONFLICT (channel, status) DO UPDATE SET n = purged_outcomes.n + EXCLUDED.n
)"""

_RULES = {
    Kind.IDEMPOTENCY_KEYS: _Rule("idempotency_keys", "key", "created_at"),
    Kind.SUPPRESSIONS: _Rule("suppressions", "seq", "expires_at"),
    Kind.INBOUND: _Rule(
        "inbound_messages", "id", "received_at", _no_callback_waiting("inbound_id")
    ),
    Kind.MESSAGES: _Rule(
        "messages",
        "id",
        "updated_at",
        f"t.status IN ({_SETTLED}) AND {_no_callback_waiting('message_id')}",
        _TALLY_OUTCOMES,
    ),
}


def purge_sql(kind: Kind) -> str:
    """The DELETE of one batch: `$1` the age in seconds, `$2` the most rows."""
    rule = _RULES[kind]
    # An array, not a join: the DELETE then finds its rows by their unique
    # index, where a join may hash the whole table once it is small enough.
    return f"""
WITH doomed AS MATERIALIZED (
    SELECT t.{rule.key} FROM {rule.table} t
    WHERE {rule.where()}
    ORDER BY t.{rule.age}
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
){rule.also}
DELETE FROM {rule.table} WHERE {rule.key} = ANY(ARRAY(SELECT {rule.key} FROM doomed))
"""


def count_sql(kind: Kind) -> str:
    """How many rows the purge of `kind` would delete now (`$1` the age in seconds)."""
    rule = _RULES[kind]
    return f"SELECT count(*) FROM {rule.table} t WHERE {rule.where()}"


_PURGE = {kind: purge_sql(kind) for kind in Kind}
_COUNT = {kind: count_sql(kind) for kind in Kind}


class RetentionStore:
    """The purge statements of every kind, over one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def purge(self, kind: Kind, *, older_than: timedelta, limit: int) -> int:
        """Deletes at most `limit` rows of `kind` older than `older_than`; returns how many."""
        result = await self.pool.execute(_PURGE[kind], older_than.total_seconds(), limit)
        return int(result.split()[-1])

    async def purgeable(self, kind: Kind, *, older_than: timedelta) -> int:
        """How many rows of `kind` a purge would delete now."""
        return int(await self.pool.fetchval(_COUNT[kind], older_than.total_seconds()))
