"""The dashboard's live view, read from PostgreSQL and shared through Redis.

One reading holds the last `POINTS` buckets of `STEP_SECONDS` (ten minutes)
of sent, failed and retried outcomes, in total, per channel and per
provider; each provider's attempts, error ratio and latency over the last
`ATTEMPTS_WINDOW_SECONDS`; the oldest waiting message's age; and the dead
letters (messages failed now). The history lives on the server, so a
reload of the page shows the same ten minutes.

A reading is kept in Redis for `MAX_AGE_MS`: the API may run as several
processes and several people may watch the page, and they then share one
set of queries per reading instead of one per poll. Every number is as of
one moment (the reading's `as_of`); the page polls faster than a bucket is
wide, so it never misses one. With Redis down, each request reads afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from postline.domain import activity
from postline.domain.channels import Channel, Provider
from postline.queue.streams import RedisQueue
from postline.services.stats import REDIS_DOWN
from postline.store.activity import ActivityStore, AttemptStats
from postline.store.stats import StatsStore

STEP_SECONDS = 5
POINTS = 120
ATTEMPTS_WINDOW_SECONDS = 60
MAX_AGE_MS = 2000


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _provider_health(found: list[AttemptStats]) -> dict[str, dict[str, Any]]:
    by_name = {a.provider: a for a in found}
    health: dict[str, dict[str, Any]] = {}
    for name in [p.value for p in Provider] + sorted(set(by_name) - set(Provider)):
        a = by_name.get(name)
        attempts, errors = (a.attempts, a.errors) if a else (0, 0)
        health[name] = {
            "attempts": attempts,
            "errors": errors,
            "error_ratio": activity.error_ratio(attempts, errors),
            "latency_ms": None
            if a is None
            else {
                "p50": round(a.p50_ms, 1),
                "p95": round(a.p95_ms, 1),
                "max": round(a.slowest_ms, 1),
            },
        }
    return health


async def read_activity(pool: asyncpg.Pool) -> dict[str, Any]:
    """One reading from PostgreSQL, as `/api/v1/stats/activity` answers it."""
    store = ActivityStore(pool)
    window = activity.Window(width=STEP_SECONDS, points=POINTS, now=await store.clock())
    counts, attempts, dead, oldest = await asyncio.gather(
        store.buckets(since=window.start, width=STEP_SECONDS),
        store.attempts(since=window.now - ATTEMPTS_WINDOW_SECONDS),
        store.dead_letters(),
        StatsStore(pool).oldest_waiting_seconds(),
    )
    channels = activity.lay_out(
        (activity.Count(c.bucket, c.channel, c.status, c.count) for c in counts),
        window,
        [c.value for c in Channel],
    )
    providers = activity.lay_out(
        (activity.Count(c.bucket, c.provider, c.status, c.count) for c in counts),
        window,
        [p.value for p in Provider],
    )
    total = activity.lay_out(
        (activity.Count(c.bucket, "all", c.status, c.count) for c in counts), window, ["all"]
    )["all"]
    return {
        "as_of": _rfc3339(window.now),
        "start": _rfc3339(window.start),
        "step_seconds": STEP_SECONDS,
        "points": POINTS,
        "now": activity.rates_now(total, STEP_SECONDS),
        "total": total,
        "channels": channels,
        "providers": providers,
        "attempts_window_seconds": ATTEMPTS_WINDOW_SECONDS,
        "provider_health": _provider_health(attempts),
        "oldest_pending_seconds": round(oldest, 3),
        "dead_letters": dead,
    }


async def shared_activity(pool: asyncpg.Pool, queue: RedisQueue) -> str:
    """The reading as JSON: the one another process kept, or a fresh one (then kept)."""
    try:
        kept = await queue.activity_reading()
    except REDIS_DOWN:
        return orjson.dumps(await read_activity(pool)).decode()
    if kept is not None:
        return kept
    fresh = orjson.dumps(await read_activity(pool)).decode()
    with contextlib.suppress(*REDIS_DOWN):
        await queue.keep_activity_reading(fresh, ttl_ms=MAX_AGE_MS)
    return fresh
