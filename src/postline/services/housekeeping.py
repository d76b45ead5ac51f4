"""Housekeeping: deletes what a long-running Postline no longer needs, in bounded batches.

What goes and what never does is `domain/retention.py`'s; the statements
are `store/retention.py`'s. Each statement deletes at most `BATCH` rows in
its own short transaction, so a first purge of a big table neither holds
many locks nor blocks anything for long.

Two callers: a worker's reconciler, under its lock (one worker at a time),
runs `purge` with at most `ROUNDS` batches of each kind and runs it again
at its next pass while a kind is `behind`; `postline purge` runs batches
until nothing is left, or only counts (`purgeable`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from postline.domain.retention import Kind, Retention, describe
from postline.metrics import WorkerMetrics
from postline.services.ports import Purges
from postline.services.stats import DATABASE_DOWN, DependencyUnavailable
from postline.settings import Settings
from postline.store.pool import create_pool
from postline.store.retention import RetentionStore

log = logging.getLogger("postline.housekeeping")

#: Rows one statement deletes at most.
BATCH = 1000
#: Batches of each kind one reconciler pass runs at most.
ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Purged:
    """Rows deleted per kind; `behind` when a kind had more than the rounds allowed."""

    counts: dict[Kind, int] = field(default_factory=dict)
    behind: bool = False


def retention(
    settings: Settings, *, message_days: int | None = None, inbound_days: int | None = None
) -> Retention:
    """The retention the settings give, or the days given instead."""
    return Retention(
        message_days=settings.message_retention_days if message_days is None else message_days,
        inbound_days=settings.inbound_retention_days if inbound_days is None else inbound_days,
    )


class Housekeeping:
    """Purges every kind the retention names, oldest rows first."""

    def __init__(
        self,
        *,
        store: Purges,
        retention: Retention,
        metrics: WorkerMetrics | None = None,
        batch: int = BATCH,
        rounds: int | None = ROUNDS,
    ) -> None:
        self._store = store
        self._retention = retention
        self._metrics = metrics
        self._batch = batch
        self._rounds = rounds

    async def purge(self) -> Purged:
        """Deletes up to `rounds` batches of each kind (`None`: until none is left)."""
        counts: dict[Kind, int] = {}
        behind = False
        for kind, age in self._retention.ages().items():
            deleted = rounds = 0
            while self._rounds is None or rounds < self._rounds:
                batch = await self._store.purge(kind, older_than=age, limit=self._batch)
                deleted += batch
                rounds += 1
                if batch < self._batch:
                    break
            else:
                behind = True
            counts[kind] = deleted
            if deleted:
                log.info("purged %d %s", deleted, describe(kind, age))
                if self._metrics is not None:
                    self._metrics.purged.labels(kind=kind.value).inc(deleted)
        return Purged(counts, behind)

    async def purgeable(self) -> dict[Kind, int]:
        """How many rows of each kind `purge` would delete now."""
        return {
            kind: await self._store.purgeable(kind, older_than=age)
            for kind, age in self._retention.ages().items()
        }


async def purge_once(database_url: str, retention: Retention, *, dry_run: bool) -> dict[Kind, int]:
    """`postline purge`: deletes every purgeable row now, a batch a statement, or
    (`dry_run`) counts them; raises DependencyUnavailable if PostgreSQL is down."""
    try:
        pool = await create_pool(database_url, size=1)
    except DATABASE_DOWN as exc:
        raise DependencyUnavailable(["database"]) from exc
    housekeeping = Housekeeping(store=RetentionStore(pool), retention=retention, rounds=None)
    try:
        return await housekeeping.purgeable() if dry_run else (await housekeeping.purge()).counts
    except DATABASE_DOWN as exc:
        raise DependencyUnavailable(["database"]) from exc
    finally:
        await pool.close()
