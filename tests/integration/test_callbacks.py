"""Client callbacks: Standard Webhooks signed, retried, never in delivery's way."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.support.harness import (
    free_port,
    running_worker,
    settings_for,
    wait_for,
)

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Receiver:
    url: str
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # status per call; 200 when exhausted
    delay: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.Response:
        state.calls.append((dict(request.headers), await request.read()))
        if state.delay:
            await asyncio.sleep(state.delay)
        status = state.answers.pop(0) if state.answers else 200
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any) -> Any:
    return settings_for(
        database_url, redis_url, sim.base_url,
        callback_signing_secret=SECRET, callback_retry_base_seconds=0.2,
    )  # fmt: skip


def sms(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Paid",
            "callback_url": receiver.url, **extra}  # fmt: skip


async def test_sent_callback_verifies_with_a_standard_webhooks_library(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver
) -> None:
    message_id = (await api.post("/api/v1/messages/send", json=sms(receiver))).json()["id"]
    async with running_worker(settings):

        async def called() -> bool:
            return len(receiver.calls) >= 1

        await wait_for(called, timeout=15, what="the callback")
    headers, body = receiver.calls[0]
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "message.sent"
    assert payload["data"]["id"] == message_id
    assert payload["data"]["provider_message_id"]
    assert payload["timestamp"].endswith("Z")
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body + b" ", headers)


async def test_failed_callbacks_are_retried_with_the_same_id_and_body(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    receiver.answers = [500, 503]
    await api.post("/api/v1/messages/send", json=sms(receiver))
    async with running_worker(settings):

        async def delivered() -> bool:
            return bool(
                await pool.fetchval("SELECT count(*) FROM callbacks WHERE delivered_at IS NOT NULL")
            )

        await wait_for(delivered, timeout=20, what="the callback to get a 2xx")
    assert len(receiver.calls) == 3
    ids = {headers["webhook-id"] for headers, _ in receiver.calls}
    bodies = {body for _, body in receiver.calls}
    assert len(ids) == 1 and len(bodies) == 1
    for headers, body in receiver.calls:
        Webhook(SECRET).verify(body, headers)


async def test_a_slow_callback_endpoint_never_delays_delivery(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver
) -> None:
    receiver.delay = 8.0
    await api.post("/api/v1/messages/send", json=sms(receiver))
    async with running_worker(settings):

        async def hanging() -> bool:
            return len(receiver.calls) >= 1

        await wait_for(hanging, timeout=10, what="the first callback to be under way")
        # The first callback is hanging for 8 s; the next message must not wait for it.
        later = await api.post("/api/v1/messages/send", json=sms(receiver, to="+15559876544"))

        async def sent() -> bool:
            message = (await api.get(f"/api/v1/messages/{later.json()['id']}")).json()
            return bool(message["status"] == "sent")

        await wait_for(sent, timeout=3, what="the second message to be sent")
        receiver.delay = 0


async def test_cancel_triggers_a_cancelled_callback(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver
) -> None:
    body = sms(receiver, send_at="2999-01-01T00:00:00Z")
    message_id = (await api.post("/api/v1/messages/send", json=body)).json()["id"]
    assert (await api.post(f"/api/v1/messages/{message_id}/cancel")).status_code == 200
    async with running_worker(settings):

        async def called() -> bool:
            return len(receiver.calls) >= 1

        await wait_for(called, timeout=15, what="the callback")
    payload = Webhook(SECRET).verify(receiver.calls[0][1], receiver.calls[0][0])
    assert payload["type"] == "message.cancelled"
    assert payload["data"]["status"] == "cancelled"
