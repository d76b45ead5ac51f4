"""The API's cluster-wide numbers on /metrics: outcome totals per channel read
from PostgreSQL, the oldest waiting message, live workers and dead letters,
against the real API, worker, simulator (with its receipts), PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from postline.api.totals import outcome_totals
from postline.queue.streams import RedisQueue
from postline.settings import Settings
from postline.simulator import RunningSimulator
from postline.store.stats import StatsStore
from tests.support.harness import (
    receipt_settings,
    receipting_simulator,
    running_api,
    running_worker,
    wait_for,
)

SENDGRID_PATH = "/api/v1/webhooks/sendgrid/events"
INVALID = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
FINAL = ("delivered", "undelivered", "failed")


def sms(to: str) -> dict[str, Any]:
    return {"from": "+15551234567", "to": to, "type": "sms", "body": "Paid"}


def email(to: str) -> dict[str, Any]:
    return {"from": "shop@example.com", "to": to, "type": "email",
            "subject": "Receipt", "body": "Thanks"}  # fmt: skip


# Each message to its own address (its own ordering key), with what the
# simulator answers it: the outcomes below are what PostgreSQL must then hold.
MESSAGES: list[tuple[dict[str, Any], list[Any]]] = [
    (sms("+15550000001"), []),
    (sms("+15550000002"), [500]),  # retried once, then sent and delivered
    (sms("+15550000003"), [INVALID]),  # failed for good
    (email("ana@example.org"), []),
    (email("bo@example.org"), [{"status": 202, "receipt": "undelivered"}]),
    ({**sms("whatsapp:+15550000004"), "type": "whatsapp"}, []),
    ({**sms("+15550000005"), "type": "mms", "attachments": ["https://example.com/a.png"]}, []),
]
EXPECTED = {
    ("sms", "sent"): 2, ("sms", "delivered"): 2, ("sms", "retried"): 1, ("sms", "failed"): 1,
    ("email", "sent"): 2, ("email", "delivered"): 1, ("email", "undelivered"): 1,
    ("whatsapp", "sent"): 1, ("whatsapp", "delivered"): 1,
    ("mms", "sent"): 1, ("mms", "delivered"): 1,
}  # fmt: skip

# The test's own count, written apart from the code under test.
EVENTS_PER_CHANNEL = """
SELECT m.type, e.status, count(*) AS n
FROM message_events e JOIN messages m ON m.id = e.message_id
GROUP BY m.type, e.status
"""
OUTCOME_OF = {"sent": "sent", "failed": "failed", "retrying": "retried",
              "delivered": "delivered", "undelivered": "undelivered"}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with receipting_simulator() as running:  # its receipts make delivered and undelivered
        yield running


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> Settings:
    # `pool` and `redis` are requested so each test starts from empty tables and queues.
    return receipt_settings(database_url, redis_url, sim)


def samples_of(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


async def scrape(api: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = await api.get("/metrics")
    assert answer.status_code == 200
    return samples_of(answer.text)


def totals_in(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[Any, int]:
    return {
        (dict(labels)["channel"], dict(labels)["outcome"]): int(v)
        for (name, labels), v in samples.items()
        if name == "postline_cluster_outcomes_total"
    }


async def test_the_totals_per_channel_are_what_postgresql_holds(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        for message, answers in MESSAGES:
            if answers:
                script = {"to": message["to"].removeprefix("whatsapp:"), "responses": answers}
                (await control.post("/_sim/scripts", json=script)).raise_for_status()
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        sim.config.sendgrid_event_webhook_url = base + SENDGRID_PATH
        for message, _ in MESSAGES:
            answer = await api.post("/api/v1/messages/send", json=message)
            assert answer.status_code == 202, answer.text
        # The worker's StatusCallback points at this API, so receipts come back to it.
        worker_settings = settings.model_copy(update={"public_base_url": base})
        async with running_worker(worker_settings):

            async def all_final() -> bool:
                done = await pool.fetchval(
                    "SELECT count(*) FROM messages WHERE status = ANY($1::text[])", list(FINAL)
                )
                return bool(done == len(MESSAGES))

            await wait_for(all_final, timeout=20, what="every message to reach a final status")
            samples = await scrape(api)
            live = samples[("postline_workers_live", frozenset())]
        held = {
            (r["type"], OUTCOME_OF[r["status"]]): r["n"]
            for r in await pool.fetch(EVENTS_PER_CHANNEL)
            if r["status"] in OUTCOME_OF
        }

    assert totals_in(samples) == held
    assert held == EXPECTED
    assert live == 1
    assert samples[("postline_oldest_pending_age_seconds", frozenset())] == 0
    dead = frozenset({("stream", "message_queue:dead")})
    assert samples[("postline_queue_depth", dead)] == 1  # the one that failed


async def test_the_oldest_pending_age_counts_from_when_it_became_sendable(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        for to in ("+15550000001", "+15550000002"):
            answer = await api.post("/api/v1/messages/send", json=sms(to))
            assert answer.status_code == 202, answer.text
        await pool.execute(
            "UPDATE messages SET updated_at = now() - interval '90 seconds' WHERE to_addr = $1",
            "+15550000001",
        )
        samples = await scrape(api)

    age = samples[("postline_oldest_pending_age_seconds", frozenset())]
    assert 90 <= age < 120
    assert samples[("postline_workers_live", frozenset())] == 0
    assert totals_in(samples) == {}


async def test_api_processes_share_one_reading_and_never_serve_an_older_one(
    settings: Settings, pool: asyncpg.Pool, queue: RedisQueue
) -> None:
    stats = StatsStore(pool)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=sms("+15550000001"))
        message_id = answer.json()["id"]
    await pool.execute(
        "INSERT INTO message_events (message_id, status, attempt) VALUES ($1, 'sent', 1)",
        message_id,
    )
    first = await outcome_totals(stats, queue)
    assert first == {("sms", "sent"): 1}
    await pool.execute(
        "INSERT INTO message_events (message_id, status, attempt) VALUES ($1, 'delivered', 1)",
        message_id,
    )
    # Another process, within the reading's age: the shared reading, not a count of its own.
    assert await outcome_totals(stats, queue) == first
    # Once it is older, a new count; a late offer of an older reading does not replace it.
    newer = await outcome_totals(stats, queue, max_age=0)
    assert newer == {("sms", "sent"): 1, ("sms", "delivered"): 1}
    kept_at, _ = await queue.offer_reading(time.time() - 3600, "[]")
    assert await outcome_totals(stats, queue) == newer
    assert kept_at > time.time() - 60
