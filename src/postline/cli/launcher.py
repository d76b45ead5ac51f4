"""`postline dev`: the whole service on one machine, in one command.

Refuses at once, in one line, a fixed port (the API's, the simulator's) that
another program holds. Then starts what is missing (embedded PostgreSQL and
Redis under the data directory, `./.postline/` by default, when no URLs are
given; the provider simulator when no provider credentials are given),
migrates, runs the API and one worker as child processes, and writes
`<data dir>/dev.env` so the other commands find all of it (`devenv`). The
children's logs go to `<data dir>/logs/`.
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
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from postline.cli.devenv import (
    API_URL_KEY,
    SIMULATOR_URL_KEY,
    dev_env_path,
    read_env_file,
    write_dev_env,
)
from postline.cli.ports import any_free, is_free, require_free
from postline.runtime import spawn, wait_http
from postline.settings import Settings
from postline.simulator.config import SIM_ACCOUNT_SID, SIM_AUTH_TOKEN, SIM_SENDGRID_KEY
from postline.store.migrate import upgrade


def fingerprint(secret: str) -> str:
    """Names a secret without showing it: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _signing_secret(data_dir: Path) -> str:
    """A stable `whsec_` secret for dev callbacks, kept with the dev data."""
    saved = read_env_file(dev_env_path(data_dir)).get("CALLBACK_SIGNING_SECRET")
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
    check_ports(settings, host=host, port=port, simulator_port=simulator_port)
    data_dir.mkdir(parents=True, exist_ok=True)
    _announce_service_user(settings)
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
        # tail -f <data dir>/logs/app.log <data dir>/logs/worker.log; absolute, so a
        # `postline worker` joining from another folder writes there too.
        env.setdefault("LOG_DIR", str((self.data_dir / "logs").resolve()))
        api_host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        api_url = f"http://{api_host}:{self.port}"
        env.setdefault("PUBLIC_BASE_URL", api_url)
        if not self.settings.providers_configured:
            env.update(self._simulator(env))
        write_dev_env(
            self.data_dir,
            dict(env, API_KEYS=self.settings.api_keys or "", **{API_URL_KEY: api_url}),
        )
        api = spawn(["api", "--host", self.host, "--port", str(self.port)], env)
        self.children.append(("api", api))
        metrics_ports = worker_metrics_ports(self.first_metrics_port, self.workers)
        for i in range(self.workers):
            args = ["worker"]
            if metrics_ports:
                args += ["--metrics-port", str(metrics_ports[i])]
            self.children.append((f"worker-{i + 1}", spawn(args, env)))
        _started("api", f"{api_url}/health", api, log=Path(env["LOG_DIR"]) / "app.log")
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
            SIMULATOR_URL_KEY: sim_url,
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
            "--twilio-inbound-webhook-url",
            f"{env['PUBLIC_BASE_URL']}/api/v1/webhooks/twilio/inbound",
        ]
        sim = spawn(args, dict(env, **provider_env))
        self.children.append(("simulator", sim))
        _started("simulator", f"{sim_url}/_sim/health", sim, log=None)
        with urllib.request.urlopen(f"{sim_url}/_sim/sendgrid/public-key", timeout=5) as answer:  # noqa: S310
            provider_env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = json.loads(answer.read())["public_key"]
        return provider_env


class LaunchFailed(Exception):
    """A child did not come up; the message says which, and where its log is."""


def _started(name: str, url: str, proc: subprocess.Popen[bytes], *, log: Path | None) -> None:
    """Waits (bounded) until `proc` answers at `url`; `LaunchFailed` in one line if not."""
    where = "; see its output above" + (f" and {log}" if log else "")
    try:
        wait_http(url, timeout=30, proc=proc)
    except RuntimeError:
        raise LaunchFailed(
            f"{name} exited with code {proc.returncode} before answering at {url}{where}"
        ) from None
    except TimeoutError:
        raise LaunchFailed(f"{name} did not answer at {url} within 30s{where}") from None


def check_ports(settings: Settings, *, host: str, port: int, simulator_port: int) -> None:
    """Refuses, before anything starts, the fixed ports dev would find taken.

    The embedded servers take free ports and the workers' metrics skip taken
    ones, so only the API's and the simulator's can be taken.
    """
    checks = [(host, port, "dev", "--port")]
    if not settings.providers_configured:
        checks.append(("127.0.0.1", simulator_port, "dev", "--simulator-port"))
    require_free(checks)


def worker_metrics_ports(first: int, workers: int) -> list[int]:
    """A metrics port per worker from `first` on, skipping taken ones; none when `first` is 0."""
    if not first:
        return []
    ports: list[int] = []
    candidate = first
    while len(ports) < workers:
        port = candidate if is_free("127.0.0.1", candidate) else any_free()
        if port not in ports:  # a free port drawn for a taken one may be a later candidate
            ports.append(port)
        candidate += 1
    return ports


def _announce_service_user(settings: Settings) -> None:
    """Says so when, run as root, the embedded servers run as (and may create) a system user."""
    from postline.embedded.privileges import SERVICE_USER

    if os.geteuid() == 0 and not (settings.database_url and settings.redis_url):
        print(
            f"running as root: the embedded servers run as the system user {SERVICE_USER!r} "
            "(created if missing; see README, Set-up)",
            flush=True,
        )


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
        f" (the secret is in {dev_env_path(data_dir)})",
        f"  More workers: `postline worker --data-dir {data_dir}` (reads its dev.env)",
        *(
            [f"  Logs       {logs}/app.log, {logs}/worker.log"]
            if (logs := env.get("LOG_DIR"))
            else []
        ),
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
