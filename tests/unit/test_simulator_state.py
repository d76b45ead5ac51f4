"""Fault planning, scripts and the request log of the simulator state."""

from __future__ import annotations

import time
from typing import Any

import pytest

from postline.simulator.config import SimulatorConfig
from postline.simulator.scripts import ScriptError, ScriptItem, parse_script
from postline.simulator.state import SimulatorState


def _record(
    state: SimulatorState, provider: str = "twilio", to: str = "+1555", status: int = 201
) -> None:
    record: dict[str, Any] = {
        "seq": 0,
        "provider": provider,
        "received_at": time.time(),
        "status": status,
        "to": to,
    }
    state.record(record)


def test_quiet_config_plans_nothing() -> None:
    plan = SimulatorState(SimulatorConfig()).plan("+15551234567")

    assert (plan.delay, plan.fault) == (0.0, None)


def test_error_rate_and_rate_429_split_one_draw() -> None:
    state = SimulatorState(SimulatorConfig(error_rate=0.25, rate_429=0.25, seed=3))

    faults = [state.plan("+1").fault for _ in range(4000)]
    statuses = [None if f is None else f.status for f in faults]

    assert 900 < statuses.count(500) < 1100
    assert 900 < statuses.count(429) < 1100
    assert all(f.retry_after == 1 for f in faults if f is not None and f.status == 429)


def test_full_rates_always_fault() -> None:
    assert SimulatorState(SimulatorConfig(error_rate=1.0)).plan(None).fault == ScriptItem(500)
    fault = SimulatorState(SimulatorConfig(rate_429=1.0, retry_after_seconds=9)).plan(None).fault
    assert fault == ScriptItem(429, retry_after=9)


def test_jitter_stays_around_latency_and_never_negative() -> None:
    state = SimulatorState(SimulatorConfig(latency_ms=10, latency_jitter_ms=20, seed=1))

    delays = [state.plan(None).delay for _ in range(500)]

    assert min(delays) == 0.0
    assert max(delays) <= 0.030
    assert any(0.0 < d < 0.010 for d in delays)
    assert any(d > 0.010 for d in delays)


def test_script_items_override_knobs_then_run_out() -> None:
    state = SimulatorState(SimulatorConfig(error_rate=1.0, latency_ms=50))
    key, items = parse_script(
        {"to": "Ana@Example.com", "responses": [429, {"status": 202, "latency_ms": 5}]}
    )
    state.scripts.set(key, items)

    first = state.plan("ana@example.com")
    second = state.plan("ANA@example.com")
    third = state.plan("ana@example.com")

    assert first.fault == ScriptItem(429, retry_after=1)
    assert first.delay == pytest.approx(0.05)
    assert second.fault is None
    assert second.delay == pytest.approx(0.005)
    assert third.fault == ScriptItem(500)  # script exhausted: back to the knobs
    assert not state.scripts


@pytest.mark.parametrize(
    "body",
    [
        {"to": "+1", "responses": []},
        {"to": "", "responses": [500]},
        {"to": "+1", "responses": [99]},
        {"to": "+1", "responses": [True]},
        {"to": "+1", "responses": [{"status": 429, "retry_after": 1.5}]},
        {"to": "+1", "responses": [{"status": 201, "latency_ms": -1}]},
        {"to": "+1", "responses": [{"status": 400, "colour": "red"}]},
        {"to": "+1", "responses": [500], "extra": 1},
        {"to": "+1", "responses": [{"status": 201, "receipt": "read"}]},
        {"to": "+1", "responses": [{"status": 500, "receipt": "undelivered"}]},
        [500],
    ],
)
def test_bad_scripts_are_refused(body: object) -> None:
    with pytest.raises(ScriptError):
        parse_script(body)


def test_script_items_choose_the_receipt_of_one_message() -> None:
    state = SimulatorState(SimulatorConfig())
    key, items = parse_script(
        {"to": "+15550001111", "responses": [{"status": 201, "receipt": "undelivered"}, 201]}
    )
    state.scripts.set(key, items)

    assert items[0].to_dict() == {"status": 201, "receipt": "undelivered"}
    assert state.plan("+15550001111").receipt == "undelivered"
    assert state.plan("+15550001111").receipt is None  # a plain item: the configured outcome
    assert state.plan("+15550001111").receipt is None  # script exhausted


def test_same_seed_same_ids() -> None:
    a = SimulatorState(SimulatorConfig(seed=5))
    b = SimulatorState(SimulatorConfig(seed=5))

    assert [a.new_hex_id(), a.new_sendgrid_id()] == [b.new_hex_id(), b.new_sendgrid_id()]
    assert len(a.new_sendgrid_id()) == 22


