"""Operations numbers: /api/v1/stats, the dashboard page, `postline status` and
`postline worker --check`, against the real API, worker, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from postline.queue import keys, workers
from postline.store import stats as store_stats
from tests.support.api_calls import send, wait_status
from tests.support.harness import (
    running_api,
    running_worker,
    settings_for,
    wait_for,
)
from tests.support.plans import HISTORY, scans_of

STATUSES = {"scheduled", "pending", "sending", "retrying", "sent", "delivered", "undelivered",
            "failed", "cancelled"}  # fmt: skip
STREAMS = {"message_queue:sms", "message_queue:mms", "message_queue:whatsapp",
           "message_queue:email", "message_queue:retry", "message_queue:dead"}  # fmt: skip
SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Booking paid"}
EMAIL = {"from": "shop@example.com", "to": "ana@example.org", "type": "email",
         "subject": "Receipt", "body": "Thanks"}  # fmt: skip
HEARTBEAT_TTL_SECONDS = 10  # a worker refreshes its heartbeat every 2 s, with this TTL
INVALID = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}


async def fail_next_send_to(sim: Any, to: str) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        answer = await control.post("/_sim/scripts", json={"to": to, "responses": [INVALID]})
        answer.raise_for_status()


async def stats_of(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/api/v1/stats")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def postline(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """Runs the CLI in a child process, without blocking this loop (a worker may be in it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "postline", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTLINE_", "API_KEYS"))}
    return {**env, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}


async def test_stats_report_queues_counts_workers_and_throughput(
    api: httpx.AsyncClient, settings: Any, sim: Any
) -> None:
    await fail_next_send_to(sim, "+15550000002")
    async with running_worker(settings) as worker:
        sent = [await send(api, {**SMS, "to": f"+1555987650{i}"}) for i in range(3)]
        sent.append(await send(api, EMAIL))
        failed = await send(api, {**SMS, "to": "+15550000002"})
        for message_id in sent:
            await wait_status(api, message_id, "sent")
        await wait_status(api, failed, "failed")

        stats = await stats_of(api)
        assert set(stats) == {
            "queues", "messages", "workers", "throughput", "routes", "pacing", "suppressions"
        }  # fmt: skip
        assert stats["pacing"] == {"senders": []}  # pacing is off
        assert stats["suppressions"] == {"total": 0, "by_channel": {}, "by_reason": {}}
        # No backup account configured: one route per provider, both healthy.
        assert set(stats["routes"]) == {"twilio", "sendgrid"}
        for route in stats["routes"].values():
            assert route["state"] == "closed" and route["failed"] == 0
        assert set(stats["queues"]) == STREAMS
        for numbers in stats["queues"].values():
            assert set(numbers) == {"depth", "pending"}
        assert stats["queues"]["message_queue:dead"] == {"depth": 1, "pending": 0}
        assert stats["messages"] == {s: 0 for s in STATUSES} | {"sent": 4, "failed": 1}
        assert stats["throughput"] == {
            "sent_per_second": round(4 / 60, 3),
            "failed_per_second": round(1 / 60, 3),
        }
        [seen] = stats["workers"]
        assert set(seen) == {"name", "last_heartbeat", "inflight"}
        assert seen["name"] == worker.name and seen["inflight"] == 0
        age = datetime.now(UTC) - datetime.fromisoformat(seen["last_heartbeat"])
        assert 0 <= age.total_seconds() < HEARTBEAT_TTL_SECONDS


async def test_queue_depth_shows_the_backlog_without_a_worker(api: httpx.AsyncClient) -> None:
    for _ in range(3):
        await send(api, {**SMS, "ordering_key": None, "to": "+15559876599", "body": "x"})
    await send(api, EMAIL)
    stats = await stats_of(api)
    # Every accepted message has its entry (one key: the claim lets them go one by one).
    assert stats["queues"]["message_queue:sms"]["depth"] == 3
    assert stats["queues"]["message_queue:email"]["depth"] == 1
    assert stats["messages"]["pending"] == 4
    assert stats["workers"] == []
    assert stats["throughput"] == {"sent_per_second": 0.0, "failed_per_second": 0.0}


async def test_a_stopped_worker_leaves_the_list(
    api: httpx.AsyncClient, settings: Any, redis: Any
) -> None:
    async with running_worker(settings) as worker:

        async def listed() -> bool:
            return [w["name"] for w in (await stats_of(api))["workers"]] == [worker.name]

        await wait_for(listed, timeout=5, what="the worker's heartbeat")

    async def gone() -> bool:
        return (await stats_of(api))["workers"] == []

    await wait_for(gone, timeout=5, what="the stopped worker to leave the list")

    # A killed worker deletes nothing: its heartbeat expiring is what removes it.
    beat = {"name": "killed", "last_heartbeat": "2026-01-01T00:00:00Z", "inflight": 3}
    await redis.set(keys.heartbeat("killed"), orjson.dumps(beat), px=300)
    assert (await stats_of(api))["workers"] == [beat]
    await wait_for(gone, timeout=5, what="the expired heartbeat to leave the list")


async def test_heartbeats_that_are_not_workers_are_ignored(redis: Any) -> None:
    await redis.set(keys.heartbeat("junk"), "not json")
    await redis.set(keys.heartbeat("partial"), orjson.dumps({"inflight": 1}))
    beat = {"name": "w1", "last_heartbeat": "2026-01-01T00:00:00Z", "inflight": 2,
            "concurrency": 8}  # fmt: skip
    await redis.set(keys.heartbeat("w1"), orjson.dumps(beat))
    assert await workers.live_workers(redis) == [
        workers.WorkerBeat("w1", "2026-01-01T00:00:00Z", 2, 8)
    ]


async def test_stats_need_the_api_key_when_keys_are_set(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, api_keys="k1,k2")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        refused = await client.get("/api/v1/stats")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        allowed = await client.get("/api/v1/stats", headers={"Authorization": "Bearer k2"})
        assert allowed.status_code == 200, allowed.text
        # The page holds no data, so it is served to anyone; its reads need the key.
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        script = await client.get("/dashboard/static/dashboard.js")
        assert script.status_code == 200 and "/api/v1/stats" in script.text


async def test_stats_answer_503_naming_what_is_down(
    database_url: str, sim: Any, pool: asyncpg.Pool
) -> None:
    no_redis = settings_for(database_url, "redis://127.0.0.1:9/0", sim.base_url)
    async with running_api(no_redis) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.get("/api/v1/stats")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "redis_unavailable"

    no_database = settings_for("postgresql://postgres@127.0.0.1:9/none", "redis://127.0.0.1:9/0",
                               sim.base_url)  # fmt: skip
    async with running_api(no_database) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.get("/api/v1/stats")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "database_and_redis_unavailable"


async def test_counts_come_from_statistics_on_large_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO messages (id, type, status, from_addr, to_addr, ordering_key)
        SELECT gen_random_uuid(), 'sms', s, '+15551234567', '+15559876543', 'k'
        FROM unnest(array_fill('sent'::text, ARRAY[300]) || array_fill('delivered'::text, ARRAY[60])
                    || array_fill('pending'::text, ARRAY[12])) AS s
        """
    )
    await pool.execute("ANALYZE messages")
    # Rows the statistics have not seen yet: open statuses are still counted exactly.
    await pool.execute(
        "INSERT INTO messages (id, type, status, from_addr, to_addr, ordering_key) "
        "VALUES (gen_random_uuid(), 'sms', 'retrying', '+15551234567', '+15559876543', 'k')"
    )
    exact = await store_stats.StatsStore(pool).status_counts()
    assert not exact.estimated
    assert exact.counts == {s: 0 for s in STATUSES} | {
        "sent": 300, "delivered": 60, "pending": 12, "retrying": 1,
    }  # fmt: skip

    estimate = await store_stats.StatsStore(pool).status_counts(estimate_above=100)
    assert estimate.estimated
    assert estimate.counts["pending"] == 12 and estimate.counts["retrying"] == 1
    # A full sample of a small table: the planner's frequencies are exact here.
    assert estimate.counts["sent"] == pytest.approx(300, abs=3)
    assert estimate.counts["delivered"] == pytest.approx(60, abs=3)
    assert estimate.counts["failed"] == 0 and set(estimate.counts) == STATUSES


async def test_throughput_query_is_served_by_the_ops_index(pool: asyncpg.Pool) -> None:
    """With the planner's own settings over hours of history, the last minute's
    outcomes are read from the partial index, entered at the window's start."""
    # One transaction, rolled back: the history and the dropped index are this test's alone.
    async with pool.acquire() as connection:
        rolled_back = connection.transaction()
        await rolled_back.start()
        try:
            await connection.execute(HISTORY)
            await connection.execute("ANALYZE messages, message_events")
            explain = "EXPLAIN (FORMAT JSON) " + store_stats._THROUGHPUT
            scans = scans_of(await connection.fetchval(explain, 60.0))
            windows = {index: cond for _, _, index, cond in scans if index}
            cond = windows.get("message_events_outcome_at_idx", "not used")
            assert cond and cond.startswith("(at > "), f"{cond} in {scans}"
            assert not any(kind == "Seq Scan" for kind, *_ in scans), scans
            # The history is big enough for the index to decide: without it,
            # the window's outcomes are found by reading every event.
            await connection.execute("DROP INDEX message_events_outcome_at_idx")
            scans = scans_of(await connection.fetchval(explain, 60.0))
            assert ("Seq Scan", "message_events", None, None) in scans, scans
        finally:
            await rolled_back.rollback()


async def test_status_command_prints_the_same_numbers(
    api: httpx.AsyncClient, settings: Any, tmp_path: Path
) -> None:
    env = cli_env(settings.database_url, settings.redis_url)
    async with running_worker(settings) as worker:
        message_id = await send(api, SMS)
        await wait_status(api, message_id, "sent")

        code, out, err = await postline(env, tmp_path, "status", "--json")
        assert code == 0, err
        printed = json.loads(out)
        assert set(printed) == {
            "queues", "messages", "workers", "throughput", "routes", "pacing", "suppressions"
        }  # fmt: skip
        assert printed["routes"]["twilio"]["state"] == "closed"
        assert set(printed["queues"]) == STREAMS
        assert printed["messages"] == {s: 0 for s in STATUSES} | {"sent": 1}
        assert [w["name"] for w in printed["workers"]] == [worker.name]
        assert printed["throughput"]["sent_per_second"] == round(1 / 60, 3)

        code, out, err = await postline(env, tmp_path, "status")
        assert code == 0, err
        assert "message_queue:sms" in out and worker.name in out
        assert "Workers (1 live)" in out


async def test_worker_check_exit_codes(settings: Any, tmp_path: Path) -> None:
    env = cli_env(settings.database_url, settings.redis_url)
    code, _, err = await postline(env, tmp_path, "worker", "--check")
    assert code == 1
    assert "no live worker" in err

    async with running_worker(settings) as worker:
        code, out, err = await postline(env, tmp_path, "worker", "--check")
        assert code == 0, err
        assert worker.name in out

    down = {**env, "REDIS_URL": "redis://127.0.0.1:9/0"}
    code, _, err = await postline(down, tmp_path, "worker", "--check")
    assert code == 1
    assert "redis unavailable" in err
