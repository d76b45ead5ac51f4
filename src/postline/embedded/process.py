"""Child-process plumbing shared by the embedded servers.

Spawning (minimal environment, optional privilege drop, own session, a
parent-death signal), running one-shot tools such as ``initdb``, stopping with a
polite signal then SIGKILL, and recognising a server that a killed launcher
left running on the same data directory.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from postline.runtime import die_with_parent

logger = logging.getLogger("postline.embedded")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared, started or stopped."""


@dataclass(frozen=True)
class ServiceUser:
    """The unprivileged account servers run as when the launcher is root."""

    name: str
    uid: int
    gid: int


def child_env() -> dict[str, str]:
    """Environment for server processes.

    Deliberately minimal: the launcher's environment may hold provider
    secrets, and PG*/LANG variables would make initdb and psql behave
    differently from one machine to the next.
    """
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    return env


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    user: ServiceUser | None,
    death_signal: signal.Signals,
) -> subprocess.Popen[bytes]:
    """Start a long-running server whose output is appended to `log_path`.

    The server gets its own session so that Ctrl-C in a terminal reaches only
    the launcher, which then stops the server in order.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv is built from our own bundled binaries
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=child_env(),
            start_new_session=True,
            preexec_fn=die_with_parent(death_signal),
            user=None if user is None else user.uid,
            group=None if user is None else user.gid,
            # Without this the child would keep root's supplementary groups.
            extra_groups=None if user is None else [],
        )


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    user: ServiceUser | None,
    timeout: float,
    stdin: str | None = None,
) -> str:
    """Run a short-lived tool (initdb, psql) and return its stdout, or raise with its stderr."""
    try:
        result = subprocess.run(  # noqa: S603 - argv is built from our own bundled binaries
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=child_env(),
            timeout=timeout,
            check=False,
            user=None if user is None else user.uid,
            group=None if user is None else user.gid,
            extra_groups=None if user is None else [],
        )
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedServerError(f"{argv[0]} did not finish within {timeout:g}s") from exc
    if result.returncode != 0:
        raise EmbeddedServerError(
            f"{Path(argv[0]).name} failed with exit code {result.returncode}:\n"
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def stop_process(proc: subprocess.Popen[bytes], *, sig: signal.Signals, timeout: float) -> None:
    """Send `sig`, wait up to `timeout`, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("embedded server pid=%d ignored %s; killing it", proc.pid, sig.name)
        proc.kill()
        proc.wait(timeout)


def log_tail(path: Path, *, since: int = 0, lines: int = 20) -> str:
    """The last `lines` lines of `path` written after byte offset `since`."""
    try:
        with path.open("rb") as log:
            log.seek(max(since, log.seek(0, os.SEEK_END) - 8192))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def read_pid(pid_file: Path) -> int | None:
    """The pid on the first line of a server's pid file, or None if absent or unreadable."""
    try:
        first = pid_file.read_text().split("\n", 1)[0].strip()
        pid = abs(int(first))  # a standalone postgres backend writes its pid negated
    except (FileNotFoundError, ValueError):
        return None
    return pid or None


def find_leftover(pid: int, *, data_dir: Path, names: tuple[str, ...]) -> psutil.Process | None:
    """The live process `pid` if it is one of our servers working in `data_dir`.

    Both PostgreSQL and Redis chdir into their data directory, so the working
    directory tells ours apart from an unrelated process that reused the pid.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() not in names:
            return None
        if Path(proc.cwd()).resolve() != data_dir.resolve():
            return None
    except (psutil.Error, OSError):  # gone, or another user's process: not ours
        return None
    return proc


def stop_leftover(proc: psutil.Process, *, sig: signal.Signals, timeout: float) -> None:
    """Stop a server that is not our child: `sig`, bounded wait, then SIGKILL."""
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        logger.warning("leftover server pid=%d ignored %s; killing it", proc.pid, sig.name)
        proc.kill()
        proc.wait(timeout)


def kill_orphans(*, data_dir: Path, names: tuple[str, ...], timeout: float) -> None:
    """SIGKILL server processes still working in `data_dir` once their parent is gone.

    PostgreSQL backends outlive a SIGKILLed postmaster for a moment (or for
    good, if stuck), and a new postmaster refuses to start while they hold
    the old shared memory. They lead process groups of their own, so they are
    found by working directory; call this only when no server owns the
    directory any more.
    """
    orphans = []
    for proc in psutil.process_iter(["name", "status"]):
        try:
            if proc.info["name"] not in names or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if Path(proc.cwd()).resolve() == data_dir:
                proc.kill()
                orphans.append(proc)
        except (psutil.Error, OSError):
            continue
    if orphans:
        logger.warning("killed %d orphaned server processes in %s", len(orphans), data_dir)
        psutil.wait_procs(orphans, timeout=timeout)
