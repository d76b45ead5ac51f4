"""Every command follows a `postline dev` started with its own --data-dir and --port.

Dev runs as a subprocess with the test servers' URLs (embedded servers are
`test_dev`'s subject; here they would only cost start-up time); the other
commands run from another folder with no server URL and no API URL in their
environment, so all they know is the data dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from postline.cli.devenv import read_env_file
from tests.acceptance.test_dev import stop_dev
from tests.support.harness import free_port
from tests.support.processes import clean_env, run_postline, wait_http

SMS = {"from": "+15551234567", "type": "sms", "body": "Booking 4711"}
REFUSED = "+15550000001"  # the simulator answers it with a permanent error, once


def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)
    return found


@pytest.fixture
def dev(
    database_url: str, redis_url: str, pool: Any, redis: Any, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """`postline dev --data-dir <tmp>/state --port P` from <tmp>/launch: (API URL, data dir)."""
    data_dir, launch = tmp_path / "state", tmp_path / "launch"
    launch.mkdir()
    api_port = free_port()
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, RETRY_BASE_SECONDS="0.05")
    for provider in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SENDGRID_API_KEY"):
        env.pop(provider, None)  # so dev starts its simulator
    log = tmp_path / "dev.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "postline", "dev", "--data-dir", str(data_dir),
             "--port", str(api_port), "--simulator-port", str(free_port()),
             "--worker-metrics-port", str(free_port())],
            cwd=launch, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    family: list[psutil.Process] = []
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/health", proc, log, timeout=60)
        until(lambda: "Postline is running" in log.read_text(), "the banner")
        family = psutil.Process(proc.pid).children(recursive=True)
        yield base, data_dir
    finally:
        stop_dev(proc, family)
    assert not (launch / "logs").exists(), "logs belong under the data dir"
    assert not (launch / ".postline").exists(), "dev used the default data dir"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_every_command_follows_the_data_dir_of_dev(dev: tuple[str, Path], tmp_path: Path) -> None:
    base, data_dir = dev
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_flag = clean_env()
    by_env = clean_env(POSTLINE_DATA_DIR=str(data_dir))

    saved = read_env_file(data_dir / "dev.env")
    assert saved["DEV_API_URL"] == base
    # Workers may take a moment to send their first heartbeat.
    until(lambda: run_postline("worker", "--check", cwd=elsewhere, env=by_env).returncode == 0,
          "worker --check to see dev's worker")  # fmt: skip
    status = run_postline(
        "status", "--json", "--data-dir", str(data_dir), cwd=elsewhere, env=by_flag
    )
    assert status.returncode == 0, status.stderr
    assert len(json.loads(status.stdout)["workers"]) == 1
    flow = run_postline("flow", "--timeout", "30", cwd=elsewhere, env=by_env)
    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert f"GET {base}/health" in flow.stdout and "All steps passed" in flow.stdout

    # A message that fails at once: the simulator refuses it, permanently.
    sim = saved["DEV_SIMULATOR_URL"]
    script = {"to": REFUSED, "responses": [{"status": 400, "code": 21211, "message": "Invalid To"}]}
    httpx.post(f"{sim}/_sim/scripts", json=script, timeout=10).raise_for_status()
    failed_id = httpx.post(f"{base}/api/v1/messages/send", json={**SMS, "to": REFUSED}).json()["id"]

    def show(message_id: str) -> dict[str, Any]:
        shown = run_postline("messages", "get", message_id, "--json", cwd=elsewhere, env=by_env)
        assert shown.returncode == 0, shown.stderr
        found: dict[str, Any] = json.loads(shown.stdout)
        return found

    until(lambda: show(failed_id)["status"] == "failed", f"{failed_id} failed")
    human = run_postline("messages", "get", failed_id, cwd=elsewhere, env=by_env)
    assert "21211" in human.stdout and "History" in human.stdout, human.stdout

    listed = run_postline(
        "messages", "list", "--status", "failed", "--json", cwd=elsewhere, env=by_env
    )
    assert [m["id"] for m in json.loads(listed.stdout)] == [failed_id], listed.stdout
    dead = run_postline("dead-letters", "list", cwd=elsewhere, env=by_env)
    assert dead.returncode == 0 and failed_id in dead.stdout and "Invalid To" in dead.stdout

    # A bulk replay is guarded: without --yes, off a terminal, nothing is replayed.
    guarded = run_postline("dead-letters", "replay", cwd=elsewhere, env=by_env)
    assert guarded.returncode == 1 and "--yes" in guarded.stderr, guarded.stderr
    dry = run_postline(
        "dead-letters", "replay", "--dry-run", "--type", "sms", cwd=elsewhere, env=by_env
    )
    assert dry.returncode == 0 and failed_id in dry.stdout, dry.stdout + dry.stderr
    assert show(failed_id)["status"] == "failed"
    replay = run_postline("dead-letters", "replay", "--yes", "--json", cwd=elsewhere, env=by_env)
    assert replay.returncode == 0, replay.stderr
    assert [m["id"] for m in json.loads(replay.stdout)] == [failed_id]
    # Its script is used up, so this time it goes through.
    until(lambda: show(failed_id)["status"] in ("sent", "delivered"), f"{failed_id} replayed")

    refused = run_postline("messages", "retry", failed_id, cwd=elsewhere, env=by_env)
    assert refused.returncode == 1 and "refused: only failed" in refused.stderr, refused.stderr
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = httpx.post(
        f"{base}/api/v1/messages/send", json={**SMS, "to": "+15559876543", "send_at": later}
    ).json()["id"]
    cancel = run_postline("messages", "cancel", scheduled, cwd=elsewhere, env=by_env)
    assert cancel.returncode == 0 and f"{scheduled}: cancelled" in cancel.stdout, cancel.stderr

    # The API's and the worker's logs are in the data dir, not where a command ran.
    for name in ("app.log", "worker.log"):
        assert (data_dir / "logs" / name).stat().st_size > 0, name
    assert not (elsewhere / "logs").exists()
