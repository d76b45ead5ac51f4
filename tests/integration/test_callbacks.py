"""Client callbacks: Standard Webhooks signed, retried, never in delivery's way."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from postline.callbacks import targets
from tests.support.harness import (
    free_port,
    running_api,
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
    endless: bool = False  # answer 200 with a body that never ends
    elsewhere: list[bytes] = field(default_factory=list)  # calls to where 3xx answers point

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.StreamResponse:
        state.calls.append((dict(request.headers), await request.read()))
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.endless:
            return await endless(request)
        status = state.answers.pop(0) if state.answers else 200
        location = {"Location": "/elsewhere"} if 300 <= status < 400 else None
        return web.Response(status=status, headers=location)

    async def endless(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(status=200)
        await answer.prepare(request)
        deadline = asyncio.get_running_loop().time() + 15
        with contextlib.suppress(ConnectionError):
            while asyncio.get_running_loop().time() < deadline:
                await answer.write(b"x" * 16384)
        return answer

    async def elsewhere(request: web.Request) -> web.Response:
        state.elsewhere.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/elsewhere", elsewhere)
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


async def callback_row(pool: asyncpg.Pool) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT attempts, last_error, delivered_at FROM callbacks ORDER BY created_at LIMIT 1"
    )


@pytest.fixture
async def strict_api(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its default: callbacks only to public addresses."""
    strict = settings.model_copy(update={"callback_allow_private_networks": False})
    async with running_api(strict) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


REFUSED_URLS = [
    pytest.param("http://127.0.0.1:9/hook", "loopback", id="loopback"),
    pytest.param("http://localhost:9/hook", "loopback", id="localhost"),
    pytest.param("http://[::1]:9/hook", "loopback", id="loopback-v6"),
    pytest.param("http://10.1.2.3/hook", "private", id="private-10"),
    pytest.param("http://172.16.9.9/hook", "private", id="private-172"),
    pytest.param("https://192.168.0.10/hook", "private", id="private-192"),
    pytest.param("http://[fd12::1]/hook", "private", id="unique-local"),
    pytest.param("http://169.254.10.10/hook", "link-local", id="link-local"),
    pytest.param("http://[fe80::1]/hook", "link-local", id="link-local-v6"),
    pytest.param("http://100.64.0.1/hook", "CGNAT", id="cgnat"),
    pytest.param("http://0.0.0.0:9/hook", "unspecified", id="unspecified"),
    pytest.param("http://224.0.0.1/hook", "multicast", id="multicast"),
    pytest.param("http://240.0.0.1/hook", "reserved", id="reserved"),
    pytest.param("http://169.254.169.254/latest/meta-data/", "metadata", id="metadata"),
    pytest.param("http://[fd00:ec2::254]/latest/meta-data/", "metadata", id="metadata-v6"),
    pytest.param("http://[::ffff:169.254.169.254]/", "metadata", id="metadata-mapped"),
    pytest.param("http://2130706433/hook", "a.b.c.d", id="decimal-loopback"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED_URLS)
async def test_a_callback_url_on_a_special_address_is_422_and_stores_nothing(
    strict_api: httpx.AsyncClient, pool: asyncpg.Pool, url: str, says: str
) -> None:
    body = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "x",
            "callback_url": url}  # fmt: skip

    answer = await strict_api.post("/api/v1/messages/send", json=body)

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("callback_url: ") and says in error["message"]
    assert [d["loc"] for d in error["details"]] == [["callback_url"]]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_batch_items_with_special_callback_hosts_are_refused_by_index(
    strict_api: httpx.AsyncClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_dns(host: str) -> list[str]:  # no query leaves the machine
        return {
            "hooks.example.com": ["93.184.216.34"],
            "inside.example.com": ["10.0.0.8"],
            "localhost": ["127.0.0.1", "::1"],
        }[host]

    monkeypatch.setattr(targets, "system_resolve", fake_dns)
    base = {"from": "+15551234567", "type": "sms", "body": "x"}
    items = [
        {**base, "to": "+15559876540", "callback_url": "http://169.254.169.254/"},
        {**base, "to": "+15559876541"},
        {**base, "to": "+15559876542", "callback_url": "https://hooks.example.com/postline"},
        {**base, "to": "+15559876543", "callback_url": "https://inside.example.com/postline"},
        {**base, "to": "+15559876544", "callback_url": "http://localhost:9/hook"},
    ]

    answer = await strict_api.post("/api/v1/messages/batch", json={"messages": items})

    assert answer.status_code == 202, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [("id" in r, "error" in r) for r in results] == [
        (False, True), (True, False), (True, False), (False, True), (False, True),
    ]  # fmt: skip
    assert "metadata" in results[0]["error"]["message"]
    assert "resolves to 10.0.0.8" in results[3]["error"]["message"]
    assert results[4]["error"]["details"][0]["loc"] == ["callback_url"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


async def test_a_callback_host_that_does_not_resolve_is_422(
    strict_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_dns(host: str) -> list[str]:  # as the resolver says for an unknown name
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(targets, "system_resolve", no_dns)
    body = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "x",
            "callback_url": "https://no-such-host.example.com/hook"}  # fmt: skip

    answer = await strict_api.post("/api/v1/messages/send", json=body)

    assert answer.status_code == 422
    assert "does not resolve" in answer.json()["error"]["message"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_the_dispatcher_refuses_to_connect_to_a_special_address_accepted_earlier(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver, pool: asyncpg.Pool, host: str
) -> None:
    # Accepted while the setting was on (or while the name pointed elsewhere: DNS rebinding),
    # delivered by a worker with the default: the address connected to is what counts.
    url = f"http://{host}:{receiver.port}/hook"
    answer = await api.post("/api/v1/messages/send", json={**sms(receiver), "callback_url": url})
    assert answer.status_code == 202
    strict = settings.model_copy(update={"callback_allow_private_networks": False})
    async with running_worker(strict):

        async def tried() -> asyncpg.Record | None:
            row = await callback_row(pool)
            return row if row is not None and row["last_error"] else None

        row = await wait_for(tried, timeout=15, what="a refused callback attempt")
    assert receiver.calls == []
    assert "may not connect to" in row["last_error"] and "loopback" in row["last_error"]
    assert row["delivered_at"] is None


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    receiver.answers = [307, 307]
    await api.post("/api/v1/messages/send", json=sms(receiver))
    async with running_worker(settings):

        async def delivered() -> bool:
            row = await callback_row(pool)
            return row is not None and row["delivered_at"] is not None

        await wait_for(delivered, timeout=20, what="the callback to get a 2xx")
    assert len(receiver.calls) == 3  # 307, 307 (each retried), then 200
    assert receiver.elsewhere == []


async def test_an_endless_answer_is_read_no_further_than_64_kib(
    api: httpx.AsyncClient, settings: Any, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    receiver.endless = True
    await api.post("/api/v1/messages/send", json=sms(receiver))
    async with running_worker(settings):

        async def delivered() -> bool:
            row = await callback_row(pool)
            return row is not None and row["delivered_at"] is not None

        # Reading to the end would last until the 10 s answer timeout, then fail.
        await wait_for(delivered, timeout=8, what="the callback to count as delivered")
    row = await callback_row(pool)
    assert row is not None and row["attempts"] == 1 and row["last_error"] is None
