"""A minute of Postline's own fault campaign: `postline chaos` as a user runs it.

The campaign starts its own PostgreSQL, Redis, simulator, API and three
workers, loads them at 150 msg/s over 100 ordering keys while a seeded
schedule of faults hits them, and judges the run from the client's,
provider's and fault logs (see RELIABILITY.md). Seed 115's minute holds
eleven of the twelve fault kinds (the 30-second Redis outage does not fit).
With failover and pacing on, the same seed's minute also holds both shapes
of `route_down` and a `provider_throttle`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.marks import LOADS_THE_MACHINE

SEED = 115
ZERO = {
    "lost": 0,
    "unexplained_duplicates": 0,
    "order_violations": 0,
    "one_at_a_time_violations": 0,
}


def campaign(tmp_path: Path, *options: str) -> tuple[dict[str, Any], str, int]:
    """`postline chaos` for the minute of `SEED`: its report, its output, its exit code."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_CHAOS_")}
    argv = [sys.executable, "-m", "postline", "chaos", "--duration", "60", "--seed", str(SEED)]
    result = subprocess.run(
        [*argv, *options, "--out", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    print(result.stdout, result.stderr, sep="\n")
    assert (run_dir / "report.json").exists(), result.stderr[-3000:]
    return json.loads((run_dir / "report.json").read_text()), result.stdout, result.returncode


@pytest.mark.slow
@pytest.mark.timeout(420)
@LOADS_THE_MACHINE
def test_a_minute_under_faults_loses_nothing_and_keeps_per_key_order(tmp_path: Path) -> None:
    report, stdout, returncode = campaign(tmp_path)

    assert sum(report["faults"].values()) >= 10, "the campaign injected its faults"
    assert report["misfired"] == []
    assert report["acknowledged"] > 1000
    assert report["counts"] == ZERO, stdout
    assert returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(420)
@LOADS_THE_MACHINE
def test_a_minute_with_failover_and_pacing_keeps_every_promise(tmp_path: Path) -> None:
    report, stdout, returncode = campaign(tmp_path, "--features", "failover,pacing")

    assert {"route_down", "provider_throttle"} <= report["faults"].keys()
    assert report["misfired"] == []
    assert report["acknowledged"] > 1000
    assert report["counts"] == ZERO, stdout
    # The backup account accepted messages; the paced sender's messages waited for slots.
    assert report["observed"] == {"failover": True, "pacing": True}, stdout
    assert returncode == 0
