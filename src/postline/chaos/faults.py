"""Doing and undoing each planned fault on the stack, in time, and the fault log.

Invariant: every planned fault that started is written to the fault log
exactly once, when it has healed, with the wall-clock time its action began
(`start`) and the time its undo finished (`end`: the process restarted, the
server serving again, the knob reset). An action that fails is logged with
its error; it never stops the campaign. A child that exits on its own is
logged at once as an observation, `<worker|api|simulator>_exit`, and is not
restarted (the campaign is an operator who restarts what it killed and
checks it came up, not a supervisor): only a child that dies within seconds
of such a restart is started again, a few times at most.

Everything runs on the main thread (children must be forked there, see
`guard`); only the BUSY script waits in a thread of its own.
"""

from __future__ import annotations

import heapq
import signal
import threading
import time
from pathlib import Path
from typing import Any

import redis

from postline.chaos.plan import PlannedFault
from postline.chaos.records import FaultRecord, write_line
from postline.chaos.stack import ChaosStack
from postline.embedded import free_port
from postline.queue.keys import CHAOS_SENTINEL
from postline.simulator.config import SIM_ACCOUNT_SID  # the stack's primary Twilio account

POLL_SECONDS = 0.1
#: Loops on TIME until ARGV[1] seconds have passed: Redis answers BUSY to everyone else.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local stop = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
repeat
  t = redis.call('TIME')
