"""Route circuits shared through the real Redis, and each process alone when Redis is gone."""

from __future__ import annotations

import redis.asyncio as aioredis

from postline.domain.routes import TWILIO, TWILIO_BACKUP, CircuitPolicy, CircuitState, Health
from postline.embedded import EmbeddedRedis
from postline.queue.routes import RouteHealthStore
from postline.queue.streams import connect
from postline.services.routing import Router
from tests.support.faults import in_thread
from tests.support.harness import free_port, wait_for
from tests.support.routing import claimed_sms, twilio_routes

POLICY = CircuitPolicy(
    window_seconds=10, threshold=0.5, min_requests=4, open_seconds=0.2, probes=1,
    probe_seconds=5, ramp_seconds=0,
)  # fmt: skip


def router(client: aioredis.Redis) -> Router:
    return Router(plan=twilio_routes(), health=RouteHealthStore(client), policy=POLICY)


async def test_one_process_opens_a_circuit_and_every_process_follows(redis: aioredis.Redis) -> None:
    seeing, other = router(redis), router(redis)
    taken = await seeing.pick(claimed_sms())
    for _ in range(4):
        seeing.report(taken, Health.FAILED)
    await seeing.tick()
    assert seeing.shared and seeing.circuits[TWILIO].state is CircuitState.OPEN
    await other.tick()  # it saw no failure of its own
    assert other.circuits[TWILIO] == seeing.circuits[TWILIO]
    assert (await other.pick(claimed_sms())).route.name == TWILIO_BACKUP

    # Half-open: one probe token for the whole cluster.
    async def half_open() -> bool:
        await other.tick()
        return other.circuits[TWILIO].state is CircuitState.HALF_OPEN

    await wait_for(half_open, timeout=5, what="the cool-down to end")
    await seeing.tick()
    picks = [
        await seeing.pick(claimed_sms()),
        await other.pick(claimed_sms()),
        await other.pick(claimed_sms()),
    ]
    assert [p.probe is not None for p in picks] == [True, False, False]
    assert [p.route.name for p in picks] == [TWILIO, TWILIO_BACKUP, TWILIO_BACKUP]
    seeing.report(picks[0], Health.OK)
    await seeing.tick()
    await other.tick()
    assert other.circuits[TWILIO].state is CircuitState.CLOSED
    assert (await other.pick(claimed_sms())).route.name == TWILIO


async def test_without_redis_each_process_keeps_a_breaker_of_its_own() -> None:
    gone = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)  # nobody listens there
    try:
        alone = router(gone)
        taken = await alone.pick(claimed_sms())
        for _ in range(4):
            alone.report(taken, Health.FAILED)
        await alone.tick()
        assert not alone.shared
        assert alone.circuits[TWILIO].state is CircuitState.OPEN
        assert (await alone.pick(claimed_sms())).route.name == TWILIO_BACKUP
    finally:
        await gone.aclose()


async def test_outcomes_seen_while_redis_was_down_reach_the_shared_circuit_when_it_is_back(
    own_redis: EmbeddedRedis,
) -> None:
    client = connect(own_redis.url, timeout=0.5)
    try:
        cut_off, other = router(client), router(client)
        await in_thread(own_redis.stop)
        taken = await cut_off.pick(claimed_sms())
        for _ in range(4):
            cut_off.report(taken, Health.FAILED)
        await cut_off.tick()
        assert not cut_off.shared and cut_off.circuits[TWILIO].state is CircuitState.OPEN
        await in_thread(own_redis.start)
        await cut_off.tick()
        assert cut_off.shared
        await other.tick()
        assert other.circuits[TWILIO].state is CircuitState.OPEN
    finally:
        await client.aclose()
