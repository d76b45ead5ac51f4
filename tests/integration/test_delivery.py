"""Retries, dead letters, scheduling, cancel, manual retry, idempotency, reconciling."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from postline.queue.keys import RECONCILE_LOCK
from postline.queue.streams import RedisQueue
from postline.store.messages import MessageStore
from postline.worker.reconciler import Reconciler
from tests.support.harness import message_reaches as wait_status
from tests.support.harness import (
    running_worker,
    settings_for,
    wait_for,
)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any) -> Any:
    return settings_for(
        database_url, redis_url, sim.base_url,
        reconcile_interval_seconds=0.5,
    )  # fmt: skip


async def script(sim: Any, to: str, responses: list[Any]) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        answer = await control.post("/_sim/scripts", json={"to": to, "responses": responses})
        answer.raise_for_status()


async def events(api: httpx.AsyncClient, message_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/api/v1/messages/{message_id}/events")
    result: list[dict[str, Any]] = answer.json()
    return result


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def test_two_5xx_then_success_is_sent_on_attempt_three(
    api: httpx.AsyncClient, settings: Any, sim: Any
) -> None:
    await script(sim, SMS["to"], [500, 500, 201])
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    async with running_worker(settings):
        message = await wait_status(api, message_id, "sent")
    assert message["attempts"] == 3
    trail = [(e["status"], e["attempt"]) for e in await events(api, message_id)]
    assert trail == [
        ("pending", 0), ("sending", 1), ("retrying", 1), ("sending", 2), ("retrying", 2),
        ("sending", 3), ("sent", 3),
    ]  # fmt: skip
    retry_event = (await events(api, message_id))[2]
    assert retry_event["error"]["code"] == "20500"


async def test_429_retry_after_is_honoured(api: httpx.AsyncClient, settings: Any, sim: Any) -> None:
    await script(sim, SMS["to"], [{"status": 429, "retry_after": 2}])
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    async with running_worker(settings):
        retrying = await wait_status(api, message_id, "retrying", "sent")
        if retrying["status"] == "retrying":
            assert retrying["next_attempt_at"] is not None
        await wait_status(api, message_id, "sent")
    trail = [e["status"] for e in await events(api, message_id)]
    assert trail == ["pending", "sending", "retrying", "sending", "sent"]
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        calls = (await control.get("/_sim/requests")).json()["requests"]
    assert [c["status"] for c in calls] == [429, 201]
    waited = parse(calls[1]["received_at"]) - parse(calls[0]["received_at"])
    assert waited >= timedelta(seconds=2), waited


async def test_permanent_error_fails_at_once_with_the_provider_code(
    api: httpx.AsyncClient, settings: Any, sim: Any, redis: Any
) -> None:
    bad = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
    await script(sim, SMS["to"], [bad])
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    async with running_worker(settings):
        message = await wait_status(api, message_id, "failed")
    assert message["attempts"] == 1
    assert message["error"] == {"code": "21211", "message": "Invalid 'To' Phone Number"}
    dead = await redis.xrange("message_queue:dead")
    assert [fields["id"] for _, fields in dead] == [message_id]


async def test_an_outcome_postgresql_refuses_fails_that_message_and_frees_its_key(
    api: httpx.AsyncClient, settings: Any, sim: Any, redis: Any
) -> None:
    """The provider's error text holds a NUL, which PostgreSQL cannot store: the same
    write would fail forever. The message fails with the reason instead, is dead-lettered,
    and the next message of its key goes out."""
    await script(sim, SMS["to"], [{"status": 400, "code": 21211, "message": "bad\u0000text"}])
    first = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    second = (await api.post("/api/v1/messages/send", json={**SMS, "body": "next"})).json()["id"]
    async with running_worker(settings):
        failed = await wait_status(api, first, "failed")
        await wait_status(api, second, "sent")
    assert failed["attempts"] == 1
    assert failed["error"]["code"] == "internal_error"
    assert "could not be stored" in failed["error"]["message"]
    history = await events(api, first)
    assert history[-1]["status"] == "failed"
    assert [e["status"] for e in history].count("sending") == 1  # no second attempt
    dead = await redis.xrange("message_queue:dead")
    assert [(fields["id"], fields["error_code"]) for _, fields in dead] == [
        (first, "internal_error")
    ]
    assert [r["body"] for r in sim.state.requests()] == ["Test", "next"]  # one call each


async def test_exhausted_retries_fail_then_manual_retry_gets_a_fresh_budget(
    api: httpx.AsyncClient, settings: Any, sim: Any, redis: Any
) -> None:
    await script(sim, SMS["to"], [503, 503, 503, 503, 201])
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    async with running_worker(settings):
        failed = await wait_status(api, message_id, "failed")
        assert failed["attempts"] == 3
        assert await redis.xlen("message_queue:dead") == 1
        again = await api.post(f"/api/v1/messages/{message_id}/retry")
        assert again.status_code == 202
        assert again.json()["status"] == "pending"
        sent = await wait_status(api, message_id, "sent")
    assert sent["attempts"] == 5  # a fresh budget of 3: 503 on the 4th, 201 on the 5th
    conflict = await api.post(f"/api/v1/messages/{message_id}/retry")
    assert conflict.status_code == 409
    missing = await api.post(f"/api/v1/messages/{uuid.uuid4()}/retry")
    assert missing.status_code == 404


async def test_scheduled_send_goes_out_on_time_and_can_be_cancelled(
    api: httpx.AsyncClient, settings: Any, sim: Any
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=2)
    answer = await api.post("/api/v1/messages/send", json={**SMS, "send_at": at.isoformat()})
    later = answer.json()
    assert later["status"] == "scheduled"
    never = (
        await api.post(
            "/api/v1/messages/send",
            json={**SMS, "to": "+15559876000", "send_at": at.isoformat()},
        )
    ).json()
    cancel = await api.post(f"/api/v1/messages/{never['id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    async with running_worker(settings):
        sent = await wait_status(api, later["id"], "sent")
        # The cancelled one was due with it: it would have gone by the time a promote
        # round (0.2 s) and a reconciler pass (0.5 s) have passed its send_at.
        chance = at + timedelta(seconds=0.2 + settings.reconcile_interval_seconds + 0.5)

        async def past_its_chance() -> bool:
            return datetime.now(UTC) > chance

        await wait_for(past_its_chance, timeout=10, what="the cancelled one's chance to go")
    late = parse(sent["sent_at"]) - at
    assert timedelta(0) <= late < timedelta(seconds=1), late
    assert [r["to"] for r in sim.state.requests()] == [SMS["to"]]  # never the cancelled one
    again = await api.post(f"/api/v1/messages/{later['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_cancellable"


async def test_cancelled_head_releases_its_key(api: httpx.AsyncClient, settings: Any) -> None:
    first = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    second = (await api.post("/api/v1/messages/send", json={**SMS, "body": "two"})).json()["id"]
    assert (await api.post(f"/api/v1/messages/{first}/cancel")).status_code == 200
    async with running_worker(settings):
        await wait_status(api, second, "sent")
    assert (await api.get(f"/api/v1/messages/{first}")).json()["status"] == "cancelled"


async def test_idempotency_key_returns_the_first_message(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers = {"Idempotency-Key": "booking-42-paid"}
    first = await api.post("/api/v1/messages/send", json=SMS, headers=headers)
    assert first.status_code == 202
    reordered = {k: SMS[k] for k in reversed(list(SMS))}
    again = await api.post("/api/v1/messages/send", json=reordered, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await api.post("/api/v1/messages/send", json={**SMS, "body": "x"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_concurrent_identical_requests_make_one_message(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any
) -> None:
    headers = {"Idempotency-Key": "same-moment"}
    answers = await asyncio.gather(
        *(api.post("/api/v1/messages/send", json=SMS, headers=headers) for _ in range(20))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 1 and codes.count(200) == 19, codes
    assert len({a.json()["id"] for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await redis.xlen("message_queue:sms") == 1


async def test_reconciler_queues_what_the_api_stored_but_never_queued(
    api: httpx.AsyncClient, settings: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    # As if the API died between its commit and its XADD: the row exists, Redis knows nothing.
    message_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO messages (id, type, status, from_addr, to_addr, body, ordering_key, "
        "updated_at) VALUES ($1, 'sms', 'pending', '+15551234567', '+15559876543', 'lost', "
        "'+15559876543', now() - interval '1 minute')",
        message_id,
    )
    assert await redis.xlen("message_queue:sms") == 0
    async with running_worker(settings):
        await wait_status(api, str(message_id), "sent")
    assert await redis.xlen("message_queue:sms") == 0


async def test_reconciler_never_queues_twice(
    api: httpx.AsyncClient, settings: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    ids = []
    for i in range(5):
        answer = await api.post("/api/v1/messages/send", json={**SMS, "to": f"+1555987{i:04d}"})
        ids.append(answer.json()["id"])
    await redis.delete(RECONCILE_LOCK)

    store, queue = MessageStore(pool), RedisQueue(redis)
    reconciler = Reconciler(store=store, queue=queue, owner="t", interval=1)
    assert await reconciler.tick() == 0
    assert await redis.xlen("message_queue:sms") == len(ids)
    await redis.flushdb()
    assert await reconciler.tick() == len(ids)
    assert await redis.xlen("message_queue:sms") == len(ids)
    await redis.delete(RECONCILE_LOCK)
    assert await reconciler.tick() == 0  # queued again once, and only once
    assert await redis.xlen("message_queue:sms") == len(ids)


async def test_one_reconciler_owns_each_pass(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any
) -> None:
    """Two workers' reconcilers tick at the same moment after Redis lost everything:
    one of them rebuilds the queue, the other does nothing."""
    for i in range(5):
        await api.post("/api/v1/messages/send", json={**SMS, "to": f"+1555987{i:04d}"})
    await redis.flushdb()
    store, queue = MessageStore(pool), RedisQueue(redis)
    rivals = [Reconciler(store=store, queue=queue, owner=o, interval=5) for o in ("a", "b")]
    repaired = await asyncio.gather(*(r.tick() for r in rivals))
    assert sorted(repaired) == [0, 5]
    assert await redis.xlen("message_queue:sms") == 5
