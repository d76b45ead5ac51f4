"""Fault tests: kill parts of a running Postline and count what survives.

Each test prints its counts (run with -s to see them). Servers are real:
the shared test PostgreSQL/Redis, or servers of the test's own where the test
stops and restarts them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from postline.queue.keys import heartbeat as heartbeat_key
from postline.store.migrate import upgrade
from tests.support.faults import CUT_BY_DEADLINE, script
from tests.support.harness import wait_for
from tests.support.marks import LOADS_THE_MACHINE
from tests.support.order import KeyedLoad, calls_from_requests, judge
from tests.support.stack import Stack, count_status, send_many, sms, wait_all

pytestmark = pytest.mark.timeout(240)


async def held_by(database_url: str, worker: str) -> int:
    """Messages `worker` holds in `sending`: claimed, at the provider, or being written."""
    connection = await asyncpg.connect(database_url)
    try:
        query = "SELECT count(*) FROM messages WHERE status = 'sending' AND held_by = $1"
        return int(await connection.fetchval(query, worker))
    finally:
        await connection.close()


def duplicates(requests: list[dict[str, Any]]) -> int:
    per_recipient = collections.Counter(r["to"] for r in requests if r["status"] < 300)
    return sum(n - 1 for n in per_recipient.values())


@LOADS_THE_MACHINE
async def test_kill_9_a_worker_mid_load(stack: Stack) -> None:
    stack.start_simulator("--latency-ms", "40")
    stack.start_api()
    ids, refused = await send_many(stack.api_url, [sms(i) for i in range(2000)], concurrency=32)
    assert refused == 0 and len(ids) == 2000
    victim = stack.start_worker(concurrency=100)
    stack.start_worker(concurrency=100)
    name = await stack.worker_name(1)

    async def victim_mid_load() -> None:
        while (
            await count_status(stack.database_url, ids, "sent") < 400
            or await held_by(stack.database_url, name) == 0
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(victim_mid_load(), 60)
    stack.kill(victim)
    # Only the victim's own sends in flight can be sent twice: the other worker's
    # are neither lost nor taken over.
    in_flight = await held_by(stack.database_url, name)
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
    print(f"\nkill -9 worker: 2000 accepted, 2000 sent, {in_flight} in the victim's hands "
          f"at the kill, {again} taken over, {dup} duplicate provider calls")  # fmt: skip
    assert dup <= in_flight
    assert again >= dup  # every duplicate send shows in its message's history


async def test_a_worker_paused_past_its_leases_is_taken_over_and_changes_nothing_after(
    stack: Stack, pool: asyncpg.Pool, redis: Any
) -> None:
    """SIGSTOP of a worker whose heads are at the provider: once its heartbeat is gone
    and the leases ran out, another worker sends its keys, in order. Resumed, it
    stays the same process, sends nothing more, and its late outcomes land nowhere."""
    stack.start_simulator("--latency-ms", "1000")
    stack.start_api()
    load = KeyedLoad(20)
    victim = stack.start_worker()
    name = await stack.worker_name(1)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        await load.send(api, 3)

    async def heads_held() -> bool:
        return await held_by(stack.database_url, name) == len(load.keys)

    await wait_for(heads_held, timeout=20, what="the victim holding every head")
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        paused = await held_by(stack.database_url, name)
        stack.start_worker()
        await wait_all(stack.database_url, load.ids, "sent", within=60)
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    resumed = datetime.now(UTC)

    async def idle_again() -> bool:  # its heartbeat is back, with nothing in its hands
        raw = await redis.get(heartbeat_key(name))
        return raw is not None and json.loads(raw)["inflight"] == 0

    await wait_for(idle_again, timeout=20, what="the resumed victim to settle")
    requests = stack.sim_requests()
    report = judge(calls_from_requests(requests), load.accepted)
    late = [r for r in requests if datetime.fromisoformat(r["received_at"]) > resumed]
    sent_events = await pool.fetchval(
        "SELECT count(*) FROM message_events "
        "WHERE status = 'sent' AND message_id = ANY($1::uuid[])",
        load.ids,
    )
    print(f"\nSIGSTOP worker: {paused} held at the pause; {report.line()}; "
          f"{len(late)} calls after the resume")  # fmt: skip
    assert victim.poll() is None
    assert report.overtakes == 0 and report.missing == []
    assert report.duplicates <= paused  # only its calls in flight can go twice
    assert late == []
    assert sent_events == len(load.ids)  # no late outcome landed
    assert await count_status(stack.database_url, load.ids, "sent") == len(load.ids)


@LOADS_THE_MACHINE
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
    fault: str, database_url: str, own_redis: EmbeddedRedis, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """50 keys; Redis is flushed (or restarted) while they are being sent. Every key's
    messages go out in acceptance order, as the simulator saw them."""
    stack = Stack(database_url, own_redis.url, tmp_path)
    load = KeyedLoad(50)
    try:
        stack.start_simulator("--latency-ms", "20")
        stack.start_api()
        stack.start_worker(concurrency=32)
        await stack.worker_name(1)
        # Every fifth key's head is in backoff for 5 s: those keys are whole at the fault.
        await script(
            stack.sim_url, {load.to[k]: [{"status": 500, "retry_after": 5}] for k in load.keys[::5]}
        )
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
            await load.send(api, 8)
            still_open = len(load.ids) - await count_status(database_url, load.ids, "sent")
            if fault == "flushall":
                client = aioredis.Redis.from_url(own_redis.url)
                await client.flushall()
                await client.aclose()
            else:
                await asyncio.to_thread(own_redis.stop)
                await asyncio.to_thread(own_redis.start)
            await load.send(api, 8)
        assert load.refused == 0
        await wait_all(database_url, load.ids, "sent", within=120)
        report = judge(calls_from_requests(stack.sim_requests()), load.accepted)
        print(f"\nredis {fault}: {still_open} open at the fault; {report.line()}")
        assert still_open > 0
        assert report.overtakes == 0 and report.missing == []
        assert report.duplicates <= await pool.fetchval(CUT_BY_DEADLINE)
    finally:
        stack.stop_all()


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
