"""The `postline` command. Subcommands build their parts, then run them.

Every option falls back to the environment variable that `--help` names;
settings not on the command line come from the environment and `.env`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from postline import cli_ops, logs
from postline.chaos import command as chaos_command
from postline.errors import ConfigurationError
from postline.settings import Settings

DATA_DIR = Path(".postline")
F = TypeVar("F", bound=Callable[..., Any])


def _load_settings() -> Settings:
    """Settings from the environment, or a one-line reason why they are refused."""
    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid configuration: {reasons}") from None


def _settings(*, need_servers: bool = True, log_name: str | None = None) -> Settings:
    """Settings from the environment; falls back to a running `postline dev`'s servers."""
    settings = _load_settings()
    if need_servers and not (settings.database_url and settings.redis_url):
        from postline.dev import DEV_ENV_FILE, read_env_file

        saved = read_env_file(DATA_DIR / DEV_ENV_FILE)
        if not saved:
            raise click.ClickException(
                "DATABASE_URL and REDIS_URL are not set and no `postline dev` is running here: "
                "set them, or start `postline dev` (make run) first"
            )
        for key, value in saved.items():
            os.environ.setdefault(key, value)
        settings = _load_settings()
    log_file = Path(settings.log_dir) / log_name if settings.log_dir and log_name else None
    logs.configure(level=settings.log_level, fmt=settings.log_format, file=log_file)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Postline: SMS, MMS, WhatsApp and email over one HTTP API."""


@main.command()
@click.option("--host", default="127.0.0.1", envvar="POSTLINE_HOST", show_envvar=True)
@click.option("--port", default=8080, type=int, envvar="POSTLINE_PORT", show_envvar=True)
@click.option(
    "--workers", default=1, type=click.IntRange(min=1), envvar="API_WORKERS", show_envvar=True,
    help="API processes on the port; /metrics sums their counters (PROMETHEUS_MULTIPROC_DIR, "
    "a fresh temporary one unless set).",
)  # fmt: skip
@click.option(
    "--insecure-no-auth", is_flag=True, help="Listen on a public address without API_KEYS."
)
def api(host: str, port: int, workers: int, insecure_no_auth: bool) -> None:
    """Serve the HTTP API (needs DATABASE_URL and REDIS_URL)."""
    from postline.api import server

    try:
        server.run(
            _settings(log_name="app.log"),
            host=host,
            port=port,
            workers=workers,
            insecure_no_auth=insecure_no_auth,
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--concurrency", type=int, default=None, envvar="WORKER_CONCURRENCY", show_envvar=True,
    help="Sends in flight at once (default 256).",
)  # fmt: skip
@click.option(
    "--metrics-port", type=int, default=None, envvar="WORKER_METRICS_PORT", show_envvar=True,
    help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT.",
)  # fmt: skip
def worker(concurrency: int | None, metrics_port: int | None) -> None:
    """Deliver queued messages; SIGTERM finishes the sends in flight, then exits 0."""
    from postline.worker import process

    try:
        process.run(
            _settings(log_name="worker.log"), concurrency=concurrency, metrics_port=metrics_port
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run again)."""
    from postline.store.migrate import upgrade

    settings = _settings()
    assert settings.database_url
    applied = upgrade(settings.database_url)
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


