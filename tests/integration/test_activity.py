"""The dashboard's activity reading (`GET /api/v1/stats/activity`) against the
real API, worker, simulator, PostgreSQL and Redis."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx

from postline.queue import keys
from postline.services import activity
from postline.store import activity as store_activity
from tests.support.api_calls import send, wait_status
from tests.support.faults import script
from tests.support.harness import running_api, running_worker, settings_for, wait_for
from tests.support.plans import HISTORY, Scan, scans_of

SMS = {"from": "+15551234567", "type": "sms", "body": "Booking paid"}
EMAIL = {"from": "shop@example.com", "to": "ana@example.org", "type": "email",
         "subject": "Receipt", "body": "Thanks"}  # fmt: skip
INVALID = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
BUCKET = activity.STEP_SECONDS


async def reading(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/api/v1/stats/activity")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_outcomes_per_channel_and_provider_with_latency_and_errors(
    api: httpx.AsyncClient, settings: Any, sim: Any
) -> None:
    # The first fails at once, the second has one transient error, then is sent.
    await script(sim.base_url, {"+15550000001": [INVALID], "+15550000002": [503]})
    async with running_worker(settings):
        failed = await send(api, {**SMS, "to": "+15550000001"})
        retried = await send(api, {**SMS, "to": "+15550000002"})
        plain = [await send(api, {**SMS, "to": "+15559876501"}), await send(api, EMAIL)]
        await wait_status(api, failed, "failed")
        for message_id in [retried, *plain]:
            await wait_status(api, message_id, "sent")

        # Outcomes show once their bucket is complete, and the reading is shared a moment.
        async def counted() -> dict[str, Any] | None:
            body = await reading(api)
            return body if sum(body["total"]["sent"]) == 3 else None

        body = await wait_for(counted, timeout=BUCKET + 10, what="the sends in the series")

    assert body["step_seconds"] == BUCKET and body["points"] == activity.POINTS
    for series in [body["total"], *body["channels"].values(), *body["providers"].values()]:
        assert {name: len(counts) for name, counts in series.items()} == {
            "sent": activity.POINTS, "failed": activity.POINTS, "retried": activity.POINTS,
        }  # fmt: skip
    assert {k: sum(v) for k, v in body["total"].items()} == {"sent": 3, "failed": 1, "retried": 1}
    assert set(body["channels"]) == {"sms", "mms", "whatsapp", "email"}
    assert {k: sum(v) for k, v in body["channels"]["sms"].items()} == {
        "sent": 2, "failed": 1, "retried": 1,
    }  # fmt: skip
    assert sum(body["channels"]["email"]["sent"]) == 1
    assert sum(body["providers"]["twilio"]["sent"]) == 2
    assert sum(body["providers"]["sendgrid"]["sent"]) == 1

    twilio = body["provider_health"]["twilio"]
    assert (twilio["attempts"], twilio["errors"], twilio["error_ratio"]) == (4, 2, 0.5)
    latency = twilio["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"] < 2000
    assert body["provider_health"]["sendgrid"]["error_ratio"] == 0.0
    assert body["dead_letters"] == 1
    assert body["oldest_pending_seconds"] == 0

    # A retry takes the message out of the dead letters (the stream keeps its entry).
    answer = await api.post(f"/api/v1/messages/{failed}/retry")
    assert answer.status_code == 202, answer.text
    async with running_worker(settings):
        await wait_status(api, failed, "sent")

        async def no_dead_letter() -> bool:
            return bool((await reading(api))["dead_letters"] == 0)

        await wait_for(no_dead_letter, timeout=10, what="the dead letters to go down")


async def test_the_rate_now_is_the_last_complete_bucket(pool: asyncpg.Pool, redis: Any) -> None:
    """25 sends within one 5 s bucket are 5/s now, not 25/60 of a minute's average."""
    message_id = await pool.fetchval(
        "INSERT INTO messages (id, type, status, from_addr, to_addr, ordering_key, provider) "
        "VALUES (gen_random_uuid(), 'whatsapp', 'sent', '+15551234567', '+15559876543', 'k', "
        "'twilio') RETURNING id"
    )
    store = store_activity.ActivityStore(pool)
    while True:  # a reading in the same bucket as the inserts (retried across a boundary)
        now = await store.clock()
        last = int(now // BUCKET) - 1
        await pool.execute(
            "INSERT INTO message_events (message_id, status, attempt, at) "
            "SELECT $1, 'sent', 1, to_timestamp($2::float8) FROM generate_series(1, 25)",
            message_id, last * BUCKET + 1.0,
        )  # fmt: skip
        # An old send, outside the window: not counted.
        await pool.execute(
            "INSERT INTO message_events (message_id, status, attempt, at) "
            "VALUES ($1, 'sent', 1, now() - interval '11 minutes')",
            message_id,
        )
        body = await activity.read_activity(pool)
        if int(await store.clock() // BUCKET) - 1 == last:
            break
        await pool.execute("DELETE FROM message_events WHERE message_id = $1", message_id)
    assert body["now"] == {
        "sent_per_second": 5.0, "failed_per_second": 0.0, "retried_per_second": 0.0,
    }  # fmt: skip
    assert body["total"]["sent"][-1] == 25 and sum(body["total"]["sent"]) == 25
    assert sum(body["channels"]["whatsapp"]["sent"]) == 25


async def test_readings_are_shared_for_a_moment(
    api: httpx.AsyncClient, redis: Any, settings: Any
) -> None:
    first = await reading(api)
    assert json.loads(await redis.get(keys.ACTIVITY_READING)) == first
    assert 0 < await redis.pttl(keys.ACTIVITY_READING) <= activity.MAX_AGE_MS
    # Another API process (a second app on the same servers) serves the same reading.
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as other:
        assert (await reading(other))["as_of"] == first["as_of"]


async def test_activity_needs_the_api_key_when_keys_are_set(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, api_keys="k1")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        refused = await client.get("/api/v1/stats/activity")
        assert refused.status_code == 401
        allowed = await client.get("/api/v1/stats/activity", headers={"Authorization": "Bearer k1"})
        assert allowed.status_code == 200, allowed.text


async def _plans(connection: asyncpg.Connection) -> list[set[Scan]]:
    since = await connection.fetchval(
        "SELECT extract(epoch FROM now())::float8 - $1", float(activity.POINTS * BUCKET)
    )
    carriers = store_activity._CARRIERS
    queries = [
        (store_activity._BUCKETS, (since, float(BUCKET))),
        (store_activity._ATTEMPTS, (since,)),
    ]
    return [
        scans_of(await connection.fetchval("EXPLAIN (FORMAT JSON) " + query, *args, *carriers))
        for query, args in queries
    ]


async def test_activity_queries_read_only_the_window_through_partial_indexes(
    pool: asyncpg.Pool,
) -> None:
    """With the planner's own settings over a table a thousand times the window,
    each arm of the window reads its partial index, never the whole table."""
    # One transaction, rolled back: the history and the dropped index are this test's alone.
    async with pool.acquire() as connection:
        rolled_back = connection.transaction()
        await rolled_back.start()
        try:
            await connection.execute(HISTORY)
            await connection.execute("ANALYZE messages, message_events")
            for scans in await _plans(connection):
                # Each partial index is entered at the window's start, not read whole.
                windows = {index: cond for _, _, index, cond in scans if index}
                for index in ("message_events_outcome_at_idx", "message_events_retrying_at_idx"):
                    cond = windows.get(index, "not used")
                    assert cond and cond.startswith("(at >= "), f"{index}: {cond} in {scans}"
                assert not any(kind == "Seq Scan" for kind, *_ in scans), scans
            # The table is big enough for the index to decide: without it, the
            # retried attempts of the window are found by reading every event.
            await connection.execute("DROP INDEX message_events_retrying_at_idx")
            for scans in await _plans(connection):
                assert ("Seq Scan", "message_events", None, None) in scans, scans
        finally:
            await rolled_back.rollback()
