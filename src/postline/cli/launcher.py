"""`postline dev`: the whole service on one machine, in one command.

Starts what is missing (embedded PostgreSQL and Redis under `./.postline/`
when no URLs are given, the provider simulator when no provider credentials
are given), migrates, then runs the API and one worker as child processes.
Ctrl-C or SIGTERM stops everything in reverse order; children also die with
the launcher if it is killed outright (PR_SET_PDEATHSIG on Linux).

Client callbacks may go to loopback and private addresses here
(CALLBACK_ALLOW_PRIVATE_NETWORKS, unless set otherwise), since the receivers
one tries things with run on this machine. The banner never shows a secret:
the callback signing secret appears as a fingerprint, next to the file that
holds it (owner-only).

Each worker serves its Prometheus metrics on 127.0.0.1 (`--worker-metrics-port`,
9101 by default, the next ports for more workers); a port another program
holds is skipped for a free one, so a second `postline dev` still starts,
and the banner names the URLs actually used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from postline.runtime import spawn, wait_http
from postline.settings import Settings
from postline.simulator.config import SIM_ACCOUNT_SID, SIM_AUTH_TOKEN, SIM_SENDGRID_KEY
from postline.store.migrate import upgrade

DEV_ENV_FILE = "dev.env"


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def fingerprint(secret: str) -> str:
    """Names a secret without showing it: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _signing_secret(data_dir: Path) -> str:
    """A stable `whsec_` secret for dev callbacks, kept with the dev data."""
    saved = read_env_file(data_dir / DEV_ENV_FILE).get("CALLBACK_SIGNING_SECRET")
    return saved or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@contextlib.contextmanager
def _servers(settings: Settings, data_dir: Path) -> Iterator[tuple[str, str]]:
    from postline.embedded import EmbeddedPostgres, EmbeddedRedis

    with contextlib.ExitStack() as stack:
        database_url = settings.database_url
        if not database_url:
            database_url = stack.enter_context(EmbeddedPostgres(data_dir / "postgres")).url
        redis_url = settings.redis_url
        if not redis_url:
            redis_url = stack.enter_context(EmbeddedRedis(data_dir / "redis")).url
        yield database_url, redis_url


