"""One provider call at a time per key, whatever hints the workers are given.

Overlap is read from the in-process simulator's record of every provider
call (when it arrived, when it was answered), never from Postline's tables.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from postline.domain.channels import Channel
from postline.queue.streams import Enqueue, RedisQueue
from postline.settings import Settings
from tests.support.faults import CUT_BY_DEADLINE, in_process, script, wait_final
from tests.support.harness import settings_for, wait_for
from tests.support.order import CallRecorder, KeyedLoad, judge, overlaps

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> Settings:
    return settings_for(database_url, redis_url, sim.base_url, reconcile_interval_seconds=1)


async def test_one_provider_call_at_a_time_per_key(
    settings: Settings, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """Slow, jittery answers, failing heads, three workers, and a hint for every open message."""
    sim.config.latency_ms, sim.config.latency_jitter_ms = 60, 50
    load, calls = KeyedLoad(20), CallRecorder(sim.state)
    await script(sim.base_url, {load.to[key]: [500, 503] for key in load.keys[::2]})
    hints = RedisQueue(redis)
    async with in_process(settings, workers=3) as service:
        await load.send(service.api, 8)
        # Every open message is queued again, three times over, while its key
        # is busy: only the claim keeps the key to one send at a time.
        for round_ in range(1, 4):
            rows = await pool.fetch(
                "SELECT id, type, ordering_key FROM messages "
                "WHERE status IN ('pending', 'retrying')"
            )
            await hints.push(
                [Enqueue(str(r["id"]), Channel(r["type"]), r["ordering_key"]) for r in rows]
            )

            async def answered(n: int = round_) -> bool:
                return len(calls.calls) >= 40 * n

            await wait_for(answered, timeout=30, what="more provider calls")
        await wait_final(pool, load.ids, within=60)
    report = judge(calls.calls, load.accepted)
    overlapping = overlaps(calls.calls)
    print(f"\none at a time: {report.line()}, {overlapping} overlapping calls")
    assert overlapping == 0
    assert report.overtakes == 0 and report.missing == []
    assert report.duplicates <= await pool.fetchval(CUT_BY_DEADLINE)