def test_log_filters_and_pages_forward() -> None:
    state = SimulatorState(SimulatorConfig())
    _record(state, to="+1")
    _record(state, provider="sendgrid", to="Ana@Example.com", status=202)
    _record(state, to="+2", status=500)
    _record(state, to="+1")

    assert [r["seq"] for r in state.requests(to="+1")] == [1, 4]
    assert [r["seq"] for r in state.requests(to="ana@example.com")] == [2]
    assert [r["seq"] for r in state.requests(provider="twilio", since_seq=1, limit=1)] == [3]
    assert state.requests(limit=1)[0]["received_at"].endswith("Z")
    assert state.stats() == {
        "received": 4,
        "in_flight": 0,
        "max_in_flight": 0,
        "abandoned": 0,
        "by_provider": {"twilio": 3, "sendgrid": 1},
        "by_status": {"201": 2, "202": 1, "500": 1},
    }


def test_log_is_a_ring_that_follows_keep_requests() -> None:
    config = SimulatorConfig(keep_requests=3)
    state = SimulatorState(config)
    for _ in range(5):
        _record(state)
    assert [r["seq"] for r in state.requests()] == [3, 4, 5]

    config.keep_requests = 2
    _record(state)

    assert [r["seq"] for r in state.requests()] == [5, 6]
    assert state.stats()["received"] == 6  # counters are not bounded by the ring


def test_clear_keeps_seq_growing() -> None:
    state = SimulatorState(SimulatorConfig())
    _record(state)
    state.clear_requests()
    _record(state)

    assert [r["seq"] for r in state.requests()] == [2]
    assert state.stats()["received"] == 1


def test_in_flight_tracks_the_peak_until_cleared() -> None:
    state = SimulatorState(SimulatorConfig())
    for _ in range(3):
        state.enter()
    state.leave()
    state.leave()

    assert (state.stats()["in_flight"], state.stats()["max_in_flight"]) == (1, 3)
    state.clear_requests()
    assert state.stats()["max_in_flight"] == 1


# -- ambiguous-outcome faults -----------------------------------------------------


def test_hang_rate_holds_that_fraction_for_hang_ms() -> None:
    state = SimulatorState(SimulatorConfig(hang_rate=0.5, hang_ms=3000, latency_ms=10, seed=5))

    plans = [state.plan("+1") for _ in range(2000)]
    hung = [p for p in plans if p.hang]

    assert 900 < len(hung) < 1100
    assert all(p.hang == 3.0 and p.delay == 3.01 for p in hung)
    assert all(p.delay == 0.01 for p in plans if not p.hang)


def test_reset_and_accepted_error_split_one_draw() -> None:
    state = SimulatorState(SimulatorConfig(reset_rate=0.2, accepted_error_rate=0.3, seed=9))

    after = [state.plan("+1").after_accept for _ in range(4000)]

    assert 700 < after.count("reset") < 900
    assert 1100 < after.count("accepted_error") < 1300


def test_a_refused_request_is_never_also_accepted() -> None:
    state = SimulatorState(SimulatorConfig(error_rate=1.0, reset_rate=1.0))

    plan = state.plan("+1")

    assert plan.fault == ScriptItem(500)
    assert plan.after_accept is None


def test_scripted_items_override_the_chaos_knobs() -> None:
    state = SimulatorState(SimulatorConfig(hang_rate=1.0, hang_ms=5000, reset_rate=1.0))
    state.scripts.set("+1", [ScriptItem(201)])

    plan = state.plan("+1")

    assert (plan.hang, plan.after_accept, plan.delay) == (0.0, None, 0.0)


def test_chaos_knobs_at_zero_draw_nothing_from_the_seeded_sequence() -> None:
    plain = SimulatorState(SimulatorConfig(error_rate=0.5, seed=2))
    knobs_off = SimulatorState(
        SimulatorConfig(error_rate=0.5, seed=2, hang_rate=0.0, reset_rate=0.0)
    )

    assert [plain.plan(None).fault for _ in range(50)] == [
        knobs_off.plan(None).fault for _ in range(50)
    ]


def test_records_get_an_outcome_and_abandoned_calls_stay_out_of_the_inspection_log() -> None:
    state = SimulatorState(SimulatorConfig())
    _record(state, status=201)
    _record(state, status=503)
    state.record({"seq": 0, "provider": "twilio", "received_at": time.time(), "status": 201,
                  "to": "+1555", "outcome": "reset"})  # fmt: skip
    state.record({"seq": 0, "provider": "twilio", "received_at": time.time(), "status": None,
                  "to": "+1555", "outcome": "client_gone"})  # fmt: skip

    outcomes = [(r["outcome"], r["accepted"], r["answered"]) for r in state.requests()]

    assert outcomes == [
        ("accepted", True, True),
        ("refused", False, True),
        ("reset", True, False),
    ]
    assert state.stats()["by_status"] == {"201": 2, "503": 1}
    assert state.stats()["abandoned"] == 1
    assert all(r["ended_at"].endswith("Z") for r in state.requests())
