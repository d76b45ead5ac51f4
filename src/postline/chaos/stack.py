"""The campaign's own Postline: servers and processes that faults may kill and restart.

Invariant: everything listens on 127.0.0.1, on ports and in folders of this
campaign only, and nothing outlives it. The servers are the embedded
PostgreSQL and Redis (AOF, `appendfsync everysec`) on fixed ports, so a
restarted server is found where the old one was. The simulator, the API
and the workers are `postline` subprocesses, each the leader of its own
process group, started through `guard` from the main thread (SIGKILL if the
campaign dies) and killed group and all by `stop_children`.

Children run with short timings (`CHILD_SETTINGS`) so that recovery fits
in a short campaign, with the settings of the campaign's features
(`chaos.features`: a backup Twilio account, which the simulator reads from
the same variables and accepts; pacing), and with no inherited Postline
variable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from postline.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from postline.runtime import wait_http
from postline.settings import Settings
from postline.simulator.config import SIM_ACCOUNT_SID, SIM_AUTH_TOKEN, SIM_SENDGRID_KEY
from postline.store.migrate import upgrade

# A lease (the visibility timeout) must outlive a send plus its renewal room
# (PROVIDER_TIMEOUT_SECONDS + 5, which Postline's settings enforce): a live
# send is never taken over, and a frozen worker's sends are within seconds.
PROVIDER_TIMEOUT_SECONDS = 3.0
VISIBILITY_TIMEOUT_SECONDS = 8.0
RECONCILE_INTERVAL_SECONDS = 2.0
CHILD_SETTINGS = {
    "MAX_ATTEMPTS": "100",  # transient faults must never exhaust a message's budget
    "RETRY_BASE_SECONDS": "0.2",
    "RETRY_MAX_SECONDS": "2",
    "VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
    "RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL_SECONDS),
    "PROVIDER_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
    "WORKER_CONCURRENCY": "64",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
}
# Every CLI option's variable (POSTLINE_<COMMAND>_<OPTION>) and the metrics' folder.
_INHERITED_PREFIXES = ("POSTLINE_", "PROMETHEUS_")
RESTART_ATTEMPTS = 5
EARLY_EXIT_SECONDS = 3.0  # a restarted process that dies this soon is started again


@dataclass
class Child:
    """A `postline` subprocess slot: `worker:0`, `api`, `simulator`."""

    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False  # we ended it: its exit is not news
    started: float = 0.0  # monotonic
    retries: int = 0  # early exits after a restart that are met with another start


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment minus every Postline setting, plus `extra`."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in settings and not key.upper().startswith(_INHERITED_PREFIXES)
    }
    return {**env, **extra}


class ChaosStack:
    """Servers and children of one campaign; `with` starts them and stops everything."""

    def __init__(
        self,
        *,
        run_dir: Path,
        data_dir: Path,
        workers: int,
        seed: int,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.postgres = EmbeddedPostgres(data_dir / "postgres", port=free_port())
        self.redis = EmbeddedRedis(data_dir / "redis", port=free_port())
        self.sim_port, self.api_port = free_port(), free_port()
        self.call_log = run_dir / "provider.jsonl"
        self.workers = workers
        self.seed = seed
        self.children: dict[str, Child] = {}
        self._settings = dict(settings or {})  # a feature's, on top of CHILD_SETTINGS
        self._env: dict[str, str] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        database_url = self.postgres.start()
        redis_url = self.redis.start()
        upgrade(database_url)
        self._env = child_env(
            {
                **CHILD_SETTINGS,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "TWILIO_ACCOUNT_SID": SIM_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": SIM_AUTH_TOKEN,
                "TWILIO_BASE_URL": self.sim_url,
                "SENDGRID_API_KEY": SIM_SENDGRID_KEY,
                "SENDGRID_BASE_URL": self.sim_url,
                **self._settings,
            }
        )
        sim_args = ["simulator", "--port", str(self.sim_port), "--no-callbacks"]
        sim_args += ["--seed", str(self.seed), "--request-log", str(self.call_log)]
        self._add("simulator", sim_args)
        self._add("api", ["api", "--port", str(self.api_port)])
        for i in range(self.workers):
            self._add(f"worker:{i}", ["worker"])
        sim, api = self.children["simulator"], self.children["api"]
        wait_http(f"{self.sim_url}/_sim/health", timeout=30, proc=sim.proc)
        wait_http(f"{self.api_url}/health", timeout=60, proc=api.proc)

    def _add(self, name: str, args: list[str]) -> None:
        log = self.logs / (name.replace(":", "-") + ".log")
        self.children[name] = child = Child(name, args, log)
        self._spawn(child)

    def _spawn(self, child: Child) -> None:
        # The guard's death signal is tied to the forking thread: only the main one lives long.
        assert threading.current_thread() is threading.main_thread()
        argv = [sys.executable, "-m", "postline.chaos.guard", str(os.getpid()), *child.args]
        with child.log.open("ab") as out:
            child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv,
                env=self._env,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.killed = False
        child.started = time.monotonic()

    # -- faults ----------------------------------------------------------------

    def send(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to the child's whole process group (no-op when it is gone)."""
        proc = self.children[name].proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def kill(self, name: str) -> bool:
        """kill -9 the child and reap it; False when it was not running any more."""
        child = self.children[name]
        running = child.proc is not None and child.proc.poll() is None
        child.killed = True
        self.send(name, signal.SIGKILL)
        if child.proc is not None:
            child.proc.wait(timeout=30)
        return running

    def restart(self, name: str) -> None:
        """Start the child again, like an operator who then checks it came up.

        Does not wait: `exits` starts it once more if it dies within
        `EARLY_EXIT_SECONDS` (say, because a server it needs is down), up to
        `RESTART_ATTEMPTS` starts in all.
        """
        child = self.children[name]
        self._spawn(child)
        child.retries = RESTART_ATTEMPTS - 1

    def exits(self) -> list[tuple[str, int, bool]]:
        """Children that ended on their own since the last call: (name, code, started again)."""
        ended = []
        for child in self.children.values():
            if child.proc is None or child.killed or child.proc.poll() is None:
                continue
            again = child.retries > 0 and time.monotonic() - child.started < EARLY_EXIT_SECONDS
            ended.append((child.name, child.proc.returncode, again))
            if again:
                child.retries -= 1
                self._spawn(child)
            else:
                child.killed = True  # reported once, and left alone: no supervisor
        return ended

    def kill_redis(self) -> None:
        """kill -9 Redis: whatever the AOF had not written in the last second is gone."""
        pid = self.redis.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.redis.stop()  # reaps it; nothing else is left to stop

    def restart_redis(self) -> None:
        self._retry(self.redis.start)

    def restart_postgres(self) -> None:
        self._retry(self.postgres.start)

    @staticmethod
    def _retry(start: Any) -> None:
        for attempt in range(1, RESTART_ATTEMPTS + 1):
            try:
                start()
                return
            except Exception:
                if attempt == RESTART_ATTEMPTS:
                    raise
                time.sleep(1.0)

    def sim_config(self, **knobs: Any) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback simulator
            f"{self.sim_url}/_sim/config", data=orjson.dumps(knobs), method="PUT"
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - as above
            pass

    # -- the end ---------------------------------------------------------------

    def stop_children(self) -> None:
        """Workers and API first (no new provider calls), then the simulator."""
        order = sorted(self.children.values(), key=lambda c: c.name == "simulator")
        for child in order:
            child.killed = True
            self.send(child.name, signal.SIGCONT)  # a stopped process cannot die by SIGTERM
            self.send(child.name, signal.SIGKILL if child.name != "simulator" else signal.SIGTERM)
        for child in order:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.send(child.name, signal.SIGKILL)
                    child.proc.wait(timeout=15)

    def close(self) -> None:
        try:
            self.stop_children()
        finally:
            try:
                self.redis.stop()
            finally:
                self.postgres.stop()
