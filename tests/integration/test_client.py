"""`postline.client` against the real API, worker and simulator.

Every call goes over loopback HTTP to the API served by the harness; a
`Recorder` transport under the client notes what went over the wire, so a
test can see the status codes and headers the client hid behind its types.
The blocking `Client` runs in a thread: the API shares this event loop.
How the client retries is in test_client_retries.py.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from postline.client import (
    AsyncClient,
    BadSignature,
    Client,
    Conflict,
    Message,
    NotFound,
    StaleCallback,
    Unauthorized,
    ValidationError,
    verify_callback,
)
from postline.settings import Settings
from tests.support.faults import script
from tests.support.harness import running_api, running_worker, settings_for, wait_for
from tests.support.servers_http import serving_aiohttp

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


class Recorder(httpx.AsyncBaseTransport):
    """httpx's own transport, noting each request and the status it got."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.exchanges.append((request, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> Settings:
    return settings_for(database_url, redis_url, sim.base_url, callback_signing_secret=SECRET)


@pytest.fixture
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with running_api(settings) as base:
        yield base


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(base_url: str, recorder: Recorder) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url, transport=recorder) as client:
        yield client


async def wait_status(client: AsyncClient, message_id: str, want: str) -> Message:
    async def reached() -> Message | None:
        message = await client.get(message_id)
        return message if message.status == want else None

    found: Message = await wait_for(reached, timeout=15, what=f"{message_id} to be {want}")
    return found


async def test_async_send_reaches_sent_and_reads_back_typed(
    client: AsyncClient, settings: Settings
) -> None:
    accepted = await client.send(SMS)
    assert accepted.status == "pending" and accepted.from_ == SMS["from"]
    assert isinstance(accepted.created_at, datetime) and accepted.created_at.tzinfo is not None
    async with running_worker(settings):
        sent = await wait_status(client, accepted.id, "sent")
    assert sent.id == accepted.id and sent.provider == "twilio" and sent.provider_message_id
    assert sent.sent_at is not None and sent.sent_at >= accepted.created_at
    history = [event.status for event in await client.events(accepted.id)]
    assert history[0] == "pending" and history[-1] == "sent"


async def test_sync_send_reaches_sent(base_url: str, settings: Settings) -> None:
    with Client(base_url) as client:
        accepted = await asyncio.to_thread(client.send, SMS)
        assert accepted.status == "pending"
        async with running_worker(settings):

            async def sent() -> bool:
                message = await asyncio.to_thread(client.get, accepted.id)
                return message.status == "sent"

            await wait_for(sent, timeout=15, what="the message to be sent")
        events = await asyncio.to_thread(client.events, accepted.id)
    assert [e.status for e in events][-1] == "sent"


async def test_one_idempotency_key_gives_one_message(
    client: AsyncClient, recorder: Recorder
) -> None:
    first = await client.send(SMS, idempotency_key="order-1042")
    again = await client.send(SMS, idempotency_key="order-1042")
    assert again.id == first.id
    assert [status for _, status in recorder.exchanges] == [202, 200]
    with pytest.raises(Conflict) as caught:
        await client.send({**SMS, "body": "Other"}, idempotency_key="order-1042")
    assert caught.value.code == "idempotency_key_reused"


async def test_without_a_key_each_send_draws_its_own(
    client: AsyncClient, recorder: Recorder
) -> None:
    one, two = await client.send(SMS), await client.send(SMS)
    assert one.id != two.id
    keys = [request.headers["idempotency-key"] for request, _ in recorder.exchanges]
    assert len(set(keys)) == 2 and all(uuid.UUID(key).version == 4 for key in keys)


