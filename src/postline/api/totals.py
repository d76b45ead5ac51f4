"""The cluster-wide outcome totals `/metrics` serves: counted in PostgreSQL, shared through Redis.

Counting every outcome event is a pass over the events table, so a reading
is reused for `MAX_AGE_SECONDS`. The API may run as several processes and
each scrape reaches any one of them; were each to keep its own reading,
one scrape could get an older reading than the scrape before, and
Prometheus takes a counter that drops for a reset (a false spike in every
`rate()`). So the processes share one reading in Redis, where the newest
wins (`RedisQueue.offer_reading`). With Redis down, every scrape counts
afresh, which is never older either.
"""

from __future__ import annotations

import time

import orjson

from postline.queue.streams import RedisQueue
from postline.services.stats import REDIS_DOWN
from postline.store.stats import StatsStore

MAX_AGE_SECONDS = 10.0

Totals = dict[tuple[str, str], int]


def _encode(totals: Totals) -> str:
    return orjson.dumps(sorted([c, o, n] for (c, o), n in totals.items())).decode()


def _decode(reading: str) -> Totals:
    return {(c, o): int(n) for c, o, n in orjson.loads(reading)}


async def outcome_totals(
    stats: StatsStore, queue: RedisQueue, *, max_age: float = MAX_AGE_SECONDS
) -> Totals:
    """Outcomes per (channel, outcome): the shared reading, or a new one when it is older."""
    try:
        kept = await queue.latest_reading()
    except REDIS_DOWN:
        return (await stats.outcome_totals()).counts
    if kept is not None and time.time() - kept[0] < max_age:
        return _decode(kept[1])
    fresh = await stats.outcome_totals()
    try:
        _, reading = await queue.offer_reading(fresh.as_of, _encode(fresh.counts))
    except REDIS_DOWN:
        return fresh.counts
    return _decode(reading)
