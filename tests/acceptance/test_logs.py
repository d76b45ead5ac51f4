"""Structured logs: a line per state change, in files when LOG_DIR is set, no secrets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from tests.support.harness import SIM_KEY, SIM_SID, SIM_TOKEN, free_port
from tests.support.processes import running

BODY = "Your door code is 4417-SECRET"
API_KEY = "log-test-key-0123456789"


def lines(path: Path) -> list[dict[str, Any]]:
    parsed = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            parsed.append(orjson.loads(line))
    return parsed


def test_state_changes_are_logged_as_json_lines_without_secrets(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any, tmp_path: Path
) -> None:
    sim_port, api_port = free_port(), free_port()
    sim_url, api_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
    env = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "API_KEYS": API_KEY,
        "TWILIO_ACCOUNT_SID": SIM_SID, "TWILIO_AUTH_TOKEN": SIM_TOKEN, "SENDGRID_API_KEY": SIM_KEY,
        "TWILIO_BASE_URL": sim_url, "SENDGRID_BASE_URL": sim_url,
        "LOG_FORMAT": "json", "LOG_DIR": str(tmp_path / "logs"),
    }  # fmt: skip
    out = tmp_path / "out.log"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with (
        running(["simulator", "--port", str(sim_port)], env, out, f"{sim_url}/_sim/health"),
        running(["api", "--port", str(api_port)], env, out, f"{api_url}/health"),
        running(["worker"], env, out),
        httpx.Client(base_url=api_url, headers=auth) as api,
    ):
        sms = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": BODY}
        message_id = api.post("/api/v1/messages/send", json=sms).json()["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/api/v1/messages/{message_id}").json()["status"] != "sent":
            assert time.monotonic() < deadline, "not sent in 20 s"
            time.sleep(0.05)

    app_log, worker_log = tmp_path / "logs" / "app.log", tmp_path / "logs" / "worker.log"
    mine = [e for e in lines(app_log) + lines(worker_log) if e.get("message_id") == message_id]
    assert [e["event"] for e in mine] == ["message.pending", "message.sending", "message.sent"]
    sent = mine[-1]
    assert sent["channel"] == "sms" and sent["attempt"] == 1 and sent["provider"] == "twilio"
    assert isinstance(sent["latency_ms"], float)
    assert all("timestamp" in e and "level" in e for e in mine)
    everything = app_log.read_text() + worker_log.read_text() + out.read_text()
    for secret in (BODY, "4417", API_KEY, SIM_TOKEN, SIM_KEY, "+15559876543"):
        assert secret not in everything, f"{secret!r} leaked into the logs"
