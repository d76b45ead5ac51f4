"""Calls of the HTTP API that many tests make: send one message, wait for a status."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.harness import wait_for


async def send(api: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    """Sends one message, which must be accepted (`202`); returns its id."""
    answer = await api.post("/api/v1/messages/send", json=payload)
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def wait_status(
    api: httpx.AsyncClient, message_id: str, want: str, *, timeout: float = 15
) -> None:
    """Waits until the message's status is `want`; fails after `timeout` seconds."""

    async def reached() -> bool:
        return bool((await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == want)

    await wait_for(reached, timeout=timeout, what=f"{message_id} to be {want}")
