"""`postline flow` (`make test-flow`): a message's walk, printed step by step.

Runs against a live Postline (by default the one `postline dev` of the data
directory started, found through its dev.env; else :8080) the way a person
following the README would: health, send one message of each
channel, watch each go from `pending` to `sent`, show its history.

Speaks HTTP through the standard library: the command ships in every
install, and the HTTP clients Postline's tests use are not part of one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from postline.cli.config import api_target, data_dir_option, option

EXAMPLES: list[dict[str, Any]] = [
    {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Your booking is paid"},
    {
        "from": "+15551234567",
        "to": "+15559876544",
        "type": "mms",
        "body": "Your ticket",
        "attachments": ["https://example.com/ticket.png"],
    },
    {
        "from": "+15551234567",
        "to": "whatsapp:+15559876545",
        "type": "whatsapp",
        "body": "Payment received",
    },
    {
        "from": "Bookings <bookings@example.com>",
        "to": "customer@example.org",
        "type": "email",
        "subject": "Payment received",
        "body": "Thank you!",
        "html": "<p>Thank you!</p>",
    },
]
REQUEST_TIMEOUT = 10.0


class FlowFailed(Exception):
    """A step did not hold; the message says which."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: its status and its body as text."""

    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """The few JSON calls the walk makes to one Postline."""

    def __init__(self, base_url: str, *, api_key: str | None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise FlowFailed(f"{base_url}: not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def get(self, path: str) -> Answer:
        return self._call("GET", path, None)

    def post(self, path: str, payload: dict[str, Any]) -> Answer:
        return self._call("POST", path, json.dumps(payload).encode())

    def _call(self, method: str, path: str, body: bytes | None) -> Answer:
        headers = dict(self.headers, **({"Content-Type": "application/json"} if body else {}))
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:  # noqa: S310
                return Answer(answer.status, answer.read().decode())
        except urllib.error.HTTPError as exc:  # a 4xx/5xx is an answer, not a failure to call
            with exc:
                return Answer(exc.code, exc.read().decode())


def run(base_url: str, *, api_key: str | None, timeout: float, echo: Callable[[str], None]) -> None:
    api = Api(base_url, api_key=api_key)
    echo(f"1. GET {api.base_url}/health")
    try:
        health = api.get("/health")
    except OSError as exc:  # refused, unreachable, timed out (URLError is an OSError)
        raise FlowFailed(
            f"Postline does not answer at {base_url}: is `make run` running? (A dev with "
            "another --data-dir is found with the same --data-dir or POSTLINE_DATA_DIR.)"
        ) from exc
    if health.status_code != 200:
        raise FlowFailed(f"health is {health.status_code}: {health.text}")
    echo(f"   ✓ {health.json()}")
    ids = []
    for payload in EXAMPLES:
        answer = api.post("/api/v1/messages/send", payload)
        if answer.status_code not in (201, 202):
            raise FlowFailed(f"send {payload['type']}: {answer.status_code} {answer.text}")
        body = answer.json()
        echo(
            f"2. POST /api/v1/messages/send ({payload['type']}) -> {answer.status_code} "
            f"status={body['status']} id={body['id']}"
        )
        ids.append((payload["type"], body["id"]))
    for channel, message_id in ids:
        message = _wait_sent(api, message_id, timeout)
        echo(
            f"3. {channel}: {message['status']} via {message['provider']} "
            f"({message['provider_message_id']})"
        )
        events = api.get(f"/api/v1/messages/{message_id}/events").json()
        trail = " -> ".join(e["status"] for e in events)
        echo(f"   ✓ history: {trail}")
    echo("✓ All steps passed!")


def _wait_sent(api: Api, message_id: str, timeout: float) -> dict[str, Any]:
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
@option(
    "--url",
    default=None,
    help="The API [default: the one `postline dev` of --data-dir runs, else "
    "http://127.0.0.1:8080].",
)
@option("--timeout", default=30.0, type=float, help="Seconds to wait for each message.")
@data_dir_option()
def flow(url: str | None, timeout: float, data_dir: Path) -> None:
    """Walk one message of each channel through a running Postline (make test-flow)."""
    base_url, api_key = api_target(data_dir=data_dir, url=url)
    try:
        run(base_url, api_key=api_key, timeout=timeout, echo=click.echo)
    except FlowFailed as exc:
        raise click.ClickException(str(exc)) from exc
