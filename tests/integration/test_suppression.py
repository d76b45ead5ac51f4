"""Suppression: a suppressed recipient never reaches a provider, by any path.

Every test checks the provider's side from the simulator's request log, not
from Postline's own records: "failed with `suppressed`" is half the claim,
"no provider call" the other half.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from postline.settings import Settings
from postline.simulator import RunningSimulator
from tests.support.harness import message_reaches as ends
from tests.support.harness import (
    receipt_settings,
    receipting_simulator,
    running_api,
    running_worker,
    settings_for,
    wait_for,
)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Paid"}
EMAIL = {
    "from": "Bookings <bookings@example.com>",
    "to": "Ana <Ana@Example.org>",
    "type": "email",
    "subject": "Payment received",
    "body": "Thanks!",
}
SENDGRID_PATH = "/api/v1/webhooks/sendgrid/events"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with receipting_simulator() as running:
        yield running


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> Settings:
    return receipt_settings(database_url, redis_url, sim)


@pytest.fixture
async def api(settings: Settings, sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        sim.config.sendgrid_event_webhook_url = base + SENDGRID_PATH
        yield client


async def provider_calls(sim: RunningSimulator, to: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        answer = await control.get("/_sim/requests", params={"to": to})
        calls: list[dict[str, Any]] = answer.json()["requests"]
        return calls


async def script(sim: RunningSimulator, to: str, responses: list[Any]) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        answer = await control.post("/_sim/scripts", json={"to": to, "responses": responses})
        answer.raise_for_status()


async def send(api: httpx.AsyncClient, body: dict[str, Any], path: str = "send") -> str:
    answer = await api.post(f"/api/v1/messages/{path}", json=body)
    assert answer.status_code in (201, 202), answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def suppress(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await api.post("/api/v1/suppressions", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def assert_suppressed(message: dict[str, Any]) -> None:
    assert message["status"] == "failed"
    assert message["error"]["code"] == "suppressed"


async def test_a_suppressed_recipient_fails_on_every_queued_path_without_a_provider_call(
    api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings
) -> None:
    await suppress(api, channel="sms", recipient=SMS["to"])
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    single = await send(api, SMS)
    mms = await send(api, {**SMS, "type": "mms", "attachments": ["https://example.com/a.png"]})
    scheduled = await send(api, {**SMS, "send_at": soon})
    batch = await api.post("/api/v1/messages/batch", json={"messages": [SMS, SMS]})
    batched = [r["id"] for r in batch.json()["results"]]
    async with running_worker(settings):
        for message_id in (single, mms, scheduled, *batched):
            assert_suppressed(await ends(api, message_id, "failed", "sent"))
        # A manual retry meets the suppression again.
        assert (await api.post(f"/api/v1/messages/{single}/retry")).status_code == 202
        retried = await ends(api, single, "failed", "sent")
        assert_suppressed(retried)
        assert retried["attempts"] == 2
    assert await provider_calls(sim, SMS["to"]) == []


async def test_sync_mode_meets_the_suppression_too(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, sync_message_processing=True)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        await suppress(api, channel="whatsapp", recipient=f"whatsapp:{SMS['to']}")
        answer = await api.post("/api/v1/messages/send", json={**SMS, "type": "whatsapp"})
        assert answer.status_code == 201
        assert_suppressed(answer.json())
        # SMS to the same number is another channel: not suppressed.
        other = await api.post("/api/v1/messages/send", json=SMS)
        assert other.json()["status"] == "sent"
    assert len(await provider_calls(sim, SMS["to"])) == 1
    assert await provider_calls(sim, f"whatsapp:{SMS['to']}") == []


async def test_lifting_a_suppression_lets_the_recipient_be_sent_to_again(
    api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings
) -> None:
    stored = await suppress(api, channel="email", recipient="ANA@example.org")
    assert stored["recipient"] == "ana@example.org" and stored["sender"] is None
    listed = (await api.get("/api/v1/suppressions", params={"recipient": "Ana@Example.org"})).json()
    assert [s["recipient"] for s in listed["items"]] == ["ana@example.org"]
    first = await send(api, EMAIL)
    async with running_worker(settings):
        assert_suppressed(await ends(api, first, "failed", "sent"))
        lifted = await api.delete("/api/v1/suppressions/email/Ana@Example.org")
        assert lifted.status_code == 204
        again = await api.delete("/api/v1/suppressions/email/Ana@Example.org")
        assert again.status_code == 404
        second = await send(api, EMAIL)
        assert (await ends(api, second, "failed", "sent", "delivered"))["status"] != "failed"
    assert len(await provider_calls(sim, "ana@example.org")) == 1


async def test_a_suppression_for_one_sender_spares_the_others_and_expiry_lifts_it(
    api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings, pool: asyncpg.Pool
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await suppress(api, channel="sms", recipient=SMS["to"], sender=SMS["from"], expires_at=later)
    blocked = await send(api, SMS)
    other_sender = await send(api, {**SMS, "from": "+15551110000"})
    async with running_worker(settings):
        assert_suppressed(await ends(api, blocked, "failed", "sent"))
        assert (await ends(api, other_sender, "failed", "sent", "delivered"))["status"] != "failed"
        # Once it has expired it no longer applies (and is no longer listed).
        await pool.execute("UPDATE suppressions SET expires_at = now() - interval '1 second'")
        assert (await api.get("/api/v1/suppressions")).json()["items"] == []
        after = await send(api, SMS)
        assert (await ends(api, after, "failed", "sent", "delivered"))["status"] != "failed"
    senders = [c["from"] for c in await provider_calls(sim, SMS["to"])]
    assert sorted(senders) == ["+15551110000", SMS["from"]]


async def test_a_sendgrid_bounce_suppresses_the_address_for_later_sends(
    api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings
) -> None:
    await script(sim, "ana@example.org", [{"status": 202, "receipt": "undelivered"}])
    worker_settings = settings.model_copy(update={"public_base_url": str(api.base_url).rstrip("/")})
    async with running_worker(worker_settings):
        bounced = await send(api, EMAIL)
        assert (await ends(api, bounced, "undelivered"))["status"] == "undelivered"

        async def listed() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = (await api.get("/api/v1/suppressions")).json()["items"]
            return items

        [entry] = await wait_for(listed, timeout=5, what="the bounce's suppression")
        assert (entry["channel"], entry["recipient"]) == ("email", "ana@example.org")
        assert (entry["reason"], entry["source"]) == ("bounce", "sendgrid")
        later = await send(api, {**EMAIL, "to": "ana@EXAMPLE.org"})
        assert_suppressed(await ends(api, later, "failed", "sent", "delivered"))
    assert len(await provider_calls(sim, "ana@example.org")) == 1


async def test_twilio_21610_suppresses_that_sender_and_recipient(
    api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings
) -> None:
    unsubscribed = {"status": 400, "code": 21610, "message": "Attempt to send to unsubscribed"}
    await script(sim, SMS["to"], [unsubscribed])
    async with running_worker(settings):
        first = await send(api, SMS)
        message = await ends(api, first, "failed")
        assert message["error"]["code"] == "21610"
        [entry] = (await api.get("/api/v1/suppressions")).json()["items"]
        assert (entry["recipient"], entry["sender"]) == (SMS["to"], SMS["from"])
        assert (entry["reason"], entry["source"]) == ("opt_out", "twilio")
        second = await send(api, SMS)
        assert_suppressed(await ends(api, second, "failed", "sent"))
    assert len(await provider_calls(sim, SMS["to"])) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "fax", "recipient": "+15559876543"},
        {"channel": "sms", "recipient": "15559876543"},
        {"channel": "email", "recipient": "not an address"},
        {"channel": "email", "recipient": "a@example.com", "reason": "whim"},
        {"channel": "email", "recipient": "a@example.com", "expires_at": "2001-01-01T00:00:00Z"},
        {"channel": "email", "recipient": "a\u0000@example.com"},
        {"channel": "email", "recipient": "a@example.com", "extra": 1},
        {"channel": "email"},
    ],
)
async def test_a_bad_suppression_is_422_and_stores_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, Any]
) -> None:
    answer = await api.post("/api/v1/suppressions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "validation_error"
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_lone_surrogate_in_a_suppression_is_422(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    raw = b'{"channel": "email", "recipient": "\\ud800@example.com"}'
    answer = await api.post(
        "/api/v1/suppressions", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_stats_status_and_metrics_count_the_active_suppressions(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await suppress(api, channel="sms", recipient=SMS["to"])
    await suppress(api, channel="email", recipient="ana@example.org", reason="bounce")
    await suppress(api, channel="email", recipient="bo@example.org", reason="bounce")
    lapsed = await suppress(api, channel="email", recipient="cy@example.org", reason="bounce")
    await pool.execute(
        "UPDATE suppressions SET expires_at = now() - interval '1 second' WHERE recipient = $1",
        lapsed["recipient"],
    )
    stats = (await api.get("/api/v1/stats")).json()
    assert stats["suppressions"] == {
        "total": 3,
        "by_channel": {"email": 2, "sms": 1},
        "by_reason": {"bounce": 2, "manual": 1},
    }
    scraped = (await api.get("/metrics")).text
    assert 'postline_suppressions{channel="email",reason="bounce"} 2.0' in scraped
    assert 'postline_suppressions{channel="sms",reason="manual"} 1.0' in scraped
