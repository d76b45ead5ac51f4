"""`postline api`, `worker`, `migrate` and `dev`: the commands that run the service.

Thin: each reads its options, builds its settings, then hands over to the
part it runs. `worker --check` does not run a worker: it is the health probe
for containers and scripts (`postline worker --check || alert`), kept on the
command it checks rather than under a second name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from postline.cli.config import data_dir_option, load_settings, option, switch
from postline.cli.ports import require_free
from postline.cli.status import check_workers
from postline.errors import ConfigurationError

CHECK_HELP = (
    "Do not run a worker: exit 0 if at least one live worker heartbeat is seen "
    "in Redis, 1 otherwise."
)


@click.command()
@option("--host", default="127.0.0.1")
@option("--port", default=8080, type=int)
@option(
    "--workers",
    default=1,
    type=click.IntRange(min=1),
    help="API processes on the port; /metrics sums their counters (PROMETHEUS_MULTIPROC_DIR, "
    "a fresh temporary one unless set).",
)
@switch("--insecure-no-auth", help="Listen on a public address without API_KEYS.")
@data_dir_option()
def api(host: str, port: int, workers: int, insecure_no_auth: bool, data_dir: Path) -> None:
    """Serve the HTTP API (needs DATABASE_URL and REDIS_URL, or a `postline dev`)."""
    from postline.api import server

    require_free([(host, port, "api", "--port")])
    try:
        server.run(
            load_settings(data_dir=data_dir, log_name="app.log"),
            host=host,
            port=port,
            workers=workers,
            insecure_no_auth=insecure_no_auth,
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@option(
    "--concurrency",
    type=int,
    default=None,
    help="Sends in flight at once (default: WORKER_CONCURRENCY, else 256).",
)
@option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT.",
)
@switch("--check", help=CHECK_HELP)
@data_dir_option()
def worker(concurrency: int | None, metrics_port: int | None, check: bool, data_dir: Path) -> None:
    """Deliver queued messages; SIGTERM finishes the sends in flight, then exits 0."""
    if check:
        sys.exit(check_workers(load_settings(data_dir=data_dir)))
    from postline.worker import process

    if metrics_port:
        require_free([("127.0.0.1", metrics_port, "worker", "--metrics-port")])
    settings = load_settings(data_dir=data_dir, log_name="worker.log")
    try:
        process.run(settings, concurrency=concurrency, metrics_port=metrics_port)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@data_dir_option()
def migrate(data_dir: Path) -> None:
    """Bring the database schema up to date (safe to run again)."""
    from postline.store.migrate import upgrade

    settings = load_settings(data_dir=data_dir, need_redis=False)
    assert settings.database_url
    applied = upgrade(settings.database_url)
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@click.command()
@option("--host", default="127.0.0.1")
@option("--port", default=8080, type=int)
@option("--workers", default=1, type=int)
@option("--simulator-port", default=8900, type=int)
@option(
    "--worker-metrics-port",
    default=9101,
    type=int,
    help="First worker's Prometheus metrics port on 127.0.0.1 (more workers take the next "
    "ones; a taken port is replaced by a free one; 0: none).",
)
@data_dir_option()
def dev(
    host: str,
    port: int,
    workers: int,
    simulator_port: int,
    worker_metrics_port: int,
    data_dir: Path,
) -> None:
    """Run everything: embedded servers if needed, simulator, API and a worker."""
    from postline import logs
    from postline.cli import launcher
    from postline.settings import Settings

    settings = Settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    try:
        code = launcher.run(
            settings,
            data_dir=data_dir,
            host=host,
            port=port,
            workers=workers,
            simulator_port=simulator_port,
            worker_metrics_port=worker_metrics_port,
        )
    except launcher.LaunchFailed as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
