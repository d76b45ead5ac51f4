"""Prometheus metrics of the real commands: `postline api --workers 2`, where
any process must answer with the totals of all, liveness vs readiness, and a
worker's own metrics port."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import free_port
from tests.support.processes import running

T = TypeVar("T")
HOST = "127.0.0.1"
SEND_ROUTE = "/api/v1/messages/send"
PDF = base64.b64encode(b"%PDF-1.4").decode()


def sms(i: int) -> dict[str, Any]:
    return {"from": "+15551230001", "to": f"+1555987{i:04d}", "type": "sms", "body": f"m{i}"}


def mms(i: int) -> dict[str, Any]:
    return {**sms(i), "type": "mms", "attachments": ["https://example.com/t.png"]}


def whatsapp(i: int) -> dict[str, Any]:
    return {**sms(i), "type": "whatsapp", "to": f"whatsapp:+1555987{i:04d}"}


def email(i: int) -> dict[str, Any]:
    return {"from": "shop@example.com", "to": f"ana{i}@example.org", "type": "email",
            "subject": "Receipt", "body": "Thanks",
            "attachments": [{"filename": "r.pdf", "content_type": "application/pdf",
                             "content": PDF}]}  # fmt: skip


# 30 messages, every one to its own address so each heads its own ordering
# key and sits in its channel's stream.
SENT = {"sms": 12, "mms": 6, "whatsapp": 5, "email": 7}
BUILDERS = {"sms": sms, "mms": mms, "whatsapp": whatsapp, "email": email}
MESSAGES = [
    BUILDERS[channel](i) for i, channel in enumerate(c for c, n in SENT.items() for _ in range(n))
]


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Api:
    """HTTP/1.1 to the API, knowing which process served each connection.

    A connection is served by the process that accepted it; psutil finds that
    process among the API's children by the connection's client port.
    """

    def __init__(self, port: int, parent: psutil.Process) -> None:
        self.port = port
        self.parent = parent

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=10)

    def request(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()

    def server_pid(self, connection: http.client.HTTPConnection) -> int:
        """The pid of the API process holding the other end of `connection` (still open)."""
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        for child in self.parent.children(recursive=True):
            try:
                sockets = child.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            for conn in sockets:
                ours = conn.raddr and conn.raddr.port == client_port
                if ours and conn.laddr and conn.laddr.port == self.port:
                    return child.pid
        raise AssertionError(f"no API process holds the connection from port {client_port}")

    def pinned(self, processes: int, *, timeout: float) -> dict[int, http.client.HTTPConnection]:
        """One open (keep-alive) connection to each of `processes` distinct processes."""
        found: dict[int, http.client.HTTPConnection] = {}
        spare: list[http.client.HTTPConnection] = []

        def one_more() -> bool:
            connection = self.connect()
            status, _ = self.request(connection, "GET", "/health/live")
            assert status == 200
            pid = self.server_pid(connection)
            if pid in found:
                spare.append(connection)  # kept open so the next one may land elsewhere
            else:
                found[pid] = connection
            return len(found) == processes

        try:
            wait_until(one_more, timeout=timeout, what=f"{processes} API processes to answer")
        finally:
            for connection in spare:
                connection.close()
        return found


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """Sum of `name` over the samples that carry (at least) `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


@pytest.fixture
def api_with_two_processes(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Api, Any]]:
    port = free_port()
    log = tmp_path / "api.log"
    args = ["api", "--port", str(port), "--workers", "2"]
    with running(args, env, log, f"http://{HOST}:{port}/health") as proc:
        yield Api(port, psutil.Process(proc.pid)), proc


def test_every_api_process_scrapes_the_same_totals(
    api_with_two_processes: tuple[Api, Any],
) -> None:
    api, proc = api_with_two_processes
    # Both processes serving, each holding a connection of ours: the sends
    # are split between them, so no single process counted them all.
    for connection in api.pinned(2, timeout=30).values():
        connection.close()  # both serve now; an idle connection would time out, so pin anew
    pinned = api.pinned(2, timeout=10)
    assert len(pinned) == 2
    uvicorn_children = {child.pid for child in api.parent.children()}
    assert set(pinned) <= uvicorn_children, "the API processes are uvicorn's children"
    [metrics_dir] = {
        psutil.Process(pid).environ().get("PROMETHEUS_MULTIPROC_DIR") for pid in pinned
    }
    assert metrics_dir and Path(metrics_dir).is_dir()

    connections = list(pinned.values())
    for i, message in enumerate(MESSAGES):
        status, body = api.request(connections[i % 2], "POST", SEND_ROUTE, message)
        assert status == 202, body
    for connection in connections:
        connection.close()

    # Scrape on fresh connections, at least 10 times and until each process
    # has answered twice; every answer must carry the totals of both.
    served: dict[int, int] = {}
    scrapes = 0

    def scrape_once() -> bool:
        nonlocal scrapes
        connection = api.connect()
        try:
            status, body = api.request(connection, "GET", "/metrics")
            assert status == 200
            pid = api.server_pid(connection)
        finally:
            connection.close()
        scrapes += 1
        served[pid] = served.get(pid, 0) + 1
        samples = scrape(body.decode())
        where = f"scrape {scrapes}, answered by pid {pid}"
        for channel, sent in SENT.items():
            accepted = value(samples, "postline_messages_accepted_total", channel=channel)
            assert accepted == sent, f"{channel}: {accepted} accepted, {sent} sent ({where})"
        sends = total(
            samples, "postline_http_request_duration_seconds_count",
            method="POST", route=SEND_ROUTE, status="202",
        )  # fmt: skip
        assert sends == len(MESSAGES), f"{sends} sends timed ({where})"
        assert value(samples, "postline_messages", status="pending") == len(MESSAGES), where
        assert value(samples, "postline_messages", status="sent") == 0, where
        for channel, sent in SENT.items():
            depth = value(samples, "postline_queue_depth", stream=f"message_queue:{channel}")
            assert depth == sent, f"{channel} stream depth {depth} ({where})"
        # Cluster-wide gauges are read at scrape time, once, whichever process answers.
        assert value(samples, "postline_workers_live") == 0, where
        return scrapes >= 10 and len(served) == 2 and min(served.values()) >= 2

    wait_until(scrape_once, timeout=30, what="both API processes to answer scrapes")
    assert set(served) == set(pinned), f"scrapes served by {served}, API processes {set(pinned)}"
    # Labels stay low-cardinality: the route template, never a raw path or an id.
    connection = api.connect()
    _, body = api.request(connection, "GET", "/metrics")
    connection.close()
    routes = {
        dict(labels).get("route")
        for (name, labels) in scrape(body.decode())
        if name == "postline_http_request_duration_seconds_count"
    }
    assert routes <= {SEND_ROUTE, "/metrics", "/health", "/health/live"}, routes

    # The parent made the shared directory for this run; it goes with it.
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    assert not Path(metrics_dir).exists(), "the metrics directory outlived the API"


def test_liveness_answers_while_readiness_names_what_is_down(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://{HOST}:{port}"
    down = {**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none",
            "REDIS_URL": "redis://127.0.0.1:9/0", "API_KEYS": "k1"}  # fmt: skip
    with running(["api", "--port", str(port)], down, tmp_path / "api.log", f"{base}/health/live"):
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        # No Authorization header: both probes are outside auth.
        connection.request("GET", "/health/live")
        live = connection.getresponse()
        assert (live.status, json.loads(live.read())) == (200, {"status": "ok"})
        assert live.getheader("content-type") == "application/json"
        connection.request("GET", "/health")
        ready = connection.getresponse()
        assert ready.status == 503
        assert json.loads(ready.read()) == {
            "status": "degraded",
            "database": "down",
            "redis": "down",
        }
        # Metrics still answer: counters, and the stored-state gauges without samples.
        connection.request("GET", "/metrics")
        page = connection.getresponse()
        assert page.status == 200
        families = {f.name: f for f in text_string_to_metric_families(page.read().decode())}
        assert families["postline_messages"].samples == []
        assert families["postline_queue_depth"].samples == []
        assert families["postline_cluster_outcomes"].samples == []
        assert families["postline_workers_live"].samples == []
        connection.request("GET", "/api/v1/stats")
        assert connection.getresponse().status == 401  # auth is on, and still applies
        connection.close()


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One request on a connection of its own (an idle one would be closed by the server)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def metrics_of(port: int) -> dict[Any, float]:
    status, body = call(port, "GET", "/metrics")
    assert status == 200, body
    return scrape(body.decode())


def test_a_worker_counts_its_sends_on_its_metrics_port(env: dict[str, str], tmp_path: Path) -> None:
    sim_port, api_port, metrics_port = free_port(), free_port(), free_port()
    sim_url = f"http://{HOST}:{sim_port}"
    env = {**env, "TWILIO_BASE_URL": sim_url, "SENDGRID_BASE_URL": sim_url}
    log = tmp_path / "processes.log"
    sent = [sms(1), sms(2), sms(3), email(4), email(5)]
    worker_args = ["worker", "--concurrency", "8", "--metrics-port", str(metrics_port)]
    with (
        running(["simulator", "--port", str(sim_port)], env, log, f"{sim_url}/_sim/health"),
        running(["api", "--port", str(api_port)], env, log, f"http://{HOST}:{api_port}/health"),
    ):
        for message in sent:
            status, body = call(api_port, "POST", SEND_ROUTE, message)
            assert status == 202, body
        with running(worker_args, env, log, f"http://{HOST}:{metrics_port}/metrics"):

            def counted() -> dict[Any, float] | None:
                samples = metrics_of(metrics_port)
                twilio = value(samples, "postline_messages_sent_total",
                               channel="sms", provider="twilio")  # fmt: skip
                sendgrid = value(samples, "postline_messages_sent_total",
                                 channel="email", provider="sendgrid")  # fmt: skip
                return samples if (twilio, sendgrid) == (3, 2) else None

            samples = wait_until(counted, timeout=20, what="the worker to count 5 sends")
            assert value(samples, "postline_worker_inflight") is not None
            assert total(samples, "postline_messages_sent_total") == len(sent)
            assert total(samples, "postline_messages_failed_total") == 0
            assert total(samples, "postline_messages_retried_total") == 0
            assert value(samples, "postline_provider_request_duration_seconds_count",
                         provider="twilio") == 3  # fmt: skip
            assert value(samples, "postline_provider_request_duration_seconds_count",
                         provider="sendgrid") == 2  # fmt: skip
            # A send is counted once its status is stored: the API's gauge agrees.
            stored = metrics_of(api_port)
            assert value(stored, "postline_messages", status="sent") == len(sent)
            assert value(stored, "postline_messages", status="pending") == 0
            # The API's cluster-wide totals, counted in PostgreSQL, agree with the worker's own.
            assert value(stored, "postline_cluster_outcomes_total",
                         channel="sms", outcome="sent") == 3  # fmt: skip
            assert value(stored, "postline_cluster_outcomes_total",
                         channel="email", outcome="sent") == 2  # fmt: skip
            assert value(stored, "postline_workers_live") == 1
