"""The operations numbers, read once for every view of them (no rendering here).

`/api/v1/stats`, the dashboard (through that endpoint), `postline status`
and `postline worker --check` all read them here:

- queues: `RedisQueue.depths()` (backlog and pending per stream);
- messages per status and throughput: `postline.store.stats`;
- live workers: `postline.queue.workers` (heartbeat keys);
- route health: `postline.queue.routes` (each route's circuit and window).
- pacing: per sender, the messages waiting for their slot and how far out
  the last slot is (`postline.queue.pacing`; empty while pacing is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from redis.exceptions import RedisError

from postline.domain.message import rfc3339
from postline.domain.routes import (
    CircuitPolicy,
    route_names,
    route_plan,
    window_buckets,
    window_tally,
)
from postline.queue.pacing import Waiting
from postline.queue.routes import RouteHealthStore
from postline.queue.streams import RedisQueue, connect
from postline.queue.workers import WorkerBeat, live_workers
from postline.services.routing import circuit_policy
from postline.settings import Settings
from postline.store import stats as store_stats
from postline.store.pool import create_pool
from postline.store.suppressions import SuppressionStore

T = TypeVar("T")

#: Errors that mean "the server is not answering", as opposed to a bug.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class DependencyUnavailable(Exception):
    """PostgreSQL and/or Redis did not answer; `names` says which ("database", "redis")."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(" and ".join(names) + " unavailable")
        self.names = names


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """One route's circuit and its window, as every process reads them."""

    state: str
    since: float
    attempts: int
    failed: int

    def public(self) -> dict[str, Any]:
        since = datetime.fromtimestamp(self.since, UTC) if self.since else None
        return {
            "state": self.state,
            "since": rfc3339(since),
            "attempts": self.attempts,
            "failed": self.failed,
            "error_rate": round(self.failed / self.attempts, 4) if self.attempts else 0.0,
        }


@dataclass(frozen=True, slots=True)
class RouteView:
    """Which routes exist and the rules of their circuits (from the settings)."""

    names: Sequence[str]
    policy: CircuitPolicy

    @classmethod
    def of(cls, settings: Settings) -> RouteView:
        names = route_names(route_plan(twilio_backup=settings.twilio_backup))
        return cls(names, circuit_policy(settings))


async def read_routes(queue: RedisQueue, view: RouteView) -> dict[str, RouteStatus]:
    """Each route's circuit and the outcomes its window counts now."""
    now = time.time()
    readings = await RouteHealthStore(queue.client).read(
        view.names, window_buckets(now, view.policy)
    )
    statuses = {}
    for name, reading in readings.items():
        window = window_tally(reading.buckets, circuit=reading.circuit, now=now, policy=view.policy)
        statuses[name] = RouteStatus(
            reading.circuit.state.value, reading.circuit.since, window.total, window.failed
        )
    return statuses


