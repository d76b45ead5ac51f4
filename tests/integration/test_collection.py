"""Batch send and the message list with keyset paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.harness import running_api, running_worker, settings_for, wait_for

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


@pytest.fixture
def settings(database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any) -> Any:
    return settings_for(database_url, redis_url, "http://127.0.0.1:9")


@pytest.fixture
async def api(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


async def test_batch_accepts_valid_items_and_reports_invalid_by_index(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any
) -> None:
    items = [
        {**SMS, "to": "+15550000001"},
        {**SMS, "to": "not-a-number"},
        {"from": "a@example.com", "to": "b@example.com", "type": "email", "subject": "s",
         "body": "x"},
        {**SMS, "type": "fax"},
    ]  # fmt: skip
    answer = await api.post("/api/v1/messages/batch", json={"messages": items})
    assert answer.status_code == 202, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["status"] == "pending" and results[2]["status"] == "pending"
    assert results[1]["error"]["code"] == "validation_error"
    assert results[1]["error"]["details"][0]["loc"] == ["to"]
    assert "error" in results[3] and "id" not in results[3]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2
    assert await redis.xlen("message_queue:sms") == 1
    assert await redis.xlen("message_queue:email") == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": "x"},
        {"messages": [SMS] * 1001},
        {"messages": [SMS], "x": 1},
    ],
    ids=["empty", "no-items", "not-a-list", "too-many", "unknown-key"],
)
async def test_bad_batch_is_422(api: httpx.AsyncClient, pool: asyncpg.Pool, body: Any) -> None:
    answer = await api.post("/api/v1/messages/batch", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_batch_messages_are_delivered(api: httpx.AsyncClient, settings: Any) -> None:
    from postline.simulator.app import running_simulator
    from postline.simulator.config import SimulatorConfig
    from tests.support.harness import SIM_KEY, SIM_SID, SIM_TOKEN

    config = SimulatorConfig(
        twilio_account_sid=SIM_SID, twilio_auth_token=SIM_TOKEN, sendgrid_api_key=SIM_KEY
    )
    items = [{**SMS, "to": f"+1555000{i:04d}"} for i in range(100)]
    answer = await api.post("/api/v1/messages/batch", json={"messages": items})
    ids = [r["id"] for r in answer.json()["results"]]
    async with running_simulator(config) as sim:
        worker_settings = settings.model_copy(
            update={"twilio_base_url": sim.base_url, "sendgrid_base_url": sim.base_url}
        )
        async with running_worker(worker_settings):

            async def all_sent() -> bool:
                params = {"status": "sent", "limit": 500}
                page = (await api.get("/api/v1/messages", params=params)).json()
                return len(page["items"]) == len(ids)

            await wait_for(all_sent, timeout=20, what="the batch to be sent")


async def test_list_filters_and_pages_newest_first(api: httpx.AsyncClient) -> None:
    sent = []
    for i in range(7):
        kind = {"type": "whatsapp"} if i % 2 else {}
        answer = await api.post("/api/v1/messages/send", json={**SMS, "body": f"n{i}", **kind})
        sent.append(answer.json()["id"])
    await api.post("/api/v1/messages/send", json={**SMS, "to": "+15550009999"})

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"to": SMS["to"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/messages", params=params)).json()
        seen += [m["id"] for m in page["items"]]
        # a message arriving between pages must not shift the pages
        await api.post("/api/v1/messages/send", json={**SMS, "body": "late"})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))

    whatsapp = (await api.get("/api/v1/messages", params={"type": "whatsapp"})).json()["items"]
    assert [m["id"] for m in whatsapp] == [sent[5], sent[3], sent[1]]
    by_key = await api.get("/api/v1/messages", params={"ordering_key": "+15550009999"})
    assert len(by_key.json()["items"]) == 1
    pending = await api.get("/api/v1/messages", params={"status": "pending", "limit": 500})
    assert len(pending.json()["items"]) == 8 + 3


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"type": "fax"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "garbage!"},
        {"to": "+1555\x00"},
        {"to": "15559876543"},
        {"to": "not an address"},
        {"to": "@example.com"},
        {"ordering_key": "key\x00"},
    ],
)
async def test_bad_list_parameters_are_422(api: httpx.AsyncClient, params: Any) -> None:
    answer = await api.get("/api/v1/messages", params=params)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


async def test_the_to_filter_finds_an_email_recipient_in_any_case_and_form(
    api: httpx.AsyncClient,
) -> None:
    email = {"from": "a@example.com", "type": "email", "subject": "s", "body": "b"}
    ids = []
    for to in ("Bob@Example.com", "Bob Smith <bob@EXAMPLE.com>", '"Smith, Bob" <BOB@example.com>'):
        answer = await api.post("/api/v1/messages/send", json={**email, "to": to})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    other = await api.post("/api/v1/messages/send", json={**email, "to": "bobby@example.com"})
    assert other.status_code == 202

    for asked in ("bob@example.com", "BOB@EXAMPLE.COM", "Robert <Bob@example.com>"):
        page = (await api.get("/api/v1/messages", params={"to": asked})).json()
        assert [m["id"] for m in page["items"]] == list(reversed(ids)), asked
        # the stored address is shown as it was sent
        assert page["items"][-1]["to"] == "Bob@Example.com"


async def test_a_plus_left_unencoded_in_the_to_filter_is_422_saying_so(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/api/v1/messages/send", json=SMS)
    raw = f"/api/v1/messages?to={SMS['to']}"  # the '+' reaches the server as a space
    answer = await api.get(raw)
    assert answer.status_code == 422
    assert "%2B" in answer.json()["error"]["message"]
    encoded = await api.get("/api/v1/messages", params={"to": SMS["to"]})
    assert len(encoded.json()["items"]) == 1
    with_prefix = await api.get("/api/v1/messages", params={"to": f"whatsapp:{SMS['to']}"})
    assert with_prefix.json()["items"] == encoded.json()["items"]
