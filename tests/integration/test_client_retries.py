"""The client's retries, through a loopback server standing in front of the real API.

`Front` answers the first requests as its script says (a 503, a 429 with
Retry-After, a 400, or "lose": pass the request on, then never answer), and
passes every later one to the API. So each test sees what the client sent
on every try, and the database shows what the API stored in the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from postline.client import (
    AsyncClient,
    BadRequest,
    Client,
    Unavailable,
    Unreachable,
)
from postline.settings import Settings
from tests.support.harness import free_port, running_api, settings_for, wait_for
from tests.support.servers_http import serving_aiohttp

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}
LOSE = "lose"  # pass the request on to the API, then never answer
FAST = {"backoff": 0.01, "retries": 3}


@dataclass
class Front:
    upstream: httpx.AsyncClient
    script: list[tuple[int, dict[str, str]] | str] = field(default_factory=list)
    seen: list[str | None] = field(default_factory=list)  # each try's Idempotency-Key
    released: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Idempotency-Key"))
        body = await request.read()
        step = self.script.pop(0) if self.script else None
        if isinstance(step, tuple):
            status, headers = step
            error = {"code": f"scripted_{status}", "message": "scripted", "details": []}
            return web.json_response({"error": error}, status=status, headers=headers)
        forward = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = await self.upstream.request(
            request.method, request.path_qs, content=body, headers=forward
        )
        if step == LOSE:
            await self.released.wait()  # the client gives up first
        return web.Response(
            body=answer.content, status=answer.status_code, content_type="application/json"
        )


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> Settings:
    return settings_for(database_url, redis_url, sim.base_url)


@pytest.fixture
async def front(settings: Settings) -> AsyncIterator[Front]:
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as upstream:
        state = Front(upstream)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", state.handle)
        async with serving_aiohttp(app) as url:
            state.url = url
            try:
                yield state
            finally:
                state.released.set()


async def stored(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM messages")
    return count


async def test_a_send_refused_with_503_twice_is_retried_with_the_same_key(
    front: Front, pool: asyncpg.Pool
) -> None:
    front.script = [(503, {}), (503, {})]
    async with AsyncClient(front.url, **FAST) as client:
        message = await client.send(SMS)
        assert (await client.get(message.id)).status == "pending"
    assert len(front.seen) == 4  # three tries of the send, then the get
    keys = front.seen[:3]
    assert keys[0] is not None and keys.count(keys[0]) == 3
    assert await stored(pool) == 1


async def test_the_blocking_client_honours_retry_after(front: Front, pool: asyncpg.Pool) -> None:
    front.script = [(503, {}), (429, {"Retry-After": "1"})]
    with Client(front.url, **FAST) as client:
        started = time.monotonic()
        message = await asyncio.to_thread(client.send, SMS, "booking-7")
        waited = time.monotonic() - started
    assert message.status == "pending"
    assert front.seen == ["booking-7"] * 3
    assert waited >= 0.95
    assert await stored(pool) == 1


async def test_a_long_retry_after_is_capped(front: Front) -> None:
    front.script = [(429, {"Retry-After": "3600"})]
    async with AsyncClient(front.url, max_wait=0.05, **FAST) as client:
        assert (await client.send(SMS)).status == "pending"
    assert len(front.seen) == 2


async def test_a_send_whose_answer_was_lost_is_sent_again_and_stored_once(
    front: Front, pool: asyncpg.Pool
) -> None:
    front.script = [LOSE]
    async with AsyncClient(front.url, timeout=0.5, **FAST) as client:
        message = await client.send(SMS)
    assert len(front.seen) == 2 and front.seen[0] == front.seen[1]
    assert await stored(pool) == 1
    assert await pool.fetchval("SELECT id::text FROM messages") == message.id


async def test_a_batch_whose_answer_was_lost_is_not_sent_again(
    front: Front, pool: asyncpg.Pool
) -> None:
    """A batch has no Idempotency-Key: sending it again could store it twice."""
    front.script = [LOSE]
    async with AsyncClient(front.url, timeout=0.5, **FAST) as client:
        with pytest.raises(Unreachable) as caught:
            await client.send_batch([SMS])
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)

    async def stored_once() -> bool:  # the API may still be storing it when the client gives up
        return await stored(pool) == 1

    await wait_for(stored_once, timeout=10, what="the batch to be stored")
    assert len(front.seen) == 1


async def test_other_4xx_are_not_retried(front: Front) -> None:
    front.script = [(400, {})]
    async with AsyncClient(front.url, **FAST) as client:
        with pytest.raises(BadRequest) as caught:
            await client.send(SMS)
    assert (caught.value.status, caught.value.code) == (400, "scripted_400")
    assert len(front.seen) == 1


async def test_503_after_the_last_retry_raises_unavailable(
    front: Front, pool: asyncpg.Pool
) -> None:
    front.script = [(503, {})] * 3
    async with AsyncClient(front.url, backoff=0.01, retries=2) as client:
        with pytest.raises(Unavailable):
            await client.send(SMS)
    assert len(front.seen) == 3
    assert await stored(pool) == 0


async def test_no_server_at_all_is_unreachable_after_the_retries() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", backoff=0.01, retries=2) as client:
        with pytest.raises(Unreachable, match="3 tries") as caught:
            await client.get("b5d1c9e0-0000-4000-8000-000000000000")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
