"""Runs `postline` subcommands as real subprocesses, the way a user does."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.support.harness import free_port


def postline(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "postline", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n{log.read_text()[-3000:]}")


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `check` until it returns something truthy; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the process did not stop on SIGTERM") from None


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = postline(args, env, log)
    try:
        if ready_url:
            wait_http(ready_url, proc, log)
        yield proc
    finally:
        stop(proc)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any URL or Postline flag variable, plus `extra`."""
    dropped = ("DATABASE_URL", "REDIS_URL", "API_KEYS", "LOG_DIR", "POSTLINE_")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**kept, **extra}


def run_postline(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`postline <args>` to its end, its output captured, with nothing on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "postline", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.contextmanager
def socket_listening() -> Iterator[str]:
    """A port some other program listens on, as a string for the command line."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


def start_dev(
    cwd: Path, api_port: int, sim_port: int, metrics_port: int | None = None,
    urls: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """`postline dev` in `cwd`: embedded servers, or the `DATABASE_URL`/`REDIS_URL` in `urls`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(urls or {})
    # A port of the test's own, not 9101, so parallel runs do not meet there.
    metrics_port = metrics_port or free_port()
    with (cwd / "dev.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "postline", "dev", "--port", str(api_port),
             "--simulator-port", str(sim_port), "--worker-metrics-port", str(metrics_port)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def descendants(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def stop_dev(proc: subprocess.Popen[bytes], family: list[psutil.Process]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"left running: {[p.info for p in alive]}"
