"""The fault driver's timeline against a stand-in stack: order, the fault log, failures, exits."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from postline.chaos.faults import FaultDriver
from postline.chaos.plan import PlannedFault
from postline.chaos.records import fault_records, read_lines
from postline.simulator.config import SIM_ACCOUNT_SID


class FakeServer:
    def __init__(self, calls: list[tuple[Any, ...]], name: str) -> None:
        self._calls = calls
        self._name = name

    def stop(self) -> None:
        self._calls.append((self._name, "stop"))


class FakeStack:
    """Records what the driver asks of it; `fail` names actions that raise."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail or set()
        self.exited: list[tuple[str, int, bool]] = []
        self.postgres = FakeServer(self.calls, "postgres")
        self.redis = FakeServer(self.calls, "redis")

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise RuntimeError(f"{call[0]} failed")

    def kill(self, name: str) -> bool:
        self._call("kill", name)
        return True

    def restart(self, name: str) -> None:
        self._call("restart", name)

    def send(self, name: str, sig: signal.Signals) -> None:
        self._call("send", name, sig)

    def kill_redis(self) -> None:
        self._call("kill_redis")

    def restart_redis(self) -> None:
        self._call("restart_redis")

    def restart_postgres(self) -> None:
        self._call("restart_postgres")

    def sim_config(self, **knobs: Any) -> None:
        self._call("sim_config", knobs)

    def exits(self) -> list[tuple[str, int, bool]]:
        found, self.exited = self.exited, []
        return found


def play(stack: FakeStack, plan: list[PlannedFault], tmp_path: Path, until: float) -> list[Any]:
    driver = FaultDriver(stack, tmp_path / "faults.jsonl")  # type: ignore[arg-type]
    try:
        driver.run(plan, t0=time.monotonic(), until=until)
    finally:
        driver.close()
    return fault_records(read_lines(tmp_path / "faults.jsonl"))


def test_faults_start_and_heal_in_time_order_and_are_logged_once_healed(tmp_path: Path) -> None:
    stack = FakeStack()
    plan = [
        PlannedFault(0.0, "worker_kill", "worker:1", 0.2),
        PlannedFault(0.05, "provider_reset", "provider", 0.1, {"reset_rate": 0.3}),
        PlannedFault(0.3, "worker_stop", "worker:0", 0.1),
        PlannedFault(0.3, "postgres_restart", "postgres", 0.0),
    ]

    records = play(stack, plan, tmp_path, until=0.5)

    quiet = {
        "hang_rate": 0.0,
        "reset_rate": 0.0,
        "error_rate": 0.0,
        "accepted_error_rate": 0.0,
        "rate_429": 0.0,
    }
    assert stack.calls == [
        ("kill", "worker:1"),
        ("sim_config", {"reset_rate": 0.3}),
        ("sim_config", quiet),
        ("restart", "worker:1"),
        ("send", "worker:0", signal.SIGSTOP),
        ("postgres", "stop"),
        ("restart_postgres",),
        ("send", "worker:0", signal.SIGCONT),
    ]
    assert [r.kind for r in records] == [
        "provider_reset",
        "worker_kill",
        "postgres_restart",
        "worker_stop",
    ]
    assert all(r.start <= r.end for r in records)
    assert records[0].detail == {"reset_rate": 0.3}
    kill = records[1]
    assert kill.detail == {"was_running": True}
    assert kill.end - kill.start >= 0.1  # healed after its hold, not at once


def test_a_failed_action_is_logged_and_the_fault_is_still_undone(tmp_path: Path) -> None:
    stack = FakeStack(fail={"kill"})
    plan = [PlannedFault(0.0, "api_kill", "api", 0.05)]

    (record,) = play(stack, plan, tmp_path, until=0.1)

    assert stack.calls == [("kill", "api"), ("restart", "api")]
    assert record.detail == {"error": "start: RuntimeError: kill failed"}


def test_children_that_exit_on_their_own_are_logged_as_observations(tmp_path: Path) -> None:
    stack = FakeStack()
    stack.exited = [("worker:2", 1, False), ("api", 3, True)]

    records = play(stack, [], tmp_path, until=0.05)

    assert [(r.kind, r.target, r.detail) for r in records] == [
        ("worker_exit", "worker:2", {"returncode": 1, "restarted": False}),
        ("api_exit", "api", {"returncode": 3, "restarted": True}),
    ]
    assert all(r.start == r.end for r in records)


def test_route_down_faults_the_primary_account_only_and_clears_it(tmp_path: Path) -> None:
    stack = FakeStack()
    plan = [
        PlannedFault(0.0, "route_down", "route", 0.1, {"hang_ms": 4000}),
        PlannedFault(0.02, "provider_throttle", "provider", 0.05, {"rate_429": 0.5}),
    ]

    records = play(stack, plan, tmp_path, until=0.2)

    assert stack.calls[0] == (
        "sim_config",
        {"account_faults": {SIM_ACCOUNT_SID: {"hang_ms": 4000}}},
    )
    assert stack.calls[1] == ("sim_config", {"rate_429": 0.5})
    assert stack.calls[2][1]["rate_429"] == 0.0  # the throttle's end quiets every knob
    assert stack.calls[3] == ("sim_config", {"account_faults": {}})
    assert [(r.kind, r.detail) for r in records] == [
        ("provider_throttle", {"rate_429": 0.5}),
        ("route_down", {"hang_ms": 4000}),
    ]
