"""The route rules (domain/routes.py): circuits, windows, and which route an attempt takes."""

from __future__ import annotations

import itertools
import statistics
import uuid

from hypothesis import given
from hypothesis import strategies as st

from postline.domain.channels import Channel
from postline.domain.routes import (
    SENDGRID,
    TWILIO,
    TWILIO_BACKUP,
    Circuit,
    CircuitPolicy,
    CircuitState,
    Health,
    Pick,
    Tally,
    advance,
    bucket_of,
    candidates,
    draw_of,
    health_of,
    route_plan,
    share,
    window_buckets,
    window_tally,
)
from postline.errors import PermanentProviderError, TransientProviderError

POLICY = CircuitPolicy(
    window_seconds=10, threshold=0.5, min_requests=4, open_seconds=5, probes=2,
    probe_seconds=8, ramp_seconds=10,
)  # fmt: skip
CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def transient(status: int | None) -> TransientProviderError:
    return TransientProviderError(provider="twilio", code="x", message="x", status=status)


def test_5xx_timeouts_and_network_errors_count_against_a_route_and_429_for_nothing() -> None:
    assert health_of(None) is Health.OK
    assert health_of(PermanentProviderError(provider="t", code="21211", message="x")) is Health.OK
    assert health_of(transient(503)) is Health.FAILED
    assert health_of(transient(None)) is Health.FAILED  # timeout, network error
    assert health_of(transient(429)) is Health.THROTTLED


def test_the_backup_account_carries_twilio_channels_only() -> None:
    plan = route_plan(twilio_backup=True)
    assert plan[Channel.SMS] == plan[Channel.WHATSAPP] == (TWILIO, TWILIO_BACKUP)
    assert plan[Channel.EMAIL] == (SENDGRID,)
    assert route_plan(twilio_backup=False)[Channel.MMS] == (TWILIO,)


def test_a_closed_circuit_opens_at_the_threshold_with_enough_volume() -> None:
    closed = Circuit()
    few = advance(closed, window=Tally(0, 3), probes=Tally(), now=100, policy=POLICY)
    assert few == closed  # under min_requests
    below = advance(closed, window=Tally(3, 2), probes=Tally(), now=100, policy=POLICY)
    assert below == closed
    opened = advance(closed, window=Tally(2, 2), probes=Tally(), now=100, policy=POLICY)
    assert opened == Circuit(OPEN, 100, 1)


def test_open_cools_down_to_half_open_then_a_probe_decides() -> None:
    opened = Circuit(OPEN, 100, 1)
    assert advance(opened, window=Tally(), probes=Tally(), now=104, policy=POLICY) == opened
    half = advance(opened, window=Tally(), probes=Tally(), now=105, policy=POLICY)
    assert half == Circuit(HALF, 105, 2)
    assert advance(half, window=Tally(), probes=Tally(), now=106, policy=POLICY) == half
    closed = advance(half, window=Tally(0, 9), probes=Tally(1, 0), now=106, policy=POLICY)
    assert closed == Circuit(CLOSED, 106, 3)
    again = advance(half, window=Tally(), probes=Tally(1, 1), now=106, policy=POLICY)
    assert again == Circuit(OPEN, 106, 3)
    silent = advance(half, window=Tally(), probes=Tally(), now=113, policy=POLICY)
    assert silent.state is OPEN  # the probes never reported


def test_the_window_forgets_what_came_before_the_last_transition_and_outside_it() -> None:
    assert POLICY.bucket_seconds == 1
    buckets = {start: Tally(0, 1) for start in range(80, 101)}
    counted = window_tally(buckets, circuit=Circuit(), now=100.5, policy=POLICY)
    assert counted == Tally(0, 11)  # buckets 90..100
    since_close = window_tally(buckets, circuit=Circuit(CLOSED, 97.5, 3), now=100.5, policy=POLICY)
    assert since_close == Tally(0, 3)  # 98, 99, 100: 97 began before the close


@given(now=st.floats(min_value=0, max_value=2e9), window=st.integers(1, 600))
def test_buckets_cover_the_window_and_end_with_the_current_one(now: float, window: int) -> None:
    policy = CircuitPolicy(window_seconds=window)
    buckets = window_buckets(now, policy)
    assert buckets[-1] == bucket_of(now, policy) <= now
    size = policy.bucket_seconds
    assert now - window - 2 * size < buckets[0] <= now - window
    assert all(b - a == size for a, b in itertools.pairwise(buckets))


def test_a_closed_route_ramps_back_after_it_closes() -> None:
    fresh = Circuit()
    assert share(fresh, now=5, policy=POLICY) == 1.0
    reclosed = Circuit(CLOSED, 100, 4)
    assert share(reclosed, now=100, policy=POLICY) == 0.0
    assert share(reclosed, now=105, policy=POLICY) == 0.5
    assert share(reclosed, now=200, policy=POLICY) == 1.0
    assert share(Circuit(OPEN, 100, 1), now=200, policy=POLICY) == 0.0


