"""The router of one process on its own breaker (no Redis): pick, report, tick."""

from __future__ import annotations

from dataclasses import replace

from postline.domain import routes
from postline.domain.channels import Channel
from postline.domain.routes import TWILIO, TWILIO_BACKUP, CircuitPolicy, CircuitState, Health
from postline.providers.base import Route
from postline.services.routing import Router
from tests.support.routing import (
    BACKUP_ACCOUNT,
    PRIMARY_ACCOUNT,
    Nowhere,
    claimed_sms,
    twilio_routes,
)

OPEN, HALF, CLOSED = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED

POLICY = CircuitPolicy(
    window_seconds=10, threshold=0.5, min_requests=4, open_seconds=5, probes=2,
    probe_seconds=8, ramp_seconds=0,
)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def router(clock: Clock) -> Router:
    return Router(plan=twilio_routes(), health=None, policy=POLICY, clock=clock)


async def test_failures_open_the_primary_and_probes_close_it_again() -> None:
    clock = Clock()
    r = router(clock)
    taken = await r.pick(claimed_sms())
    assert taken.route.name == TWILIO
    for _ in range(4):
        r.report(taken, Health.FAILED)
    await r.tick()
    assert r.circuits[TWILIO].state is CircuitState.OPEN and not r.shared
    assert (await r.pick(claimed_sms())).route.name == TWILIO_BACKUP

    clock.now += 5
    await r.tick()
    assert r.circuits[TWILIO].state is CircuitState.HALF_OPEN
    probes = [await r.pick(claimed_sms()) for _ in range(4)]
    assert [p.route.name for p in probes] == [TWILIO, TWILIO, TWILIO_BACKUP, TWILIO_BACKUP]
    assert probes[0].probe == probes[1].probe == r.circuits[TWILIO].version
    # A retry never probes, whatever route it failed on.
    assert (await r.pick(claimed_sms(attempts=2, route=TWILIO_BACKUP))).route.name == TWILIO_BACKUP

    r.report(probes[0], Health.OK)
    await r.tick()
    assert r.circuits[TWILIO].state is CircuitState.CLOSED
    assert (await r.pick(claimed_sms())).route.name == TWILIO  # ramp 0: all of it at once


async def test_a_failed_probe_opens_it_again_and_a_429_counts_for_nothing() -> None:
    clock = Clock()
    r = router(clock)
    taken = await r.pick(claimed_sms())
    for _ in range(10):
        r.report(taken, Health.THROTTLED)
    await r.tick()
    assert r.circuits[TWILIO].state is CircuitState.CLOSED
    for _ in range(4):
        r.report(taken, Health.FAILED)
    await r.tick()
    clock.now += 5
    await r.tick()
    probe = await r.pick(claimed_sms())
    assert probe.probe is not None
    r.report(probe, Health.FAILED)
    await r.tick()
    assert r.circuits[TWILIO].state is CircuitState.OPEN


async def test_a_retry_leaves_the_route_it_failed_on() -> None:
    r = router(Clock())
    assert (await r.pick(claimed_sms(attempts=2, route=TWILIO))).route.name == TWILIO_BACKUP
    assert (await r.pick(claimed_sms(attempts=2, route=TWILIO_BACKUP))).route.name == TWILIO
    # Only a retry: a first attempt keeps to the preferred route.
    assert (await r.pick(claimed_sms(attempts=1, route=TWILIO))).route.name == TWILIO


async def test_a_channel_with_one_route_never_asks_the_circuits() -> None:
    only = Router.fixed({Channel.EMAIL: Route("sendgrid", Nowhere(), "sendgrid:abc")})
    taken = await only.pick(replace(claimed_sms(), type=Channel.EMAIL))
    assert taken.route.name == "sendgrid" and taken.probe is None


def preferred_account(r: Router, *, attempts: int = 1, route: str | None = None) -> str:
    """The account pacing would charge for a claimed SMS (`route`: its last attempt's)."""
    message = claimed_sms(attempts=attempts, route=route)
    return r.preferred(Channel.SMS, message_id=message.id, last_route=route).account


async def test_pacing_is_told_the_account_of_the_route_a_send_would_take() -> None:
    clock = Clock()
    r = router(clock)
    assert preferred_account(r) == PRIMARY_ACCOUNT
    assert preferred_account(r, attempts=2, route=TWILIO) == BACKUP_ACCOUNT  # a retry moves
    r.circuits[TWILIO] = routes.Circuit(OPEN, clock.now, 1)
    assert preferred_account(r) == BACKUP_ACCOUNT
    r.circuits[TWILIO_BACKUP] = routes.Circuit(OPEN, clock.now, 1)
    assert preferred_account(r) == PRIMARY_ACCOUNT  # all open: the first is tried anyway
    # Half-open: a fresh send goes to the backup unless it wins one of the
    # few probe tokens, which asking never takes.
    r.circuits[TWILIO] = routes.Circuit(HALF, clock.now, 2)
    r.circuits[TWILIO_BACKUP] = routes.Circuit()
    assert [preferred_account(r) for _ in range(5)] == [BACKUP_ACCOUNT] * 5
    picks = [await r.pick(claimed_sms()) for _ in range(3)]
    assert [p.route.name for p in picks] == [TWILIO, TWILIO, TWILIO_BACKUP]  # both tokens left
    assert r.account_of(TWILIO_BACKUP) == BACKUP_ACCOUNT


async def test_while_a_route_ramps_back_each_message_is_told_the_route_its_send_takes() -> None:
    clock = Clock()
    r = Router(
        plan=twilio_routes(), health=None, policy=replace(POLICY, ramp_seconds=10), clock=clock
    )
    r.circuits[TWILIO] = routes.Circuit(CLOSED, clock.now - 5, 3)  # half way back
    messages = [claimed_sms() for _ in range(400)]
    told = [r.preferred(Channel.SMS, message_id=m.id).name for m in messages]
    taken = [(await r.pick(m)).route.name for m in messages]
    assert told == taken
    assert 120 < told.count(TWILIO) < 280  # the ramp's share, about half
