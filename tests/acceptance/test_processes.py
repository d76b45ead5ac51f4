"""The real commands as subprocesses: simulator, API and worker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.harness import free_port
from tests.support.processes import postline, running, stop, wait_until

PDF = base64.b64encode(b"%PDF-1.4").decode()
MESSAGES = [
    {"from": "+15551230001", "to": "+15559870001", "type": "sms", "body": "Booking paid"},
    {"from": "+15551230001", "to": "+15559870002", "type": "mms", "body": "Ticket",
     "attachments": ["https://example.com/t.png"]},
    {"from": "+15551230001", "to": "whatsapp:+15559870003", "type": "whatsapp", "body": "Paid"},
    {"from": "Shop <shop@example.com>", "to": "Ana <ana@example.org>", "type": "email",
     "subject": "Receipt", "body": "Thanks", "html": "<b>Thanks</b>",
     "attachments": [{"filename": "r.pdf", "content_type": "application/pdf", "content": PDF}]},
]  # fmt: skip


def test_one_message_of_each_channel_reaches_the_provider(
    env: dict[str, str], tmp_path: Path
) -> None:
    sim_port, api_port = free_port(), free_port()
    sim_url, api_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
    env = {**env, "TWILIO_BASE_URL": sim_url, "SENDGRID_BASE_URL": sim_url}
    log = tmp_path / "processes.log"
    with (
        running(["simulator", "--port", str(sim_port)], env, log, f"{sim_url}/_sim/health"),
        running(["api", "--port", str(api_port)], env, log, f"{api_url}/health"),
        httpx.Client(base_url=api_url) as api,
        httpx.Client(base_url=sim_url) as sim,
    ):
        ids = []
        for payload in MESSAGES:
            answer = api.post("/api/v1/messages/send", json=payload)
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "pending"
            ids.append(answer.json()["id"])
        assert sim.get("/_sim/requests").json()["requests"] == []

        with running(["worker", "--concurrency", "8"], env, log):
            for message_id in ids:
                wait_until(
                    lambda i=message_id: (
                        api.get(f"/api/v1/messages/{i}").json()["status"] == "sent"
                    ),
                    timeout=20,
                    what=f"{message_id} to be sent",
                )
        received = {r["to"]: r for r in sim.get("/_sim/requests").json()["requests"]}
        assert len(received) == 4
        sms, mms = received["+15559870001"], received["+15559870002"]
        assert (sms["provider"], sms["from"], sms["body"], sms["media_urls"]) == (
            "twilio",
            "+15551230001",
            "Booking paid",
            [],
        )
        assert (mms["body"], mms["media_urls"]) == ("Ticket", ["https://example.com/t.png"])
        wa = received["whatsapp:+15559870003"]
        assert (wa["from"], wa["body"]) == ("whatsapp:+15551230001", "Paid")
        mail = received["ana@example.org"]
        assert mail["provider"] == "sendgrid"
        assert (mail["from"], mail["subject"], mail["text"], mail["html"]) == (
            "shop@example.com",
            "Receipt",
            "Thanks",
            "<b>Thanks</b>",
        )
        assert mail["attachments"][0]["content"] == PDF
        for message_id in ids:
            message = api.get(f"/api/v1/messages/{message_id}").json()
            assert message["provider_message_id"]
            assert message["attempts"] == 1


def test_worker_finishes_sends_in_flight_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    sim_port, api_port = free_port(), free_port()
    sim_url, api_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
    env = {**env, "TWILIO_BASE_URL": sim_url, "SENDGRID_BASE_URL": sim_url}
    log = tmp_path / "processes.log"
    sim_args = ["simulator", "--port", str(sim_port), "--latency-ms", "1500"]
    with (
        running(sim_args, env, log, f"{sim_url}/_sim/health"),
        running(["api", "--port", str(api_port)], env, log, f"{api_url}/health"),
        httpx.Client(base_url=api_url) as api,
    ):
        ids = [
            api.post(
                "/api/v1/messages/send", json={**MESSAGES[0], "to": f"+1555987{i:04d}"}
            ).json()["id"]
            for i in range(20)
        ]
        worker = postline(["worker", "--concurrency", "50"], env, log)

        def sending() -> bool:
            statuses = [api.get(f"/api/v1/messages/{i}").json()["status"] for i in ids]
            return statuses.count("sending") == len(ids)

        wait_until(sending, timeout=15, what="all 20 to be in flight")
        worker.send_signal(signal.SIGTERM)
        assert stop(worker) == 0
        statuses = {api.get(f"/api/v1/messages/{i}").json()["status"] for i in ids}
        assert statuses == {"sent"}


def test_worker_refuses_a_lease_shorter_than_a_send(env: dict[str, str]) -> None:
    """Exits non-zero with the reason in one line: no traceback, no setting's value echoed."""
    bad = {**env, "VISIBILITY_TIMEOUT_SECONDS": "5", "PROVIDER_TIMEOUT_SECONDS": "10"}
    done = subprocess.run(
        [sys.executable, "-m", "postline", "worker"],
        env={**os.environ, **bad}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert (
        "VISIBILITY_TIMEOUT_SECONDS (5) must be at least PROVIDER_TIMEOUT_SECONDS (10) + 5"
        in output
    ), output
    assert "Traceback" not in output
    assert env["DATABASE_URL"] not in output
