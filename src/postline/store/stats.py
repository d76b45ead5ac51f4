"""What the operations views read from PostgreSQL: counts per status, throughput.

Counts per status stay cheap as the table grows:
- up to `ESTIMATE_ABOVE` rows, an exact `GROUP BY status`, which PostgreSQL
  answers with an index-only scan of `messages_status_seq_idx`;
- past that, the open statuses (scheduled, pending, sending, retrying) stay
  exact through the small partial index `messages_open_idx`, because the
  backlog is the number an operator acts on; the finished ones (sent,
  delivered, ...) only grow, and come from the planner's statistics
  (`pg_stats` frequency x table size), which autovacuum's ANALYZE keeps
  within a few percent. A dashboard polled every second cannot afford to
  count a hundred million rows each time.

Throughput counts the `sent` and `failed` events of the last minute on the
partial index of migration 0003.

Outcome totals (the API's cluster-wide counters) count every outcome event
ever written, per channel: events are append-only, so the totals only grow,
as Prometheus counters must. Housekeeping deletes old messages with their
events, and in the same statement adds those outcomes to `purged_outcomes`
(`store/retention.py`), which the totals add in: one snapshot sees both
sides or neither, so they still only grow. The count reads the whole events
table, so its callers cache it (`postline.api.totals`). The oldest waiting message is one
probe of `messages_open_idx` for pending messages and a pass over the
retrying ones (a few, next to the table).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from postline.domain.statuses import OPEN, Status

#: Rows (planner estimate) above which finished statuses are estimated.
ESTIMATE_ABOVE = 2_000_000
WINDOW_SECONDS = 60

_OPEN = sorted(s.value for s in OPEN)

# reltuples is as of the last VACUUM/ANALYZE; scaling it by the table's
# current size in pages is what the planner itself does between analyzes.
_TABLE_ROWS = """
SELECT CASE WHEN c.relpages > 0
            THEN c.reltuples / c.relpages
                 * (pg_relation_size(c.oid) / current_setting('block_size')::float8)
            ELSE c.reltuples END
FROM pg_class c WHERE c.oid = 'messages'::regclass
"""

_EXACT = "SELECT status, count(*) AS n FROM messages GROUP BY status"

_OPEN_EXACT = (
    "SELECT status, count(*) AS n FROM messages WHERE status = ANY($1::text[]) GROUP BY status"
)

_ESTIMATED = """
SELECT v.status, v.freq FROM pg_stats s,
     unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS v(status, freq)
WHERE s.schemaname = (SELECT n.nspname FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = 'messages'::regclass)
  AND s.tablename = 'messages' AND s.attname = 'status' AND NOT s.inherited
"""

_THROUGHPUT = """
SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM message_events
WHERE status IN ('sent', 'failed') AND at > now() - make_interval(secs => $1) AND NOT note
"""

#: Event statuses that are outcomes, and the name each is counted under.
OUTCOMES = {
    "sent": "sent",
    "failed": "failed",
    "retrying": "retried",
    "delivered": "delivered",
    "undelivered": "undelivered",
}

# One statement, so `as_of` (its transaction's start) and the counts share a
# snapshot: a reading with a later `as_of` never counts less.
_OUTCOME_TOTALS = """
WITH t AS (
    SELECT channel, status, sum(n) AS n FROM (
        SELECT m.type AS channel, e.status, count(*) AS n
        FROM message_events e JOIN messages m ON m.id = e.message_id
        WHERE e.status = ANY($1::text[]) AND NOT e.note
        GROUP BY m.type, e.status
        UNION ALL
        SELECT channel, status, n FROM purged_outcomes WHERE status = ANY($1::text[])
    ) counted
    GROUP BY channel, status
)
SELECT extract(epoch FROM now())::float8 AS as_of, t.channel, t.status, t.n
FROM (SELECT 1) AS one LEFT JOIN t ON true
"""

# Waiting to be sent now: pending since it last changed, or a retry past its due time.
_OLDEST_WAITING = """
SELECT extract(epoch FROM now() - least(
    (SELECT min(updated_at) FROM messages WHERE status = 'pending'),
    (SELECT min(next_attempt_at) FROM messages
     WHERE status = 'retrying' AND next_attempt_at <= now())))::float8
"""


@dataclass(frozen=True, slots=True)
class OutcomeTotals:
    """Outcome events per (channel, outcome name of `OUTCOMES`), as of `as_of` (epoch seconds)."""

    as_of: float
    counts: dict[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Messages per status, every status present; `estimated` when any came from statistics."""

    counts: dict[str, int]
    estimated: bool


@dataclass(frozen=True, slots=True)
class Throughput:
    """Events over the last `window` seconds."""

    sent: int
    failed: int
    window: int

    @property
    def sent_per_second(self) -> float:
        return round(self.sent / self.window, 3)

    @property
    def failed_per_second(self) -> float:
        return round(self.failed / self.window, 3)


def _all_statuses(found: dict[str, int]) -> dict[str, int]:
    return {status.value: int(found.get(status.value, 0)) for status in Status}


class StatsStore:
    """Readings over the messages and message_events tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def status_counts(self, *, estimate_above: int = ESTIMATE_ABOVE) -> StatusCounts:
        """Counts per status (see the module docstring for when they are estimates)."""
        pool = self.pool
        rows = await pool.fetchval(_TABLE_ROWS)
        # -1 means never analyzed: the table is new, so small.
        if rows is None or rows < 0 or rows <= estimate_above:
            exact = await pool.fetch(_EXACT)
            return StatusCounts(_all_statuses({r["status"]: r["n"] for r in exact}), False)
        freqs = await pool.fetch(_ESTIMATED)
        if not freqs:  # no statistics yet (VACUUM without ANALYZE): count for real
            exact = await pool.fetch(_EXACT)
            return StatusCounts(_all_statuses({r["status"]: r["n"] for r in exact}), False)
        found = {r["status"]: round(r["freq"] * rows) for r in freqs if r["status"] not in _OPEN}
        for r in await pool.fetch(_OPEN_EXACT, _OPEN):
            found[r["status"]] = r["n"]
        return StatusCounts(_all_statuses(found), True)

    async def throughput(self, *, window: int = WINDOW_SECONDS) -> Throughput:
        """Messages sent and failed over the last `window` seconds."""
        row = await self.pool.fetchrow(_THROUGHPUT, float(window))
        assert row is not None  # an aggregate always returns one row
        return Throughput(sent=row["sent"], failed=row["failed"], window=window)

    async def outcome_totals(self) -> OutcomeTotals:
        """Every outcome event so far, per channel (the whole table: cache the answer)."""
        rows = await self.pool.fetch(_OUTCOME_TOTALS, list(OUTCOMES))
        counts = {
            (r["channel"], OUTCOMES[r["status"]]): int(r["n"]) for r in rows if r["n"] is not None
        }
        return OutcomeTotals(as_of=rows[0]["as_of"], counts=counts)

    async def oldest_waiting_seconds(self) -> float:
        """How long the longest-waiting sendable message has waited; 0 when none waits."""
        age = await self.pool.fetchval(_OLDEST_WAITING)
        return max(0.0, float(age)) if age is not None else 0.0
