"""Bad input: a clear 4xx in the error envelope, and nothing stored or queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.harness import running_api, settings_for

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


@pytest.fixture
async def api(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(database_url, redis_url, "http://127.0.0.1:9")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


# One row per way a refusal is made; the rules themselves, channel by channel,
# are unit cases in tests/unit/test_check_send.py.
BAD = [
    pytest.param({**SMS, "to": "5559876543"}, "to", id="channel-rule"),
    pytest.param({"from": "a@example.com", "to": "b@example.com", "type": "email", "subject": "s",
                  "body": "x", "attachments": [{"filename": "a", "content_type": "text/plain",
                                                "content": "not base64!"}]},
                 "attachments.0.content", id="channel-rule-nested-field"),
    pytest.param({**SMS, "type": "fax"}, "type", id="unknown-channel"),
    pytest.param({**SMS, "colour": "blue"}, "colour", id="unknown-field"),
    pytest.param({**SMS, "callback_url": "https://example.com/hook"}, "callback_url",
                 id="callback-without-secret"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "field"), BAD)
async def test_bad_send_is_422_and_stores_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any, payload: dict[str, Any], field: str
) -> None:
    answer = await api.post("/api/v1/messages/send", json=payload)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    assert any(".".join(map(str, d["loc"])) == field for d in error["details"]), error
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await redis.xlen("message_queue:sms") == 0


async def test_malformed_json_is_422(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/api/v1/messages/send", content=b'{"from": ', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


async def test_wrong_content_type_is_415(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/messages/send", content=b"from=x", headers={
        "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"


async def test_oversize_request_is_413(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/messages/send", json={**SMS, "body": "x" * 2_100_000})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


async def test_unknown_message_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000", "/api/v1/messages/nope"):
        answer = await api.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000", "GET"),
        ("GET", "/api/v1/messages/send", "POST"),
        ("GET", "/api/v1/messages/batch", "POST"),
        ("PUT", "/api/v1/messages/send", "POST"),
        ("GET", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000/cancel", "POST"),
        ("POST", "/api/v1/messages", "GET"),
    ],
)
async def test_wrong_method_on_a_known_path_is_405_in_the_envelope(
    api: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    answer = await api.request(method, path)
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers["allow"] == allowed


async def test_odd_but_legitimate_text_is_stored_byte_for_byte(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    body = "Ça marche 🎉 — \u05e9\u05dc\u05d5\u05dd \"quoted\" 'single' \\ back\nline\ttab"
    answer = await api.post("/api/v1/messages/send", json={**SMS, "body": body})
    assert answer.status_code == 202
    assert answer.json()["body"] == body
    stored = await pool.fetchval(
        "SELECT body FROM messages WHERE id = $1::uuid", answer.json()["id"]
    )
    assert stored == body
