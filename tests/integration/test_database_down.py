"""With PostgreSQL unreachable every messages route answers 503, never 500.

Two ways down: an API started while nothing listens at DATABASE_URL, and
one whose PostgreSQL goes away under it (a TCP proxy in front of the real
server is cut: pooled connections are reset, new ones refused) and comes
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.harness import free_port, running_api, settings_for

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


def routes(message_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/api/v1/messages/{message_id}", None),
        ("GET", f"/api/v1/messages/{message_id}/events", None),
        ("GET", "/api/v1/messages", None),
        ("GET", "/api/v1/messages?status=failed&limit=5", None),
        ("POST", f"/api/v1/messages/{message_id}/cancel", None),
        ("POST", f"/api/v1/messages/{message_id}/retry", None),
        ("POST", "/api/v1/messages/send", SMS),
        ("POST", "/api/v1/messages/batch", {"messages": [SMS]}),
    ]


async def assert_all_unavailable(api: httpx.AsyncClient, message_id: str) -> None:
    for method, path, body in routes(message_id):
        answer = await api.request(method, path, json=body)
        assert answer.status_code == 503, f"{method} {path}: {answer.status_code} {answer.text}"
        error = answer.json()["error"]
        assert error["code"] == "database_unavailable", (method, path)
        assert error["message"]


async def test_nothing_listening_at_the_database_url_is_503_everywhere(
    redis_url: str, redis: Any
) -> None:
    nowhere = f"postgresql://postline@127.0.0.1:{free_port()}/postline"
    settings = settings_for(nowhere, redis_url, "http://127.0.0.1:9")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        await assert_all_unavailable(api, str(uuid.uuid4()))


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (connections reset) and restored."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._links:
            writer.transport.abort()  # a reset, as when the server dies
        self._links.clear()
        await self._server.wait_closed()
        for task in self._pipes:
            task.cancel()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._links |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.fixture
async def proxy(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[CuttableProxy]:
    url = httpx.URL(database_url.replace("postgresql://", "http://", 1))
    running = CuttableProxy(url.host, url.port or 5432)
    await running.start()
    yield running
    await running.cut()


async def test_a_database_that_goes_away_is_503_everywhere_then_back_to_normal(
    database_url: str, redis_url: str, redis: Any, proxy: CuttableProxy
) -> None:
    host_port = database_url.split("@", 1)[1].split("/", 1)[0]
    via_proxy = database_url.replace(host_port, f"127.0.0.1:{proxy.port}", 1)
    settings = settings_for(via_proxy, redis_url, "http://127.0.0.1:9")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        sent = await api.post("/api/v1/messages/send", json=SMS)
        assert sent.status_code == 202
        message_id = sent.json()["id"]
        assert (await api.get(f"/api/v1/messages/{message_id}")).status_code == 200
        await proxy.cut()
        await assert_all_unavailable(api, message_id)
        await proxy.start()
        again = await api.get(f"/api/v1/messages/{message_id}")
        assert again.status_code == 200, again.text
        assert (await api.post(f"/api/v1/messages/{message_id}/cancel")).status_code == 200
