"""API keys: bearer tokens on every /api/v1/messages* call; loopback-only without keys."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.harness import running_api, settings_for

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}
KEYS = "first-key-0123456789,second-key-9876543210"


@pytest.fixture
async def api(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(database_url, redis_url, "http://127.0.0.1:9", api_keys=KEYS)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


CALLS = [
    ("POST", "/api/v1/messages/send", SMS),
    ("POST", "/api/v1/messages/batch", {"messages": [SMS]}),
    ("GET", "/api/v1/messages", None),
    ("GET", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000", None),
    ("GET", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000/events", None),
    ("POST", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000/cancel", None),
    ("POST", "/api/v1/messages/2b1c5f5e-0000-4000-8000-000000000000/retry", None),
    ("GET", "/api/v1/suppressions", None),
    ("POST", "/api/v1/suppressions", {"channel": "sms", "recipient": "+15559876543"}),
    ("DELETE", "/api/v1/suppressions/sms/+15559876543", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key", "Basic Zmlyc3Qta2V5", "Bearer first-key-0123456789x", "Bearer"],
    ids=["none", "wrong", "basic", "prefix-match", "empty"],
)
async def test_every_messages_call_needs_a_valid_key(
    api: httpx.AsyncClient, pool: asyncpg.Pool, method: str, path: str, body: Any, header: Any
) -> None:
    headers = {"Authorization": header} if header else {}
    answer = await api.request(method, path, json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_each_configured_key_works(api: httpx.AsyncClient) -> None:
    for key in KEYS.split(","):
        answer = await api.post(
            "/api/v1/messages/send", json=SMS, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 202


async def test_health_needs_no_key(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health")).status_code == 200


def test_no_keys_means_loopback_only(database_url: str, redis_url: str) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "API_KEYS": ""}
    refused = subprocess.run(
        [sys.executable, "-m", "postline", "api", "--host", "0.0.0.0", "--port", "1"],
        env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API_KEYS" in refused.stderr