def _sim_option(name: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(name, envvar=f"SIMULATOR_{env}", show_envvar=True, **kwargs)


@main.command()
@_sim_option("--host", "HOST", default="127.0.0.1")
@_sim_option("--port", "PORT", default=8900, type=int)
@_sim_option("--latency-ms", "LATENCY_MS", default=0.0, type=float)
@_sim_option("--error-rate", "ERROR_RATE", default=0.0, type=float, help="Fraction answered 500.")
@_sim_option("--rate-429", "RATE_429", default=0.0, type=float, help="Fraction answered 429.")
@_sim_option("--retry-after", "RETRY_AFTER", default=1, type=int, help="Retry-After on 429s.")
@_sim_option("--callbacks/--no-callbacks", "CALLBACKS", default=True, help="Send receipts.")
@_sim_option("--callback-delay-ms", "CALLBACK_DELAY_MS", default=200.0, type=float)
@_sim_option(
    "--delivery-outcome", "DELIVERY_OUTCOME", default="delivered",
    type=click.Choice(["delivered", "undelivered", "failed"]),
)  # fmt: skip
@_sim_option("--sendgrid-event-webhook-url", "SENDGRID_EVENT_WEBHOOK_URL", default=None)
@_sim_option("--seed", "SEED", default=None, type=int, help="Seed of faults, jitter and ids.")
@_sim_option(
    "--request-log", "REQUEST_LOG", default=None, type=click.Path(path_type=Path),
    help="Append every provider call to this file as a JSON line.",
)  # fmt: skip
def simulator(
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    rate_429: float,
    retry_after: int,
    callbacks: bool,
    callback_delay_ms: float,
    delivery_outcome: str,
    sendgrid_event_webhook_url: str | None,
    seed: int | None,
    request_log: Path | None,
) -> None:
    """Run the Twilio + SendGrid simulator (inspect it at /_sim/requests)."""
    from postline.simulator.app import run_simulator
    from postline.simulator.config import SimulatorConfig

    settings = _settings(need_servers=False)
    config = SimulatorConfig(
        latency_ms=latency_ms,
        error_rate=error_rate,
        rate_429=rate_429,
        retry_after_seconds=retry_after,
        twilio_account_sid=settings.twilio_account_sid,
        twilio_auth_token=settings.twilio_auth_token,
        sendgrid_api_key=settings.sendgrid_api_key,
        callbacks_enabled=callbacks,
        callback_delay_ms=callback_delay_ms,
        delivery_outcome=delivery_outcome,
        sendgrid_event_webhook_url=sendgrid_event_webhook_url,
        seed=seed,
    )
    run_simulator(host, port, config, request_log)


@main.command()
@click.option("--host", default="127.0.0.1", envvar="POSTLINE_HOST", show_envvar=True)
@click.option("--port", default=8080, type=int, envvar="POSTLINE_PORT", show_envvar=True)
@click.option("--workers", default=1, type=int, envvar="POSTLINE_DEV_WORKERS", show_envvar=True)
@click.option("--simulator-port", default=8900, type=int, envvar="SIMULATOR_PORT", show_envvar=True)
@click.option(
    "--data-dir", default=str(DATA_DIR), type=click.Path(path_type=Path),
    envvar="POSTLINE_DATA_DIR", show_envvar=True,
)  # fmt: skip
def dev(host: str, port: int, workers: int, simulator_port: int, data_dir: Path) -> None:
    """Run everything: embedded servers if needed, simulator, API and a worker."""
    from postline import dev as launcher

    settings = Settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    sys.exit(
        launcher.run(
            settings,
            data_dir=data_dir,
            host=host,
            port=port,
            workers=workers,
            simulator_port=simulator_port,
        )
    )


@main.command()
@click.option("--messages", "-n", default=10_000, type=int, help="Messages per scenario.")
@click.option("--concurrency", "-c", default=64, type=int, help="Concurrent clients.")
@click.option("--batch", default=0, type=int, help="Messages per request (batch endpoint).")
@click.option("--runs", default=3, type=int, help="Repetitions; the median is reported.")
@click.option("--worker-concurrency", default=256, type=int, help="Sends in flight per worker.")
@click.option(
    "--scenario", "scenarios", multiple=True,
    type=click.Choice(["accept", "accept-2000", "drain", "both", "drain-100ms", "both-100ms"]),
    help="Scenarios to run (default: all).",
)  # fmt: skip
def bench(
    messages: int,
    concurrency: int,
    batch: int,
    runs: int,
    worker_concurrency: int,
    scenarios: tuple[str, ...],
) -> None:
    """Measure accept rate and latency, and delivery through one worker.

    Uses DATABASE_URL/REDIS_URL when set (a fresh `postline_bench` database is
    created; the Redis database given is FLUSHED), else embedded servers.
    """
    from postline.bench.run import ALL_SCENARIOS, run

    logs.configure(level="WARNING")
    chosen = scenarios or (("accept",) if batch else ALL_SCENARIOS)
    run(
        messages=messages,
        concurrency=concurrency,
        batch=batch,
        runs=runs,
        scenarios=chosen,
        worker_concurrency=worker_concurrency,
    )


@main.command()
@click.option("--url", default="http://127.0.0.1:8080", envvar="POSTLINE_URL", show_envvar=True)
@click.option("--timeout", default=30.0, type=float, help="Seconds to wait for each message.")
def flow(url: str, timeout: float) -> None:
    """Walk one message of each channel through a running Postline (make test-flow)."""
    from postline import flow as walk

    keys = Settings().api_key_list
    try:
        walk.run(url, api_key=keys[0] if keys else None, timeout=timeout, echo=click.echo)
    except walk.FlowFailed as exc:
        raise click.ClickException(str(exc)) from exc


# Operations commands (`status`, `worker --check`) and the fault campaign attach last.
cli_ops.register(main)
chaos_command.register(main)
