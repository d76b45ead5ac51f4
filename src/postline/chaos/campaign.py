"""One fault campaign, from nothing to a verdict.

Order, every step bounded in time: start the stack; from one common start
instant run the load (a thread) and play the fault plan (the main thread);
wait for the load; drain (until every acknowledged message reached the
provider and the provider has been quiet for `QUIET_SECONDS`, at most
`drain` seconds); stop every child, so the logs are final; judge the three
logs; stop the servers.

The run folder keeps `run.json` (seed, token, settings, features),
`client.jsonl`, `provider.jsonl`, `faults.jsonl`, `report.json`, every
child's log and, with a feature on, `stats.jsonl` (what the API said of
pacing and routes while it ran), so `check_run` can judge any run again
without starting anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from postline.chaos.checker import check
from postline.chaos.evidence import feature_figures
from postline.chaos.faults import FaultDriver
from postline.chaos.features import PACING_DRAIN_SECONDS, Features, child_settings, paced_load
from postline.chaos.load import Load, LoadResult, LoadSpec
from postline.chaos.observe import StatsSampler
from postline.chaos.plan import KINDS, Kind, PlannedFault, plan_faults
from postline.chaos.records import client_records, fault_records, provider_calls, read_lines
from postline.chaos.stack import RECONCILE_INTERVAL_SECONDS, VISIBILITY_TIMEOUT_SECONDS, ChaosStack
from postline.chaos.summary import report_json, summary_lines
from postline.simulator.config import SIM_ACCOUNT_SID, SIM_BACKUP_ACCOUNT_SID

DRAIN_SECONDS = RECONCILE_INTERVAL_SECONDS + VISIBILITY_TIMEOUT_SECONDS + 30
QUIET_SECONDS = VISIBILITY_TIMEOUT_SECONDS + 2  # long enough for a take-over to show
STATS_LOG = "stats.jsonl"  # a feature campaign's readings of /api/v1/stats (`observe`)
START_DELAY = 0.5  # between starting the load thread and its first arrival

Echo = Callable[[str], None]


@dataclass(frozen=True)
class CampaignSpec:
    duration: float
    seed: int
    rate: float
    keys: int
    workers: int
    run_dir: Path
    drain: float = DRAIN_SECONDS
    keep_data: bool = False
    kinds: tuple[Kind, ...] = KINDS
    features: Features = field(default_factory=Features)


def default_drain(features: Features) -> float:
    """The drain of a campaign with `features`: pacing slows its keys' last backlog."""
    return DRAIN_SECONDS + (PACING_DRAIN_SECONDS if features.pacing else 0.0)


def run(spec: CampaignSpec, echo: Echo) -> int:
    """Run the campaign; 0 when the four counts are zero, 1 otherwise."""
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()

    def say(line: str) -> None:
        echo(f"[{time.monotonic() - begun:5.1f}s] {line}")

    info = _run_info(spec)
    _write_json(run_dir / "run.json", info)
    plan = plan_faults(
        seed=spec.seed, duration=spec.duration, workers=spec.workers, kinds=spec.kinds
    )
    say(f"chaos: seed {spec.seed}, {len(plan)} faults planned, logs in {run_dir}")
    data_dir = Path(tempfile.mkdtemp(prefix="postline-chaos-"))
    try:
        with (
            _sigterm_unwinds(),
            ChaosStack(
                run_dir=run_dir,
                data_dir=data_dir,
                workers=spec.workers,
                seed=spec.seed,
                settings=child_settings(spec.features, rate=spec.rate, keys=spec.keys),
            ) as stack,
        ):
            say(f"stack up: api {stack.api_url}, simulator {stack.sim_url}")
            result = _play(stack, spec, plan, info, say)
            stack.stop_children()
    finally:
        for server_log in (*data_dir.glob("*/redis.log*"), *data_dir.glob("*/postgres.log*")):
            shutil.copy(server_log, run_dir / "logs" / server_log.name)
        if not spec.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    info["skipped"] = result.skipped
    _write_json(run_dir / "run.json", info)
    return check_run(run_dir, echo)


