"""The life cycle shared by the embedded servers.

``EmbeddedServer`` prepares a data directory, clears whatever a killed
previous launcher left behind, spawns the server on a port, waits (bounded)
until it serves, and stops it: polite signal, bounded wait, SIGKILL.
Subclasses say how to prepare, what to run and how to tell it is ready.
"""

from __future__ import annotations

import abc
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from postline.embedded.ports import free_port
from postline.embedded.privileges import service_user
from postline.embedded.process import (
    EmbeddedServerError,
    ServiceUser,
    find_leftover,
    kill_orphans,
    log_tail,
    logger,
    read_pid,
    spawn,
    stop_leftover,
    stop_process,
)

_PORT_ATTEMPTS = 3  # an automatically chosen port can be taken before the server binds it
_POLL_INTERVAL = 0.05


class _PortTaken(Exception):
    """The server exited because its port was already bound; args[0] is its log tail."""


class EmbeddedServer(abc.ABC):
    """A database server run as our child process on 127.0.0.1."""

    kind: ClassVar[str]
    process_names: ClassVar[tuple[str, ...]]
    stop_signal: ClassVar[signal.Signals]

    def __init__(self, data_dir: Path, *, port: int | None, timeout: float) -> None:
        # Resolved so that comparing with a leftover server's cwd is meaningful.
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._requested_port = port
        self._port = port
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._user: ServiceUser | None = None

    @property
    @abc.abstractmethod
    def log_path(self) -> Path:
        """Where the server writes its log."""

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Make the data directory ready and clear leftovers; runs before every start."""

    @abc.abstractmethod
    def _command(self, port: int) -> list[str]:
        """The argv that runs the server on `port`."""

    @abc.abstractmethod
    def _is_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        """Whether `proc` itself (not some other process on `port`) serves requests."""

    @abc.abstractmethod
    def _finish(self, port: int) -> str:
        """Post-start work once ready; returns the connection URL."""

    def _cleanup(self) -> None:  # noqa: B027 - optional hook, most servers need none
        """Remove per-run resources after the server stopped."""

    @property
    def url(self) -> str:
        """Connection URL of the running server."""
        if self._url is None:
            raise EmbeddedServerError(f"embedded {self.kind} is not started")
        return self._url

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1, known once started (or when given explicitly)."""
        if self._port is None:
            raise EmbeddedServerError(f"embedded {self.kind} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """Pid of the server process while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    def start(self) -> str:
        """Start the server (a no-op if it runs already) and return its URL."""
        if self.pid is not None:
            return self.url
        self._user = service_user()
        try:
            self._prepare()
            port = self._spawn_until_bound()
            self._url = self._finish(port)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "embedded %s ready url=%s data_dir=%s log=%s pid=%s",
            self.kind,
            self._url,
            self.data_dir,
            self.log_path,
            self.pid,
        )
        return self._url

    def _spawn_until_bound(self) -> int:
        self._rotate_log()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            try:
                self._wait_ready(port)
            except _PortTaken as taken:
                if attempt == attempts:
                    raise EmbeddedServerError(
                        f"embedded {self.kind}: port {port} already in use; "
                        f"last lines of {self.log_path}:\n{taken.args[0]}"
                    ) from None
                logger.info(
                    "embedded %s lost port %d to another process; retrying", self.kind, port
                )
                continue
            return port
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self, port: int) -> None:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._port = port
        proc = self._proc = spawn(
            self._command(port),
            log_path=self.log_path,
            cwd=self.data_dir,
            user=self._user,
            death_signal=self.stop_signal,
        )
        deadline = time.monotonic() + self._timeout
        while not self._is_ready(proc, port):
            if proc.poll() is not None:
                tail = log_tail(self.log_path, since=log_start)
                if "Address already in use" in tail:
                    raise _PortTaken(tail)
                raise EmbeddedServerError(
                    f"embedded {self.kind} exited with code {proc.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"embedded {self.kind} did not accept connections on port {port} within "
                    f"{self._timeout:g}s; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path, since=log_start)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _rotate_log(self) -> None:
        # Keep the previous run's log: it explains why that run died, if it did.
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))

    def _clear_previous_run(self, pid_file: Path) -> None:
        """Deal with a pid file left by an earlier launcher on this data directory.

        A server still running there is stopped, not reused: it was started
        with another port and settings than this launcher asks for, and nobody
        would ever stop it. A pid file whose process is gone is removed.
        """
        if not pid_file.exists():
            return
        pid = read_pid(pid_file)
        leftover = None
        if pid is not None:
            leftover = find_leftover(pid, data_dir=self.data_dir, names=self.process_names)
        if leftover is not None:
            logger.warning(
                "embedded %s: stopping server pid=%d left running on data_dir=%s",
                self.kind,
                pid,
                self.data_dir,
            )
            stop_leftover(leftover, sig=self.stop_signal, timeout=self._timeout)
        else:
            logger.info("embedded %s: removing stale pid file %s", self.kind, pid_file)
        kill_orphans(data_dir=self.data_dir, names=self.process_names, timeout=self._timeout)
        pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server: polite signal, bounded wait, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        self._url = None
        if proc is not None and proc.poll() is None:
            stop_process(proc, sig=self.stop_signal, timeout=self._timeout)
            logger.info("embedded %s stopped pid=%d", self.kind, proc.pid)
            # Only now, while nobody else can own the directory: a server that
            # had died before stop() may since have been replaced by another one.
            kill_orphans(data_dir=self.data_dir, names=self.process_names, timeout=self._timeout)
        self._cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