until tonumber(t[1]) + tonumber(t[2]) / 1000000 >= stop
return 1
"""
_PROVIDER_QUIET = {
    "hang_rate": 0.0,
    "reset_rate": 0.0,
    "error_rate": 0.0,
    "accepted_error_rate": 0.0,
    "rate_429": 0.0,
}


class FaultDriver:
    """Runs a fault plan against a stack and writes the fault log."""

    def __init__(self, stack: ChaosStack, log_path: Path) -> None:
        self._stack = stack
        self._log = log_path.open("ab")

    def close(self) -> None:
        self._log.close()

    def run(self, plan: list[PlannedFault], *, t0: float, until: float) -> None:
        """Play `plan` (offsets from monotonic `t0`), watching children until `until`."""
        events: list[tuple[float, int, int, str]] = []
        for i, fault in enumerate(plan):
            # At a tie, other faults' ends come before starts; an instant fault's own end after.
            heapq.heappush(events, (fault.at, 1, i, "start"))
            heapq.heappush(events, (fault.until, 0 if fault.hold else 2, i, "end"))
        undo: dict[int, tuple[float, dict[str, Any]]] = {}
        while events or time.monotonic() - t0 < until:
            self.watch()
            if events and time.monotonic() - t0 >= events[0][0]:
                _, _, i, what = heapq.heappop(events)
                if what == "start":
                    undo[i] = (time.time(), self._do("start", self._start, plan[i]))
                else:
                    started, state = undo.pop(i)
                    # Undone even when the start failed half-way: a restart or a
                    # SIGCONT too many is harmless, one too few ruins the run.
                    ended = self._do("end", self._end, plan[i], state)
                    errors = [e for e in (state.pop("error", None), ended.pop("error", None)) if e]
                    public = {k: v for k, v in state.items() if not k.startswith("_")}
                    detail = {**plan[i].params, **public, **ended}
                    if errors:
                        detail["error"] = "; ".join(errors)
                    fault = plan[i]
                    self._write(FaultRecord(fault.kind, fault.target, started, time.time(), detail))
                continue
            time.sleep(POLL_SECONDS)

    def watch(self) -> None:
        """Log children that exited on their own since the last look."""
        for name, code, again in self._stack.exits():
            now = time.time()
            kind = name.split(":")[0] + "_exit"
            self._write(FaultRecord(kind, name, now, now, {"returncode": code, "restarted": again}))

    def _write(self, record: FaultRecord) -> None:
        write_line(self._log, record)
        self._log.flush()

    @staticmethod
    def _do(step: str, action: Any, *args: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = action(*args) or {}
        except Exception as exc:  # a failed action is logged, the campaign goes on
            return {"error": f"{step}: {type(exc).__name__}: {exc}"}
        return result

    # -- the faults ------------------------------------------------------------

    def _start(self, fault: PlannedFault) -> dict[str, Any] | None:
        stack, kind = self._stack, fault.kind
        if kind in ("worker_kill", "api_kill"):
            # A child that had already exited on its own is started again all the same.
            return {"was_running": stack.kill(fault.target)}
        if kind == "worker_stop":
            stack.send(fault.target, signal.SIGSTOP)
        elif kind == "redis_kill":
            stack.kill_redis()
        elif kind == "redis_down":
            stack.redis.stop()
        elif kind == "redis_flushall":
            with self._redis() as client:
                client.flushall()
        elif kind == "redis_busy":
            return {"_thread": self._busy(fault.hold)}
        elif kind == "redis_readonly":
            return self._readonly()
        elif kind == "postgres_restart":
            stack.postgres.stop()  # SIGINT: PostgreSQL's fast shutdown
        elif kind.startswith("provider_"):
            stack.sim_config(**fault.params)
        elif kind == "route_down":
            stack.sim_config(account_faults={SIM_ACCOUNT_SID: fault.params})
        return None

    def _end(self, fault: PlannedFault, state: dict[str, Any]) -> dict[str, Any] | None:
        stack, kind = self._stack, fault.kind
        if kind in ("worker_kill", "api_kill"):
            stack.restart(fault.target)
        elif kind == "worker_stop":
            stack.send(fault.target, signal.SIGCONT)
        elif kind in ("redis_kill", "redis_down"):
            stack.restart_redis()
        elif kind == "redis_busy" and "_thread" in state:
            thread: _Busy = state["_thread"]
            thread.join(timeout=fault.hold + 15)
            return {"script": thread.outcome}
        elif kind == "redis_readonly":
            with self._redis() as client:
                client.execute_command("REPLICAOF", "NO", "ONE")
                if "_sentinel" not in state:
                    return None
                kept = client.get(CHAOS_SENTINEL) == state["_sentinel"]
                client.delete(CHAOS_SENTINEL)
            return {"data_kept": kept}
        elif kind == "postgres_restart":
            stack.restart_postgres()
        elif kind.startswith("provider_"):
            stack.sim_config(**_PROVIDER_QUIET)
        elif kind == "route_down":
            stack.sim_config(account_faults={})
        return None

    def _redis(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis.from_url(
            self._stack.redis.url, socket_timeout=timeout, socket_connect_timeout=2
        )

    def _busy(self, seconds: float) -> _Busy:
        with self._redis() as client:
            # Redis 6.2's name; 7 calls it busy-reply-threshold and keeps this alias.
            client.config_set("lua-time-limit", 50)
        busy = _Busy(self._redis(timeout=seconds + 10), seconds)
        busy.start()
        return busy

    def _readonly(self) -> dict[str, Any]:
        sentinel = f"{time.time():.6f}".encode()
        with self._redis() as client:
            client.set(CHAOS_SENTINEL, sentinel)
            # A master that cannot be reached: writes get READONLY, the data set stays.
            client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        return {"_sentinel": sentinel}


class _Busy(threading.Thread):
    """Runs the BUSY script; its client waits as long as the script runs."""

    def __init__(self, client: redis.Redis, seconds: float) -> None:
        super().__init__(name="redis-busy", daemon=True)
        self._client = client
        self._seconds = seconds
        self.outcome = "running"

    def run(self) -> None:
        try:
            self._client.eval(BUSY_SCRIPT, 0, str(self._seconds))
            self.outcome = "ran"
        except redis.RedisError as exc:
            self.outcome = f"{type(exc).__name__}: {exc}"
        finally:
            self._client.close()