def _run_info(spec: CampaignSpec) -> dict[str, Any]:
    """`run.json`: what the checker and the summary need to know of the run."""
    info: dict[str, Any] = {
        "seed": spec.seed,
        "duration": spec.duration,
        "rate": spec.rate,
        "keys": spec.keys,
        "workers": spec.workers,
        "token": secrets.token_hex(6),
        "mix": sorted(kind.name for kind in spec.kinds),
        "features": list(spec.features.names),
        "started": time.time(),
    }
    if spec.features.failover:
        info["accounts"] = {"primary": SIM_ACCOUNT_SID, "backup": SIM_BACKUP_ACCOUNT_SID}
    if spec.features.pacing:
        info["pacing"] = dataclasses.asdict(paced_load(rate=spec.rate, keys=spec.keys))
    return info


def _play(
    stack: ChaosStack,
    spec: CampaignSpec,
    plan: list[PlannedFault],
    info: dict[str, Any],
    say: Echo,
) -> LoadResult:
    """The load and the faults from one start instant, then the drain."""
    run_dir = spec.run_dir
    paced = info.get("pacing", {}).get("keys", 0)
    load_spec = LoadSpec(
        stack.api_url,
        spec.rate,
        spec.keys,
        spec.duration,
        spec.seed,
        info["token"],
        paced_keys=paced,
    )
    load = Load(load_spec, run_dir / "client.jsonl")
    driver = FaultDriver(stack, run_dir / "faults.jsonl")
    sampler = StatsSampler(stack.api_url, run_dir / STATS_LOG) if spec.features.names else None
    if sampler is not None:
        sampler.start()
    try:
        t0 = time.monotonic() + START_DELAY
        thread = threading.Thread(target=load.run, args=(t0,), name="load", daemon=True)
        thread.start()
        driver.run(plan, t0=t0, until=spec.duration)
        thread.join(timeout=spec.duration + 60)
        say(f"load done: {load.result}; draining (at most {spec.drain:g}s)")
        info["drain"] = _drain(stack, driver, run_dir, info["token"], spec.drain)
        say(f"drain: {info['drain']}")
    finally:
        if sampler is not None:
            sampler.stop()
        driver.close()
    return load.result


def check_run(run_dir: Path, echo: Echo) -> int:
    """Judge a run folder's logs; prints the summary, writes report.json."""
    info = orjson.loads((run_dir / "run.json").read_bytes())
    calls = provider_calls(read_lines(run_dir / "provider.jsonl"), info["token"])
    report = check(
        client_records(read_lines(run_dir / "client.jsonl")),
        calls,
        fault_records(read_lines(run_dir / "faults.jsonl")),
    )
    stats = run_dir / STATS_LOG
    samples = list(read_lines(stats)) if stats.exists() else []
    figures = feature_figures(info, calls, samples)
    for line in summary_lines(report, info, figures):
        echo(line)
    _write_json(run_dir / "report.json", report_json(report, info, figures))
    return 0 if report.ok else 1


def _drain(stack: ChaosStack, driver: FaultDriver, run_dir: Path, token: str, limit: float) -> str:
    """Wait until the acknowledged messages reached the provider and it went quiet."""
    client = client_records(read_lines(run_dir / "client.jsonl"))
    waiting = {(r.key, r.n) for r in client if r.acknowledged}
    tail = _Tail(stack.call_log)
    started = last_call = time.monotonic()
    while True:
        driver.watch()
        rows = tail.read()
        if rows:
            last_call = time.monotonic()
            waiting -= {(c.key, c.n) for c in provider_calls(rows, token) if c.accepted}
        now = time.monotonic()
        if not waiting and now - last_call >= QUIET_SECONDS:
            return f"settled after {now - started:.1f}s"
        if now - started >= limit:
            return f"gave up after {limit:g}s with {len(waiting)} acknowledged not delivered"
        time.sleep(0.5)


class _Tail:
    """The complete lines appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [orjson.loads(line) for line in complete.splitlines() if line.strip()]


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the stack is stopped either way."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_json(path: Path, value: object) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
