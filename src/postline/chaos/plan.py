"""The seeded fault schedule: which fault hits what, when, for how long.

Invariant: the schedule is a pure function of (seed, duration, workers, mix).
The same arguments give the same faults at the same offsets with the same
parameters, so a failing campaign can be replayed; only the exact wall-clock
instants drift by the time restarts take.

Every 2-6 s a fault is drawn from `KINDS` (weighted), plus the kinds of the
campaign's features (`FEATURE_KINDS`), with a target that is free: two
faults never hold one target (a worker slot, the API, Redis, PostgreSQL, the
provider's knobs, the primary Twilio route) at once, but faults on
different targets overlap. Every fault ends before the load does, so the
campaign heals before it drains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SETTLE_SECONDS = 1.0  # a target rests this long between two faults
FIRST_FAULT_AFTER = 3.0  # the load warms up first
GAP_SECONDS = (2.0, 6.0)
DRAWS_PER_SLOT = 8  # tries to find a fault that fits before skipping a slot


@dataclass(frozen=True)
class Kind:
    """A fault kind: its target family, its weight in the mix, its hold range in seconds."""

    name: str
    target: str  # "worker", "api", "redis", "postgres", "provider" or "route"
    weight: float
    hold: tuple[float, float]


KINDS = (
    Kind("worker_kill", "worker", 1.0, (0.5, 2.0)),  # kill -9, restarted after the hold
    Kind("worker_stop", "worker", 1.0, (5.0, 15.0)),  # SIGSTOP, SIGCONT after the hold
    Kind("api_kill", "api", 1.0, (0.5, 2.0)),
    Kind("redis_kill", "redis", 1.0, (0.5, 3.0)),  # kill -9, restarted after the hold
    Kind("redis_flushall", "redis", 0.7, (0.0, 0.0)),
    Kind("redis_down", "redis", 0.4, (30.0, 30.0)),  # shut down, restarted after 30 s
    Kind("redis_busy", "redis", 0.8, (3.0, 8.0)),  # a Lua script that keeps Redis BUSY
    Kind("redis_readonly", "redis", 0.8, (2.0, 6.0)),  # REPLICAOF a port nobody serves
    Kind("postgres_restart", "postgres", 1.0, (0.0, 1.0)),  # fast stop, start after the hold
    Kind("provider_hang", "provider", 1.0, (3.0, 8.0)),
    Kind("provider_reset", "provider", 1.0, (2.0, 6.0)),
    Kind("provider_5xx", "provider", 1.0, (2.0, 6.0)),
)
KIND_NAMES = frozenset(kind.name for kind in KINDS)
#: Kinds drawn only when their feature is on (`chaos.features`), after the others.
FEATURE_KINDS = {
    # The primary Twilio account answers 503 or hangs, the backup does not.
    "failover": (Kind("route_down", "route", 1.0, (5.0, 20.0)),),
    # A share of calls answered 429 with Retry-After: pacing holds the account.
    "pacing": (Kind("provider_throttle", "provider", 1.0, (2.0, 6.0)),),
}
ALL_KIND_NAMES = KIND_NAMES | {kind.name for kinds in FEATURE_KINDS.values() for kind in kinds}


def select(names: set[str] | None, features: tuple[str, ...] = ()) -> tuple[Kind, ...]:
    """The mix of `features` restricted to `names` (None: all of it).

    ValueError on an unknown name, or a kind whose feature is off.
    """
    mix = KINDS + tuple(kind for feature in features for kind in FEATURE_KINDS[feature])
    if names is None:
        return mix
    unknown = names - ALL_KIND_NAMES
    if unknown:
        raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    for feature, kinds in FEATURE_KINDS.items():
        off = sorted(kind.name for kind in kinds if kind.name in names and feature not in features)
        if off:
            raise ValueError(f"{', '.join(off)} needs the {feature} feature")
    return tuple(kind for kind in mix if kind.name in names)


@dataclass(frozen=True)
class PlannedFault:
    """One fault: `at` and `hold` are seconds from the start of the load."""

    at: float
    kind: str
    target: str
    hold: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def until(self) -> float:
        return self.at + self.hold


def _params(kind: str, rng: random.Random) -> dict[str, Any]:
    """Knob values of the provider faults, drawn with the schedule."""
    if kind == "provider_hang":
        return {"hang_rate": round(rng.uniform(0.3, 1.0), 2), "hang_ms": rng.randrange(2000, 10001)}
    if kind == "provider_reset":
        return {"reset_rate": round(rng.uniform(0.1, 0.5), 2)}
    if kind == "provider_5xx":
        error_rate = round(rng.uniform(0.5, 0.9), 2)
        after = round(min(1.0 - error_rate, rng.uniform(0.0, 0.3)), 2)
        return {"error_rate": error_rate, "accepted_error_rate": after}
    if kind == "provider_throttle":
        return {"rate_429": round(rng.uniform(0.3, 0.8), 2)}
    if kind == "route_down":
        # The simulator's `account_faults` shapes: refused outright, or held.
        if rng.random() < 0.6:
            return {"status": 503}
        return {"hang_ms": rng.randrange(2000, 10001)}
    return {}


def _targets(family: str, workers: int) -> list[str]:
    if family == "worker":
        return [f"worker:{i}" for i in range(workers)]
    return [family]


def plan_faults(
    *, seed: int, duration: float, workers: int, kinds: tuple[Kind, ...] = KINDS
) -> list[PlannedFault]:
    """The schedule of a campaign of `duration` seconds with `workers` worker slots."""
    if not kinds:
        return []
    rng = random.Random(seed)
    weights = [kind.weight for kind in kinds]
    free_at: dict[str, float] = {}
    planned: list[PlannedFault] = []
    at = FIRST_FAULT_AFTER
    while at < duration:
        start = round(at, 2)
        for _ in range(DRAWS_PER_SLOT):
            kind = rng.choices(kinds, weights)[0]
            hold = round(rng.uniform(*kind.hold), 2)
            free = [t for t in _targets(kind.target, workers) if free_at.get(t, 0.0) <= start]
            if not free or start + hold > duration:
                continue
            target = rng.choice(free)
            planned.append(PlannedFault(start, kind.name, target, hold, _params(kind.name, rng)))
            free_at[target] = start + hold + SETTLE_SECONDS
            break
        at += rng.uniform(*GAP_SECONDS)
    return planned