def routes(primary: Circuit, backup: Circuit | None = None) -> list[tuple[str, Circuit]]:
    return [(TWILIO, primary), (TWILIO_BACKUP, backup or Circuit())]


def test_healthy_primary_takes_everything() -> None:
    assert candidates(routes(Circuit()), now=1, policy=POLICY, draw=0.99) == [Pick(TWILIO)]


def test_an_open_primary_sends_everything_to_the_backup() -> None:
    picks = candidates(routes(Circuit(OPEN, 0, 1)), now=1, policy=POLICY, draw=0.0)
    assert picks == [Pick(TWILIO_BACKUP)]


def test_a_half_open_primary_is_probed_by_fresh_messages_only() -> None:
    half = Circuit(HALF, 0, 2)
    fresh = candidates(routes(half), now=1, policy=POLICY, draw=0.5)
    assert fresh == [Pick(TWILIO, probe=True), Pick(TWILIO_BACKUP)]
    retry = candidates(routes(half), now=1, policy=POLICY, draw=0.5, retry_of=TWILIO_BACKUP)
    assert retry == [Pick(TWILIO_BACKUP)]  # its only closed route, failed or not


def test_a_retry_goes_elsewhere_while_another_route_is_closed() -> None:
    picks = candidates(routes(Circuit()), now=1, policy=POLICY, draw=0.0, retry_of=TWILIO)
    assert picks == [Pick(TWILIO_BACKUP)]


def test_with_every_route_open_the_first_is_tried_rather_than_nothing() -> None:
    down = Circuit(OPEN, 0, 1)
    assert candidates(routes(down, down), now=1, policy=POLICY, draw=0.3) == [Pick(TWILIO)]
    retry = candidates(routes(down, down), now=1, policy=POLICY, draw=0.3, retry_of=TWILIO)
    assert retry == [Pick(TWILIO_BACKUP)]


def test_while_ramping_the_draw_splits_fresh_traffic() -> None:
    ramping = Circuit(CLOSED, 100, 4)
    assert candidates(routes(ramping), now=103, policy=POLICY, draw=0.2) == [Pick(TWILIO)]
    assert candidates(routes(ramping), now=103, policy=POLICY, draw=0.5) == [Pick(TWILIO_BACKUP)]


def test_a_message_draws_the_same_every_time_and_messages_spread_evenly() -> None:
    ids = [uuid.uuid4() for _ in range(2000)]
    draws = [draw_of(i) for i in ids]
    assert draws == [draw_of(uuid.UUID(bytes=i.bytes)) for i in ids]
    assert all(0 <= d < 1 for d in draws)
    assert abs(statistics.fmean(draws) - 0.5) < 0.05
    assert 0.2 < sum(d < 0.25 for d in draws) / len(draws) < 0.3


circuits = st.builds(
    Circuit,
    st.sampled_from(list(CircuitState)),
    st.floats(min_value=0, max_value=1000),
    st.integers(0, 50),
)


@given(
    primary=circuits,
    backup=circuits,
    now=st.floats(min_value=0, max_value=2000),
    draw=st.floats(min_value=0, max_value=0.999),
    retry_of=st.sampled_from([None, TWILIO, TWILIO_BACKUP]),
)
def test_every_attempt_gets_exactly_one_plain_route_at_the_end(
    primary: Circuit, backup: Circuit, now: float, draw: float, retry_of: str | None
) -> None:
    pair = routes(primary, backup)
    picks = candidates(pair, now=now, policy=POLICY, draw=draw, retry_of=retry_of)
    assert picks and not picks[-1].probe
    assert all(p.probe for p in picks[:-1])
    if retry_of is not None:
        assert not any(p.probe for p in picks)  # a retry never probes
    probes = [p.route for p in picks if p.probe]
    assert len(probes) == len(set(probes))
    states = {TWILIO: primary.state, TWILIO_BACKUP: backup.state}
    closed = [name for name, state in states.items() if state is CLOSED]
    if closed:
        assert picks[-1].route in closed  # an open or half-open route only as a probe


@given(
    circuit=circuits,
    window=st.builds(Tally, st.integers(0, 100), st.integers(0, 100)),
    probes=st.builds(Tally, st.integers(0, 3), st.integers(0, 3)),
    later=st.floats(min_value=0, max_value=100),
)
def test_a_transition_always_bumps_the_version_and_stamps_the_time(
    circuit: Circuit, window: Tally, probes: Tally, later: float
) -> None:
    now = circuit.since + later
    moved = advance(circuit, window=window, probes=probes, now=now, policy=POLICY)
    if moved != circuit:
        assert moved.version == circuit.version + 1 and moved.since == now
        assert moved.state is not circuit.state
        assert (circuit.state, moved.state) in {(CLOSED, OPEN), (OPEN, HALF), (HALF, OPEN),
                                                (HALF, CLOSED)}  # fmt: skip
