"""The seeded fault schedule: replayable, within the run, one fault per target at a time."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from postline.chaos.plan import (
    FEATURE_KINDS,
    GAP_SECONDS,
    KIND_NAMES,
    KINDS,
    SETTLE_SECONDS,
    plan_faults,
    select,
)


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = plan_faults(seed=42, duration=300, workers=3)

    assert first == plan_faults(seed=42, duration=300, workers=3)
    assert first != plan_faults(seed=43, duration=300, workers=3)


@pytest.mark.parametrize("seed", range(20))
def test_faults_end_within_the_run_and_never_share_a_target(seed: int) -> None:
    plan = plan_faults(seed=seed, duration=120, workers=3)
    by_target = defaultdict(list)
    for fault in plan:
        by_target[fault.target].append(fault)

    assert plan, "a two-minute run has faults"
    assert all(f.at > 0 and f.until <= 120 for f in plan)
    for faults in by_target.values():
        for before, after in itertools.pairwise(faults):
            assert before.until + SETTLE_SECONDS <= after.at
    starts = [f.at for f in plan]
    assert starts == sorted(starts)


def test_a_long_run_uses_every_kind_and_every_worker() -> None:
    plan = plan_faults(seed=7, duration=600, workers=3)

    assert {f.kind for f in plan} == KIND_NAMES
    assert {f.target for f in plan if f.kind.startswith("worker")} == {
        "worker:0",
        "worker:1",
        "worker:2",
    }
    # Roughly one fault per mean gap.
    assert 600 / GAP_SECONDS[1] < len(plan) < 600 / GAP_SECONDS[0]


def test_holds_and_parameters_stay_in_their_ranges() -> None:
    ranges = {kind.name: kind.hold for kind in KINDS}
    for fault in plan_faults(seed=3, duration=600, workers=2):
        low, high = ranges[fault.kind]
        assert low <= fault.hold <= high
        if fault.kind == "provider_hang":
            assert 0.3 <= fault.params["hang_rate"] <= 1.0
            assert 2000 <= fault.params["hang_ms"] <= 10000
        if fault.kind == "provider_5xx":
            assert fault.params["error_rate"] + fault.params["accepted_error_rate"] <= 1.0
        if fault.kind.startswith("worker"):
            assert fault.target in ("worker:0", "worker:1")


def test_a_run_too_short_for_any_fault_has_none() -> None:
    assert plan_faults(seed=1, duration=2, workers=3) == []


def test_a_restricted_mix_draws_only_those_kinds() -> None:
    kinds = select({"redis_kill", "api_kill"})

    plan = plan_faults(seed=5, duration=300, workers=3, kinds=kinds)

    assert {f.kind for f in plan} == {"redis_kill", "api_kill"}
    assert select(None) == KINDS
    assert plan_faults(seed=5, duration=300, workers=3, kinds=select(set())) == []
    with pytest.raises(ValueError, match="nope"):
        select({"nope"})


def test_feature_kinds_are_drawn_only_with_their_feature() -> None:
    plain = plan_faults(seed=7, duration=600, workers=3, kinds=select(None))
    both = plan_faults(seed=7, duration=600, workers=3, kinds=select(None, ("failover", "pacing")))
    failover = plan_faults(seed=7, duration=600, workers=3, kinds=select(None, ("failover",)))

    # No feature: the mix and so the schedule of a seed are what they always were.
    assert select(None, ()) == KINDS
    assert {f.kind for f in plain} == KIND_NAMES
    assert {f.kind for f in both} == KIND_NAMES | {"route_down", "provider_throttle"}
    assert {f.kind for f in failover} == KIND_NAMES | {"route_down"}


def test_a_feature_kind_needs_its_feature_even_when_named() -> None:
    with pytest.raises(ValueError, match="route_down needs the failover feature"):
        select({"route_down", "api_kill"})
    with pytest.raises(ValueError, match="provider_throttle needs the pacing feature"):
        select({"provider_throttle"}, ("failover",))

    assert select({"route_down"}, ("failover",)) == FEATURE_KINDS["failover"]


def test_route_down_refuses_or_holds_the_primary_and_has_a_target_of_its_own() -> None:
    kinds = select(None, ("failover", "pacing"))
    plan = plan_faults(seed=11, duration=900, workers=3, kinds=kinds)
    routes = [f for f in plan if f.kind == "route_down"]
    shapes = {next(iter(f.params)) for f in routes}

    assert shapes == {"status", "hang_ms"}
    for fault in routes:
        assert fault.target == "route"
        assert 5.0 <= fault.hold <= 20.0
        assert fault.params == {"status": 503} or 2000 <= fault.params["hang_ms"] <= 10000
    # The primary's outage is a target of its own: provider faults may overlap it.
    provider = [f for f in plan if f.target == "provider"]
    assert any(p.at < r.until and r.at < p.until for r in routes for p in provider)
    for fault in plan:
        if fault.kind == "provider_throttle":
            assert 0.3 <= fault.params["rate_429"] <= 0.8
            assert fault.target == "provider"


def test_the_make_test_feature_minute_holds_both_shapes_of_route_down() -> None:
    """tests/acceptance/test_chaos.py's feature minute (seed 115, three workers)
    claims both shapes of `route_down`; its own check sees only the kinds."""
    plan = plan_faults(seed=115, duration=60, workers=3, kinds=select(None, ("failover", "pacing")))
    shapes = {next(iter(f.params)) for f in plan if f.kind == "route_down"}
    assert shapes == {"status", "hang_ms"}