async def test_a_refused_message_raises_the_typed_error_naming_the_field(
    client: AsyncClient,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.send({**SMS, "to": "5559876543"})
    error = caught.value
    assert (error.status, error.code) == (422, "validation_error")
    assert ["to"] in [detail["loc"] for detail in error.details]


async def test_unknown_ids_raise_not_found(client: AsyncClient) -> None:
    missing = uuid.uuid4()
    for call in (client.get, client.events, client.cancel, client.retry):
        with pytest.raises(NotFound) as caught:
            await call(missing)
        assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_list_follows_the_cursor_across_pages(
    client: AsyncClient, recorder: Recorder, base_url: str
) -> None:
    ids = [(await client.send({**SMS, "body": f"n{i}"})).id for i in range(5)]
    await client.send({**SMS, "to": "+15559870000"})  # filtered out below
    recorder.exchanges.clear()
    listed = [m.id async for m in client.list(to=SMS["to"], limit=2)]
    assert listed == ids[::-1]  # newest first
    pages = [request for request, _ in recorder.exchanges]
    assert [request.url.params.get("limit") for request in pages] == ["2", "2", "2"]
    assert "cursor" not in pages[0].url.params and all("cursor" in p.url.params for p in pages[1:])
    with Client(base_url) as blocking:
        synced = await asyncio.to_thread(lambda: [m.id for m in blocking.list(limit=2)])
    assert len(synced) == 6


async def test_cancel_and_retry_conflicts_carry_their_codes(client: AsyncClient) -> None:
    scheduled = await client.send({**SMS, "send_at": datetime(2999, 1, 1, tzinfo=UTC)})
    assert scheduled.status == "scheduled" and scheduled.send_at is not None
    assert (await client.cancel(scheduled.id)).status == "cancelled"
    with pytest.raises(Conflict) as not_cancellable:
        await client.cancel(scheduled.id)
    assert not_cancellable.value.code == "not_cancellable"
    with pytest.raises(Conflict) as not_retryable:
        await client.retry(scheduled.id)
    assert not_retryable.value.code == "not_retryable"


async def test_retry_queues_a_failed_message_again(
    client: AsyncClient, settings: Settings, sim: Any
) -> None:
    refusal = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
    await script(sim.base_url, {SMS["to"]: [refusal]})
    message = await client.send(SMS)
    async with running_worker(settings):
        failed = await wait_status(client, message.id, "failed")
        assert failed.error is not None and failed.error.code == "21211"
        again = await client.retry(message.id)
        assert again.status == "pending"
        await wait_status(client, message.id, "sent")


async def test_batch_reports_each_item(client: AsyncClient) -> None:
    results = await client.send_batch([SMS, {**SMS, "type": "fax"}, {**SMS, "body": "Two"}])
    assert [(r.index, r.accepted) for r in results] == [(0, True), (1, False), (2, True)]
    refused = results[1].error
    assert refused is not None and refused.code == "validation_error"
    assert any(detail["loc"] == ["type"] for detail in refused.details)
    for accepted in (results[0], results[2]):
        assert accepted.id is not None
        assert (await client.get(accepted.id)).status == accepted.status == "pending"


async def test_a_missing_api_key_is_unauthorized(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any
) -> None:
    keyed = settings_for(database_url, redis_url, "http://127.0.0.1:9", api_keys="k-0123456789")
    async with running_api(keyed) as base:
        async with AsyncClient(base) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.send(SMS)
        async with AsyncClient(base, api_key="k-0123456789") as client:
            assert (await client.send(SMS)).status == "pending"


async def test_verify_callback_accepts_a_real_callback_and_refuses_forgeries(
    client: AsyncClient, settings: Settings
) -> None:
    calls: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving_aiohttp(app) as receiver:
        message = await client.send({**SMS, "callback_url": f"{receiver}/hook"})
        async with running_worker(settings):

            async def called() -> bool:
                return bool(calls)

            await wait_for(called, timeout=15, what="the callback")
    body, headers = calls[0]
    event = verify_callback(body, headers, SECRET)
    assert event["type"] == "message.sent"
    assert Message.from_json(event["data"]).id == message.id
    tampered = body.replace(b'"sent"', b'"failed"')
    assert tampered != body
    with pytest.raises(BadSignature):
        verify_callback(tampered, headers, SECRET)
    with pytest.raises(BadSignature):
        verify_callback(body, headers, "whsec_" + base64.b64encode(b"k" * 32).decode())
    with pytest.raises(StaleCallback):
        verify_callback(body, headers, SECRET, now=time.time() + 301)
