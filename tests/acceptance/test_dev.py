"""`postline dev` (what `make run` runs) on a machine with no servers configured."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from postline.cli.devenv import read_env_file
from postline.cli.launcher import fingerprint
from postline.embedded.privileges import SERVICE_USER
from tests.support.harness import free_port
from tests.support.processes import descendants, start_dev, stop_dev, wait_http

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


@contextlib.contextmanager
def loopback_receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A client's callback endpoint on loopback: (its URL, the headers of each call)."""
    calls: list[dict[str, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            calls.append(dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", calls
    finally:
        server.shutdown()
        server.server_close()


def wait_status(api: httpx.Client, message_id: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while api.get(f"/api/v1/messages/{message_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"{message_id} not {status} within {timeout}s"
        time.sleep(0.1)


def test_dev_runs_everything_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    api_port, sim_port, metrics_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "dev.log"

    dev = start_dev(tmp_path, api_port, sim_port, metrics_port)
    try:
        wait_http(f"{base}/health", dev, log, timeout=90)
        family = descendants(dev)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "postgres" in names and "redis-server" in names, names
        assert all(word in names for word in ("simulator", " api ", "worker")), names
        with httpx.Client(base_url=base) as api:
            message_id = api.post("/api/v1/messages/send", json=SMS).json()["id"]
            # The simulator's signed status callback closes the loop: sent, then delivered.
            wait_status(api, message_id, "delivered")
            mail = {"from": "shop@example.com", "to": "ana@example.org", "type": "email",
                    "subject": "Receipt", "body": "Thanks"}  # fmt: skip
            mail_id = api.post("/api/v1/messages/send", json=mail).json()["id"]
            wait_status(api, mail_id, "delivered")
            # The worker serves its own metrics, at the URL the banner names.
            worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            assert worker_metrics in log.read_text()
            page = httpx.get(worker_metrics, timeout=10).text
            assert 'postline_messages_sent_total{channel="email",provider="sendgrid"} 1.0' in page
            # dev lets callbacks reach loopback, where a developer's receiver runs.
            with loopback_receiver() as (hook_url, calls):
                hooked = api.post("/api/v1/messages/send", json={**SMS, "callback_url": hook_url})
                assert hooked.status_code == 202, hooked.text
                deadline = time.monotonic() + 20
                while not calls:
                    assert time.monotonic() < deadline, "no callback reached the receiver"
                    time.sleep(0.1)
            assert calls[0]["webhook-signature"].startswith("v1,")
            # dev points the simulator's inbound webhook at its API (signed with its token).
            inbound = {"from": "+15559876543", "to": "+15551234567", "body": "Hello"}
            sim_inbound = f"http://127.0.0.1:{sim_port}/_sim/inbound"
            played = httpx.post(sim_inbound, json=inbound, timeout=20).json()
            assert played["status"] == 200, played
            [listed] = api.get("/api/v1/inbound").json()["items"]
            assert listed["provider_message_id"] == played["message_sid"]
        # `make test-flow` is this command, run against `make run`.
        flow = subprocess.run(
            [sys.executable, "-m", "postline", "flow", "--url", base],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert flow.returncode == 0, flow.stdout + flow.stderr
        assert "All steps passed" in flow.stdout
        assert (tmp_path / ".postline" / "postgres").is_dir()
        # Logs go under the data dir, not into the folder dev was started from.
        assert (tmp_path / ".postline" / "logs" / "worker.log").stat().st_size > 0
        assert not (tmp_path / "logs").exists()
    finally:
        if dev.poll() is None:
            stop_dev(dev, family)
    assert "Postline is running" in log.read_text()
    # Run as root, the embedded servers run as a system user, and dev says so.
    assert (f"system user {SERVICE_USER!r}" in log.read_text()) == (os.geteuid() == 0)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
    secret = read_env_file(tmp_path / ".postline" / "dev.env")["CALLBACK_SIGNING_SECRET"]
    assert secret not in log.read_text()
    assert f"sha256:{fingerprint(secret)}" in log.read_text()

    again = start_dev(tmp_path, api_port, sim_port)
    try:
        wait_http(f"{base}/health", again, log, timeout=90)
        family = descendants(again)
        with httpx.Client(base_url=base) as api:
            kept = api.get(f"/api/v1/messages/{message_id}")
            assert kept.status_code == 200
            assert kept.json()["status"] == "delivered"
    finally:
        stop_dev(again, family)
