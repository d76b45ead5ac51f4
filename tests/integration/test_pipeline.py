"""The core path: accept -> store -> queue -> worker -> provider (simulator)."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.harness import (
    running_api,
    running_worker,
    settings_for,
    wait_for,
)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}
PDF = base64.b64encode(b"%PDF-1.4 booking").decode()


async def sim_requests(sim: Any, **params: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        answer = await client.get("/_sim/requests", params=params)
        answer.raise_for_status()
        requests: list[dict[str, Any]] = answer.json()["requests"]
        return requests


async def status_of(api: httpx.AsyncClient, message_id: str) -> str:
    answer = await api.get(f"/api/v1/messages/{message_id}")
    assert answer.status_code == 200
    status: str = answer.json()["status"]
    return status


async def wait_status(
    api: httpx.AsyncClient, message_id: str, want: str, timeout: float = 10
) -> None:
    async def reached() -> bool:
        return await status_of(api, message_id) == want

    await wait_for(reached, timeout=timeout, what=f"{message_id} to be {want}")


CHANNEL_CASES = [
    pytest.param(SMS, id="sms"),
    pytest.param(
        {"from": "+15551234567", "to": "+15559876500", "type": "mms", "body": "Your ticket",
         "attachments": ["https://example.com/ticket.png", "https://example.com/map.png"]},
        id="mms",
    ),
    pytest.param(
        {"from": "whatsapp:+15551234567", "to": "+15559876501", "type": "whatsapp",
         "body": "Paid \N{WHITE HEAVY CHECK MARK}"},
        id="whatsapp",
    ),
    pytest.param(
        {"from": "Bookings <bookings@example.com>", "to": "ana@example.org", "type": "email",
         "subject": "Payment received", "body": "Thanks!", "html": "<p>Thanks!</p>",
         "attachments": [{"filename": "receipt.pdf", "content_type": "application/pdf",
                          "content": PDF}]},
        id="email",
    ),
]  # fmt: skip


@pytest.mark.parametrize("payload", CHANNEL_CASES)
async def test_each_channel_goes_from_pending_to_sent(
    api: httpx.AsyncClient, settings: Any, sim: Any, payload: dict[str, Any]
) -> None:
    answer = await api.post("/api/v1/messages/send", json=payload)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "pending"
    assert accepted["attempts"] == 0 and accepted["sent_at"] is None

    async with running_worker(settings):
        await wait_status(api, accepted["id"], "sent")

    message = (await api.get(f"/api/v1/messages/{accepted['id']}")).json()
    assert message["attempts"] == 1 and message["sent_at"] is not None
    received = await sim_requests(sim)
    assert len(received) == 1
    got = received[0]
    assert got["provider_message_id"] == message["provider_message_id"]
    if payload["type"] == "email":
        assert message["provider"] == "sendgrid"
        assert got["provider"] == "sendgrid"
        assert got["to"] == "ana@example.org"
        assert got["from"] == "bookings@example.com"
        assert got["subject"] == "Payment received"
        assert got["text"] == "Thanks!" and got["html"] == "<p>Thanks!</p>"
        assert got["attachments"][0]["filename"] == "receipt.pdf"
        assert got["attachments"][0]["content"] == PDF
        assert got["custom_args"]["postline_id"] == accepted["id"]
    else:
        assert message["provider"] == "twilio"
        assert got["provider"] == "twilio"
        prefix = "whatsapp:" if payload["type"] == "whatsapp" else ""
        assert got["to"] == prefix + payload["to"]
        assert got["from"] == prefix + payload["from"].removeprefix("whatsapp:")
        assert got["body"] == payload["body"]
        assert got["media_urls"] == payload.get("attachments", [])
        assert got["provider_message_id"].startswith("MM" if payload["type"] == "mms" else "SM")


async def test_events_record_each_transition(api: httpx.AsyncClient, settings: Any) -> None:
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    async with running_worker(settings):
        await wait_status(api, message_id, "sent")
    events = (await api.get(f"/api/v1/messages/{message_id}/events")).json()
    assert [(e["status"], e["attempt"]) for e in events] == [
        ("pending", 0),
        ("sending", 1),
        ("sent", 1),
    ]
    assert all(e["at"].endswith("Z") for e in events)


async def test_message_waits_pending_until_a_worker_starts(
    api: httpx.AsyncClient, settings: Any, sim: Any, redis: Any
) -> None:
    message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
    assert await redis.xlen("message_queue:sms") == 1
    # No worker: nothing may move it, and the provider must not hear of it.
    assert await status_of(api, message_id) == "pending"
    assert await sim_requests(sim) == []

    async with running_worker(settings):
        await wait_status(api, message_id, "sent")
    assert len(await sim_requests(sim)) == 1

    async def drained() -> bool:
        return await redis.xlen("message_queue:sms") == 0

    await wait_for(drained, timeout=5, what="the stream to drain")


async def test_sync_mode_answers_with_the_outcome(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, sync_message_processing=True)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=SMS)
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "sent"
        assert answer.json()["provider_message_id"].startswith("SM")

        async with httpx.AsyncClient(base_url=sim.base_url) as control:
            script = {
                "to": "+15550000001",
                "responses": [
                    {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
                ],
            }
            (await control.post("/_sim/scripts", json=script)).raise_for_status()
        bad = await api.post("/api/v1/messages/send", json={**SMS, "to": "+15550000001"})
        assert bad.status_code == 201
        assert bad.json()["status"] == "failed"
        assert bad.json()["error"] == {"code": "21211", "message": "Invalid 'To' Phone Number"}
        assert await redis.xlen("message_queue:dead") == 1


async def test_database_down_means_503_and_nothing_accepted(
    redis_url: str, sim: Any, redis: Any
) -> None:
    settings = settings_for("postgresql://postgres@127.0.0.1:9/none", redis_url, sim.base_url)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=SMS)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "database_unavailable"
        health = await api.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "database": "down", "redis": "ok"}
    assert await redis.xlen("message_queue:sms") == 0


async def test_redis_down_still_stores_and_answers_202(
    database_url: str, sim: Any, pool: asyncpg.Pool
) -> None:
    settings = settings_for(database_url, "redis://127.0.0.1:9/0", sim.base_url)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=SMS)
        assert answer.status_code == 202
        assert (
            await pool.fetchval(
                "SELECT status FROM messages WHERE id = $1::uuid", answer.json()["id"]
            )
            == "pending"
        )
        health = await api.get("/health")
        assert health.json() == {"status": "degraded", "database": "ok", "redis": "down"}
