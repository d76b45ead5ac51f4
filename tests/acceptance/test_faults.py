"""Fault tests: kill parts of a running Postline and count what survives.

Each test prints its counts (run with -s to see them). Servers are real:
the shared test PostgreSQL/Redis, or servers of the test's own where the test
stops and restarts them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from postline.store.migrate import upgrade
from tests.support.stack import Stack, count_status, send_many, sms, wait_all

pytestmark = pytest.mark.timeout(240)


async def sending_count(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        query = "SELECT count(*) FROM messages WHERE status = 'sending'"
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


def duplicates(requests: list[dict[str, Any]]) -> int:
    per_recipient = collections.Counter(r["to"] for r in requests if r["status"] < 300)
    return sum(n - 1 for n in per_recipient.values())


async def test_kill_9_a_worker_mid_load(stack: Stack) -> None:
    stack.start_simulator("--latency-ms", "40")
    stack.start_api()
    ids, refused = await send_many(stack.api_url, [sms(i) for i in range(2000)], concurrency=32)
    assert refused == 0 and len(ids) == 2000
    victim = stack.start_worker(concurrency=100)
    stack.start_worker(concurrency=100)

    async def some_sent() -> None:
        while await count_status(stack.database_url, ids, "sent") < 400:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(some_sent(), 60)
    stack.kill(victim)
    in_flight = await sending_count(stack.database_url)
    await wait_all(stack.database_url, ids, "sent", within=120)
    dup = duplicates(stack.sim_requests())
    connection = await asyncpg.connect(stack.database_url)
    try:
        again = await connection.fetchval(
            "SELECT count(DISTINCT message_id) FROM message_events "
            "WHERE detail LIKE 'attempted again%'"
        )
    finally:
        await connection.close()
    print(f"\nkill -9 worker: 2000 accepted, 2000 sent, {in_flight} in flight at the kill, "
          f"{again} taken over, {dup} duplicate provider calls")  # fmt: skip
    assert dup <= in_flight
    assert again >= dup  # every duplicate send shows in its message's history


async def test_kill_9_the_api_mid_load(stack: Stack) -> None:
    stack.start_simulator()
    stack.start_api()
    stack.start_worker()
    load = asyncio.create_task(
        send_many(stack.api_url, [sms(i) for i in range(3000)], concurrency=32)
    )

    async def some_accepted() -> None:
        connection = await asyncpg.connect(stack.database_url)
        try:
            while await connection.fetchval("SELECT count(*) FROM messages") < 500:
                await asyncio.sleep(0.05)
        finally:
            await connection.close()

    await asyncio.wait_for(some_accepted(), 60)
    assert stack.api is not None
    stack.kill(stack.api)
    ids, refused = await load
    stack.start_api()  # a restarted API; nothing to recover there, the workers do that
    await wait_all(stack.database_url, ids, "sent", within=60)
    print(f"\nkill -9 API: {len(ids)} got a 2xx (all sent), {refused} refused or cut off")
    assert len(ids) >= 500


@pytest.mark.parametrize("fault", ["flushall", "restart"])
async def test_redis_loses_everything_or_restarts(
    fault: str, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    port = free_port()
    own_redis = EmbeddedRedis(tmp_path / "redis", port=port)
    url = own_redis.start()
    stack = Stack(database_url, url, tmp_path)
    try:
        stack.start_simulator("--latency-ms", "20")
        stack.start_api()
        stack.start_worker(concurrency=32)
        first, refused = await send_many(stack.api_url, [sms(i) for i in range(1500)])
        assert refused == 0
        if fault == "flushall":
            client = aioredis.Redis.from_url(url)
            await client.flushall()
            await client.aclose()
        else:
            own_redis.stop()
            own_redis.start()
        second, refused = await send_many(stack.api_url, [sms(i) for i in range(1500, 2000)])
        assert refused == 0
        ids = first + second
        await wait_all(database_url, ids, "sent", within=120)
        print(f"\nredis {fault}: {len(ids)} accepted, {len(ids)} sent")
    finally:
        stack.stop_all()
        own_redis.stop()


async def test_postgres_stopped_then_back(redis_url: str, redis: Any, tmp_path: Path) -> None:
    own_pg = EmbeddedPostgres(tmp_path / "pg", port=free_port(), fast=True)
    url = own_pg.start()
    await asyncio.to_thread(upgrade, url)
    stack = Stack(url, redis_url, tmp_path)
    try:
        stack.start_simulator()
        stack.start_api()
        stack.start_worker()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as api:
            before = await api.post("/api/v1/messages/send", json=sms(1))
            assert before.status_code == 202
            own_pg.stop()
            health = await api.get("/health")
            assert health.status_code == 503
            assert health.json()["database"] == "down"
            refused = await api.post("/api/v1/messages/send", json=sms(2))
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "database_unavailable"
            own_pg.start()

            async def healthy() -> None:
                while (await api.get("/health")).status_code != 200:
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(healthy(), 30)
            after = await api.post("/api/v1/messages/send", json=sms(3))
            assert after.status_code == 202
            ids = [before.json()["id"], after.json()["id"]]
            await wait_all(url, ids, "sent", within=60)
        connection = await asyncpg.connect(url)
        try:
            stored = await connection.fetchval("SELECT count(*) FROM messages")
        finally:
            await connection.close()
        print(f"\npostgres stopped: 503 while down, {stored} stored (the refused one is not)")
        assert stored == 2
    finally:
        stack.stop_all()
        own_pg.stop()


async def test_per_key_order_with_three_workers_and_failing_heads(stack: Stack) -> None:
    keys, per_key = 50, 20
    stack.start_simulator("--latency-ms", "5")
    stack.start_api()
    recipients = [f"+1555{k:07d}" for k in range(keys)]
    # The head message of each key fails twice (500, 500) before it goes through.
    async with httpx.AsyncClient(base_url=stack.sim_url) as sim:
        for to in recipients:
            answer = await sim.post("/_sim/scripts", json={"to": to, "responses": [500, 500]})
            answer.raise_for_status()
    payloads = [
        {"from": "+15550000000", "to": recipients[k], "type": "sms", "body": f"{k}:{n}"}
        for n in range(per_key)
        for k in range(keys)
    ]
    ids, refused = await send_many(stack.api_url, payloads, concurrency=1)
    assert refused == 0
    for _ in range(3):
        stack.start_worker(concurrency=64)
    await wait_all(stack.database_url, ids, "sent", within=120)

    got: dict[str, list[int]] = collections.defaultdict(list)
    for request in sorted(stack.sim_requests(), key=lambda r: r["seq"]):
        if request["status"] < 300:
            key, n = request["body"].split(":")
            got[key].append(int(n))
    violations = sum(1 for seq in got.values() for a, b in itertools.pairwise(seq) if b < a)
    print(f"\nordering: {keys} keys x {per_key} messages, 3 workers, "
          f"{sum(map(len, got.values()))} delivered, {violations} order violations")  # fmt: skip
    assert violations == 0
    assert all(seq == list(range(per_key)) for seq in got.values())
