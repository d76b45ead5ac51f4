"""Process-level plumbing shared by the launchers, the API and the workers.

Concerns about the life of a process: how the garbage collector treats the
start-up heap; how a child process is tied to its parent so that it never
outlives it (the parent-death signal, in one place for the dev launcher, the
benchmarks, the embedded servers and the fault campaign's guard); starting a
`postline` child and waiting until it answers HTTP. Imports only the standard
library: the guard runs this before it becomes `postline`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("postline.runtime")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def settle_garbage_collector() -> None:
    """Moves everything alive at start-up out of the collector's sight.

    Measured: full collections of the start-up heap (modules, schemas, routes)
    paused the API for 50-60 ms every few seconds under load, which was the
    whole of its p99 accept latency. Frozen objects are never scanned again.
    """
    gc.collect()
    gc.freeze()


def _prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux; None elsewhere (no parent-death signal there)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _arm(prctl: Callable[..., int] | None, sig: signal.Signals, parent: int) -> None:
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal took effect
        os._exit(1)


def exit_with_parent(sig: signal.Signals, *, parent: int) -> None:
    """Asks the kernel for `sig` when `parent` dies; exits at once if it is already gone.

    For a process that arms itself (it survives exec). The signal fires when
    the *thread* that forked this process exits, so that thread must be the
    parent's main one.
    """
    _arm(_prctl(), sig, parent)


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel send `sig` to the child when we die.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
    process. The main thread only exits with the process, so the signal is
    armed only when spawning from the main thread; elsewhere the caller's own
    stop must do. None when there is nothing to arm.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    if threading.current_thread() is not threading.main_thread():
        logger.debug("child spawned off the main thread: no parent-death signal")
        return None
    # Resolved in the parent, so that the forked child runs as little code as possible.
    parent = os.getpid()

    def arm() -> None:
        _arm(prctl, sig, parent)

    return arm


def spawn(
    args: list[str], env: dict[str, str], log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Starts `python -m postline <args>` as a child that gets SIGTERM when we die."""
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - owned by the child
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "postline", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Returns once `url` answers at all; raises if `proc` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        # a loopback URL the caller built, never user input
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