def run(
    settings: Settings,
    *,
    data_dir: Path,
    host: str,
    port: int,
    workers: int,
    simulator_port: int,
    worker_metrics_port: int = 0,
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    launcher = _Launcher(
        settings, data_dir, host, port, workers, simulator_port, worker_metrics_port
    )
    with _servers(settings, data_dir) as (database_url, redis_url):
        # Children stop before the servers they use: this block sits inside the `with`.
        try:
            return launcher.serve(database_url, redis_url, stop)
        finally:
            _stop_children(launcher.children)


class _Launcher:
    """Starts the simulator, the API and the workers, and watches them."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        host: str,
        port: int,
        workers: int,
        sim_port: int,
        metrics_port: int,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.workers = workers
        self.sim_port = sim_port
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        #: Where the workers' metrics ports start (0: none); see `worker_metrics_ports`.
        self.first_metrics_port = metrics_port

    def serve(self, database_url: str, redis_url: str, stop: threading.Event) -> int:
        applied = upgrade(database_url)
        print(f"migrations: {', '.join(applied) if applied else 'up to date'}", flush=True)
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
        env.setdefault("CALLBACK_SIGNING_SECRET", _signing_secret(self.data_dir))
        env.setdefault("CALLBACK_ALLOW_PRIVATE_NETWORKS", "true")
        env.setdefault("LOG_DIR", "logs")  # tail -f logs/app.log logs/worker.log
        api_host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        env.setdefault("PUBLIC_BASE_URL", f"http://{api_host}:{self.port}")
        if not self.settings.providers_configured:
            env.update(self._simulator(env))
        _write_dev_env(self.data_dir, env)
        api = spawn(["api", "--host", self.host, "--port", str(self.port)], env)
        self.children.append(("api", api))
        metrics_ports = worker_metrics_ports(self.first_metrics_port, self.workers)
        for i in range(self.workers):
            args = ["worker"]
            if metrics_ports:
                args += ["--metrics-port", str(metrics_ports[i])]
            self.children.append((f"worker-{i + 1}", spawn(args, env)))
        wait_http(f"http://{api_host}:{self.port}/health", timeout=30, proc=api)
        metrics_urls = [f"http://127.0.0.1:{p}/metrics" for p in metrics_ports]
        _banner(env, api_host, self.port, self.settings, self.data_dir, metrics_urls)
        while not stop.is_set():
            for name, child in self.children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping", flush=True)
                    stop.set()
            stop.wait(0.5)
        print("stopping...", flush=True)
        return 0

    def _simulator(self, env: dict[str, str]) -> dict[str, str]:
        """Starts the simulator; returns the settings that point the providers at it.

        It signs its delivery receipts like the real providers: Twilio's with
        the auth token, SendGrid's with a key whose public half it publishes.
        """
        sim_url = f"http://127.0.0.1:{self.sim_port}"
        provider_env = {
            "TWILIO_ACCOUNT_SID": SIM_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": SIM_AUTH_TOKEN,
            "TWILIO_BASE_URL": sim_url,
            "SENDGRID_API_KEY": SIM_SENDGRID_KEY,
            "SENDGRID_BASE_URL": sim_url,
        }
        events_url = f"{env['PUBLIC_BASE_URL']}/api/v1/webhooks/sendgrid/events"
        args = [
            "simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.sim_port),
            "--sendgrid-event-webhook-url",
            events_url,
        ]
        sim = spawn(args, dict(env, **provider_env))
        self.children.append(("simulator", sim))
        wait_http(f"{sim_url}/_sim/health", timeout=20, proc=sim)
        with urllib.request.urlopen(f"{sim_url}/_sim/sendgrid/public-key", timeout=5) as answer:  # noqa: S310
            provider_env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = json.loads(answer.read())["public_key"]
        return provider_env


def worker_metrics_ports(first: int, workers: int) -> list[int]:
    """A metrics port per worker from `first` on, skipping taken ones; none when `first` is 0."""
    if not first:
        return []
    ports: list[int] = []
    candidate = first
    while len(ports) < workers:
        port = candidate if _free(candidate) else _any_free()
        if port not in ports:  # a free port drawn for a taken one may be a later candidate
            ports.append(port)
        candidate += 1
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_dev_env(data_dir: Path, env: dict[str, str]) -> None:
    """Lets `postline worker` in another terminal join this dev instance."""
    keys = (
        "DATABASE_URL",
        "REDIS_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_BASE_URL",
        "SENDGRID_API_KEY",
        "SENDGRID_BASE_URL",
        "CALLBACK_SIGNING_SECRET",
        "PUBLIC_BASE_URL",
        "SENDGRID_WEBHOOK_PUBLIC_KEY",
        "CALLBACK_ALLOW_PRIVATE_NETWORKS",
    )
    lines = [f"{k}={env[k]}" for k in keys if k in env]
    path = data_dir / DEV_ENV_FILE
    # Created owner-only, so the secrets are never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # a file left by an older version may have been wider


def _stop_children(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, child in reversed(children):
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", flush=True)
            child.kill()
            child.wait()


def _banner(
    env: dict[str, str],
    host: str,
    port: int,
    settings: Settings,
    data_dir: Path,
    worker_metrics: list[str] | None = None,
) -> None:
    base = f"http://{host}:{port}"
    secret_print = fingerprint(env["CALLBACK_SIGNING_SECRET"])
    lines = [
        "",
        "Postline is running. Ctrl-C stops everything.",
        f"  API        {base}   (docs {base}/docs, health {base}/health)",
        f"  PostgreSQL {_redact(env['DATABASE_URL'])}"
        + ("" if settings.database_url else f"   (embedded, data in {data_dir}/postgres)"),
        f"  Redis      {_redact(env['REDIS_URL'])}"
        + ("" if settings.redis_url else f"   (embedded, AOF in {data_dir}/redis)"),
        "  Providers  "
        + (
            "Twilio and SendGrid"
            if settings.providers_configured
            else f"simulator at {env['TWILIO_BASE_URL']}"
        ),
        f"  Metrics    {base}/metrics (cluster-wide)"
        + "".join(f", worker {url}" for url in worker_metrics or []),
        f"  Callbacks  signed with CALLBACK_SIGNING_SECRET sha256:{secret_print}"
        f" (the secret is in {data_dir / DEV_ENV_FILE})",
        f"  More workers: `make worker` (reads {data_dir}/{DEV_ENV_FILE})",
        "",
        "Try it:",
        f"  curl -s -X POST {base}/api/v1/messages/send -H 'Content-Type: application/json' \\",
        '    -d \'{"from": "+15551234567", "to": "+15559876543", '
        + '"type": "sms", "body": "Test"}\'',
        "",
    ]
    print("\n".join(lines), flush=True)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, hostpart = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{creds}{at}{hostpart}"
