"""What the dashboard's activity view reads from PostgreSQL: outcomes per time
bucket, per channel and provider; provider latency and errors; dead letters.

Every query reads a bounded window of the append-only events table through
a partial index on the event time: `sent` and `failed` events through
`message_events_outcome_at_idx` (migration 0003), `retrying` events through
`message_events_retrying_at_idx` (0010). Each event then looks its message up
by primary key for its channel and provider. The cost is the number of
outcomes in the window, never the size of the tables.

Provider latency is not stored as such: an attempt starts with its
`sending` event (written when the worker claims the message, just before
the provider call) and ends with its outcome event (`sent`, `retrying` or
`failed`, written when the answer came). The gap between the two is the
provider call plus a few milliseconds of the worker's own bookkeeping, so it
is an upper bound of what the provider took, never less. A `failed` event
that follows a `sent` of the same attempt is a receipt (the provider gave up
after accepting), not an attempt's outcome, so it is left out of latency
and error ratio (the bucket counts still count it: the message failed then).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from postline.domain.channels import PROVIDER_OF

# A message's provider, or for one with none recorded yet, its channel's
# (`PROVIDER_OF`, passed as two arrays: channels, then their providers).
_PROVIDER = "coalesce(m.provider, pm.provider)"


def _provider_of(channels: int) -> str:
    return (
        f"LEFT JOIN unnest(${channels}::text[], ${channels + 1}::text[]) "
        "AS pm(channel, provider) ON pm.channel = m.type"
    )


# $1: the window's start (epoch seconds), $2: the bucket width in seconds.
# Two arms, one per partial index: each has the index's predicate verbatim (notes,
# migration 0014, are no outcomes: filtered out of the outcome arm).
_BUCKETS = f"""
WITH o AS (
    SELECT message_id, status, at FROM message_events
    WHERE status IN ('sent', 'failed') AND at >= to_timestamp($1) AND NOT note
    UNION ALL
    SELECT message_id, status, at FROM message_events
    WHERE status = 'retrying' AND at >= to_timestamp($1)
)
SELECT floor(extract(epoch FROM o.at) / $2)::bigint AS bucket,
       m.type AS channel, {_PROVIDER} AS provider, o.status, count(*)::int AS n
FROM o JOIN messages m ON m.id = o.message_id {_provider_of(3)}
GROUP BY 1, 2, 3, 4
"""

# $1: the window's start (epoch seconds). One row per provider.
_ATTEMPTS = f"""
WITH o AS (
    SELECT id, message_id, status, attempt, at FROM message_events
    WHERE status IN ('sent', 'failed') AND at >= to_timestamp($1) AND NOT note
    UNION ALL
    SELECT id, message_id, status, attempt, at FROM message_events
    WHERE status = 'retrying' AND at >= to_timestamp($1)
), a AS (
    SELECT {_PROVIDER} AS provider, o.status,
           extract(epoch FROM o.at - s.at)::float8 * 1000 AS ms
    FROM o
    JOIN messages m ON m.id = o.message_id {_provider_of(2)}
    CROSS JOIN LATERAL (
        SELECT s.at FROM message_events s
        WHERE s.message_id = o.message_id AND s.id < o.id
          AND s.status = 'sending' AND s.attempt = o.attempt
        ORDER BY s.id DESC LIMIT 1
    ) s
    WHERE NOT EXISTS (
        SELECT 1 FROM message_events p
        WHERE p.message_id = o.message_id AND p.id < o.id
          AND p.status = 'sent' AND p.attempt = o.attempt)
)
SELECT provider, count(*)::int AS attempts,
       count(*) FILTER (WHERE status <> 'sent')::int AS errors,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
       max(ms) AS slowest
FROM a GROUP BY 1
"""

_CARRIERS = ([c.value for c in PROVIDER_OF], [p.value for p in PROVIDER_OF.values()])

# Index-only on messages_status_seq_idx: as many rows as there are failed messages.
_DEAD_LETTERS = "SELECT count(*)::int FROM messages WHERE status = 'failed'"


@dataclass(frozen=True, slots=True)
class BucketCount:
    """Outcome events of one (bucket, channel, provider, status)."""

    bucket: int  # floor(epoch seconds / width)
    channel: str
    provider: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class AttemptStats:
    """Attempts that ended in a window, for one provider; latencies in ms."""

    provider: str
    attempts: int
    errors: int
    p50_ms: float
    p95_ms: float
    slowest_ms: float


class ActivityStore:
    """Readings over a recent window of message_events (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def clock(self) -> float:
        """The database's now, in epoch seconds: every window is cut on its clock."""
        now = await self.pool.fetchval("SELECT extract(epoch FROM now())::float8")
        return float(now)

    async def buckets(self, *, since: float, width: int) -> list[BucketCount]:
        """Outcome events from `since` (epoch seconds) on, per `width`-second bucket."""
        rows = await self.pool.fetch(_BUCKETS, since, float(width), *_CARRIERS)
        return [
            BucketCount(r["bucket"], r["channel"], r["provider"], r["status"], r["n"]) for r in rows
        ]

    async def attempts(self, *, since: float) -> list[AttemptStats]:
        """Attempts that ended from `since` on: how many, how many failed, how long."""
        rows = await self.pool.fetch(_ATTEMPTS, since, *_CARRIERS)
        return [
            AttemptStats(
                provider=r["provider"],
                attempts=r["attempts"],
                errors=r["errors"],
                p50_ms=float(r["p50"]),
                p95_ms=float(r["p95"]),
                slowest_ms=float(r["slowest"]),
            )
            for r in rows
        ]

    async def dead_letters(self) -> int:
        """Messages whose status is `failed` now: a retried one leaves the count."""
        count = await self.pool.fetchval(_DEAD_LETTERS)
        return int(count)