@dataclass(frozen=True, slots=True)
class Stats:
    """One reading of every operations number."""

    queues: dict[str, dict[str, int]]
    counts: store_stats.StatusCounts
    workers: list[WorkerBeat]
    throughput: store_stats.Throughput
    routes: dict[str, RouteStatus]
    pacing: list[Waiting] = field(default_factory=list)
    #: active suppressions per (channel, reason)
    suppressions: dict[tuple[str, str], int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The `/api/v1/stats` body (SPEC 3.1)."""
        return {
            "queues": self.queues,
            "messages": self.counts.counts,
            "workers": [w.public() for w in self.workers],
            "throughput": {
                "sent_per_second": self.throughput.sent_per_second,
                "failed_per_second": self.throughput.failed_per_second,
            },
            "routes": {name: status.public() for name, status in self.routes.items()},
            "pacing": {"senders": [w.public() for w in self.pacing]},
            "suppressions": suppression_summary(self.suppressions),
        }


def suppression_summary(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Active suppressions in all, per channel and per reason."""
    by_channel: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for (channel, reason), n in counts.items():
        by_channel[channel] = by_channel.get(channel, 0) + n
        by_reason[reason] = by_reason.get(reason, 0) + n
    return {
        "total": sum(counts.values()),
        "by_channel": dict(sorted(by_channel.items())),
        "by_reason": dict(sorted(by_reason.items())),
    }


async def _redis_part(
    queue: RedisQueue, routes: RouteView | None
) -> tuple[dict[str, dict[str, int]], list[WorkerBeat], dict[str, RouteStatus], list[Waiting]]:
    depths, workers, paced = await asyncio.gather(
        queue.depths(), queue.live_workers(), queue.paced()
    )
    health = await read_routes(queue, routes) if routes is not None else {}
    return depths, workers, health, paced


async def _database_part(
    pool: asyncpg.Pool,
) -> tuple[store_stats.StatusCounts, store_stats.Throughput, dict[tuple[str, str], int]]:
    store = store_stats.StatsStore(pool)
    counts, rates, suppressed = await asyncio.gather(
        store.status_counts(), store.throughput(), SuppressionStore(pool).counts()
    )
    return counts, rates, suppressed


async def _bounded(part: Awaitable[T], max_wait: float) -> T:
    return await asyncio.wait_for(part, max_wait)


async def collect_stats(
    *,
    pool: asyncpg.Pool,
    queue: RedisQueue,
    max_wait: float = 5.0,
    routes: RouteView | None = None,
) -> Stats:
    """Reads Redis and PostgreSQL at once; raises DependencyUnavailable naming what is down.

    Each side gets `max_wait` seconds on its own, so a hung server is named
    as down instead of the whole reading just timing out.
    """
    redis_result, db_result = await asyncio.gather(
        _bounded(_redis_part(queue, routes), max_wait),
        _bounded(_database_part(pool), max_wait),
        return_exceptions=True,
    )
    down = []
    if isinstance(db_result, BaseException):
        if not isinstance(db_result, DATABASE_DOWN):
            raise db_result
        down.append("database")
    if isinstance(redis_result, BaseException):
        if not isinstance(redis_result, REDIS_DOWN):
            raise redis_result
        down.append("redis")
    if down:
        raise DependencyUnavailable(down)
    assert not isinstance(redis_result, BaseException)
    assert not isinstance(db_result, BaseException)
    (queues, workers, health, paced), (counts, rates, suppressed) = redis_result, db_result
    return Stats(
        queues=queues,
        counts=counts,
        workers=workers,
        throughput=rates,
        routes=health,
        pacing=paced,
        suppressions=suppressed,
    )


@contextlib.asynccontextmanager
async def _connections(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, RedisQueue]]:
    if not settings.database_url or not settings.redis_url:
        raise ValueError("DATABASE_URL and REDIS_URL must be set")
    # Lazy: a database that is down shows up as DependencyUnavailable, not at connect.
    pool = await create_pool(settings.database_url, size=2, lazy=True)
    client = connect(settings.redis_url, timeout=5.0)
    try:
        yield pool, RedisQueue(client)
    finally:
        await client.aclose()
        await pool.close()


async def fetch_stats(settings: Settings, *, max_wait: float = 5.0) -> Stats:
    """One reading, over connections opened for it (the `postline status` command)."""
    async with _connections(settings) as (pool, queue):
        view = RouteView.of(settings)
        return await collect_stats(pool=pool, queue=queue, max_wait=max_wait, routes=view)


async def fetch_workers(settings: Settings, *, max_wait: float = 5.0) -> list[WorkerBeat]:
    """Live workers (`postline worker --check`); raises DependencyUnavailable if Redis is down."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL must be set")
    client = connect(settings.redis_url, timeout=max_wait)
    try:
        return await asyncio.wait_for(live_workers(client), max_wait)
    except REDIS_DOWN as exc:
        raise DependencyUnavailable(["redis"]) from exc
    finally:
        await client.aclose()
