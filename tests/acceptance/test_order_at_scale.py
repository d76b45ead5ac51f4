"""Over 20,000 open messages across 2,000 keys: none stalls, each key keeps its order.

Real processes (simulator, API, three workers); the order is the one the
simulator saw. Redis loses every hint a third of the way through, so the
rest of each key must be found again from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from tests.support.faults import CUT_BY_DEADLINE, script
from tests.support.marks import LOADS_THE_MACHINE
from tests.support.order import KeyedLoad, calls_from_requests, judge
from tests.support.stack import Stack, count_status, wait_all

pytestmark = [pytest.mark.timeout(300), LOADS_THE_MACHINE]

KEYS, PER_KEY = 2000, 11


async def test_22000_open_messages_go_out_in_order_with_no_key_stalled(
    stack: Stack, redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    # Order and stalls are the subject, not the retry budget: on a loaded machine
    # a starved event loop can let the deadline cut an attempt more than twice.
    stack.extra_env["MAX_ATTEMPTS"] = "100"
    stack.start_simulator("--latency-ms", "5")
    stack.start_api()
    load = KeyedLoad(KEYS)
    # Every tenth key's head fails once first: it is retrying while the rest wait.
    await script(stack.sim_url, {load.to[key]: [500] for key in load.keys[::10]})
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
        assert await load.send_batches(api, PER_KEY) == KEYS * PER_KEY
    opened = await count_status(stack.database_url, load.ids, "pending")
    assert opened == KEYS * PER_KEY
    started = time.monotonic()
    for _ in range(3):
        stack.start_worker(concurrency=256)
    while await count_status(stack.database_url, load.ids, "sent") < opened // 3:
        assert time.monotonic() - started < 120, "a third was not sent within 120s"
        await asyncio.sleep(0.2)
    await redis.flushdb()
    lost_at = time.monotonic()
    await wait_all(stack.database_url, load.ids, "sent", within=180)
    drained = time.monotonic() - started
    report = judge(calls_from_requests(stack.sim_requests()), load.accepted)
    cut = await pool.fetchval(CUT_BY_DEADLINE)
    print(f"\n{opened} open, 3 workers, Redis flushed after a third: {report.line()} "
          f"({cut} attempts cut by the deadline); drained in {drained:.1f}s, "
          f"{time.monotonic() - lost_at:.1f}s after the flush")  # fmt: skip
    assert report.overtakes == 0
    assert report.missing == []
    assert report.duplicates <= cut
