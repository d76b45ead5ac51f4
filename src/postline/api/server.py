"""Serves the API with uvicorn: one process, or `workers` processes on one socket.

With several processes, each keeps its counters in files of a shared
`PROMETHEUS_MULTIPROC_DIR` so that any of them can answer `/metrics` with the
totals of all (see `postline.metrics`). The directory must be set before the
processes start and must not hold files of an earlier run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from postline import tracing
from postline.api.app import SERVICE_NAME, create_app
from postline.errors import ConfigurationError
from postline.metrics import MULTIPROC_DIR_ENV
from postline.settings import Settings

#: What each worker process imports to build its app (uvicorn `factory=True`).
APP_FACTORY = "postline.api.app:app_from_environment"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    insecure_no_auth: bool = False,
) -> None:
    """Serves until SIGTERM/SIGINT.

    With `workers` > 1 each process builds its own settings from the
    environment (`APP_FACTORY`); `settings` only decides whether to start.
    """
    if not settings.api_key_list and not is_loopback(host) and not insecure_no_auth:
        raise ConfigurationError(
            f"refusing to listen on {host} without API_KEYS: set API_KEYS, bind to "
            "127.0.0.1, or pass --insecure-no-auth"
        )
    if workers < 1:
        raise ConfigurationError(f"workers must be at least 1, not {workers}")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": 10,
    }
    with metrics_directory(multiprocess=workers > 1):
        if workers == 1:
            tracing.start_from_environment(SERVICE_NAME)
            uvicorn.run(create_app(settings), **options)
        else:
            uvicorn.run(APP_FACTORY, factory=True, workers=workers, **options)


@contextlib.contextmanager
def metrics_directory(*, multiprocess: bool) -> Iterator[Path | None]:
    """Makes `PROMETHEUS_MULTIPROC_DIR` ready for this run; yields it (None: single process).

    An operator's own directory is kept but emptied of earlier runs' files;
    otherwise, for several processes, a fresh temporary one is made and
    removed at exit. Single process without one: nothing to do.
    """
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        # Stale files would add a dead run's counts, or (same pid) continue them.
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    if not multiprocess:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="postline-metrics-"))
    # Set before uvicorn starts the processes: they inherit it, and
    # prometheus_client reads it when they import it.
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
