"""`postline flow` (`make test-flow`): a message's walk, printed step by step.

Runs against a live Postline (by default the one `make run` started) the
way a person following the README would: health, send one message of each
channel, watch each go from `pending` to `sent`, show its history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from postline.cli.config import option

if TYPE_CHECKING:
    import httpx

EXAMPLES: list[dict[str, Any]] = [
    {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Your booking is paid"},
    {"from": "+15551234567", "to": "+15559876544", "type": "mms", "body": "Your ticket",
     "attachments": ["https://example.com/ticket.png"]},
    {"from": "+15551234567", "to": "whatsapp:+15559876545", "type": "whatsapp",
     "body": "Payment received"},
    {"from": "Bookings <bookings@example.com>", "to": "customer@example.org", "type": "email",
     "subject": "Payment received", "body": "Thank you!", "html": "<p>Thank you!</p>"},
]  # fmt: skip


class FlowFailed(Exception):
    """A step did not hold; the message says which."""


def run(base_url: str, *, api_key: str | None, timeout: float, echo: Callable[[str], None]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as api:
        echo(f"1. GET {base_url}/health")
        try:
            health = api.get("/health")
        except httpx.HTTPError as exc:
            raise FlowFailed(
                f"Postline does not answer at {base_url}: is `make run` running?"
            ) from exc
        if health.status_code != 200:
            raise FlowFailed(f"health is {health.status_code}: {health.text}")
        echo(f"   ✓ {health.json()}")
        ids = []
        for payload in EXAMPLES:
            answer = api.post("/api/v1/messages/send", json=payload)
            if answer.status_code not in (201, 202):
                raise FlowFailed(f"send {payload['type']}: {answer.status_code} {answer.text}")
            body = answer.json()
            echo(f"2. POST /api/v1/messages/send ({payload['type']}) -> {answer.status_code} "
                 f"status={body['status']} id={body['id']}")  # fmt: skip
            ids.append((payload["type"], body["id"]))
        for channel, message_id in ids:
            message = _wait_sent(api, message_id, timeout)
            echo(f"3. {channel}: {message['status']} via {message['provider']} "
                 f"({message['provider_message_id']})")  # fmt: skip
            events = api.get(f"/api/v1/messages/{message_id}/events").json()
            trail = " -> ".join(e["status"] for e in events)
            echo(f"   ✓ history: {trail}")
    echo("✓ All steps passed!")


def _wait_sent(api: httpx.Client, message_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = api.get(f"/api/v1/messages/{message_id}").json()
        if message["status"] in ("sent", "delivered"):
            return message
        if message["status"] in ("failed", "undelivered", "cancelled"):
            raise FlowFailed(f"{message_id} ended {message['status']}: {message['error']}")
        if time.monotonic() > deadline:
            raise FlowFailed(
                f"{message_id} is still {message['status']} after {timeout:.0f}s: "
                "is a worker running (`make worker`)?"
            )
        time.sleep(0.1)


@click.command()
@option("--url", default="http://127.0.0.1:8080")
@option("--timeout", default=30.0, type=float, help="Seconds to wait for each message.")
def flow(url: str, timeout: float) -> None:
    """Walk one message of each channel through a running Postline (make test-flow)."""
    from postline.settings import Settings

    keys = Settings().api_key_list
    try:
        run(url, api_key=keys[0] if keys else None, timeout=timeout, echo=click.echo)
    except FlowFailed as exc:
        raise click.ClickException(str(exc)) from exc
