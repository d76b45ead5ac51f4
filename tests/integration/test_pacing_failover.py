"""Pacing while a message fails over: the account bucket follows the route.

Real API, two real workers, the simulator with two Twilio accounts. The
primary account answers 503 until its circuit opens; what each account's
bucket holds is read from the Redis keys the pacer writes (its concurrency
slots, its TAT), what each account was sent from the simulator's own log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from postline.domain.routes import TWILIO, CircuitState
from postline.providers.registry import twilio_account
from postline.queue.keys import pace_account, pace_inflight
from postline.settings import Settings
from postline.simulator import RunningSimulator
from tests.support.faults import Service, in_process, script, wait_final
from tests.support.harness import (
    BACKUP_SID,
    BACKUP_TOKEN,
    SIM_SID,
    settings_for,
    two_account_simulator,
    wait_for,
)
from tests.support.order import KeyedLoad

pytestmark = pytest.mark.timeout(90)

CAP = 2  # PACING_ACCOUNT_CONCURRENCY: each account's provider calls at once
FAST, OTHER = "+15557770001", "+15557770002"  # short codes: their own rate never binds here
PRIMARY, BACKUP = twilio_account(SIM_SID), twilio_account(BACKUP_SID)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with two_account_simulator() as running:
        yield running


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: RunningSimulator) -> Settings:
    """Pacing with a small cap; a circuit that opens after a few failures and
    stays open for the whole test (a test that wants a probe shortens it).
    Each test asks for `pool` and `redis`, which start it empty."""
    return settings_for(
        database_url, redis_url, sim.base_url,
        twilio_backup_account_sid=BACKUP_SID, twilio_backup_auth_token=BACKUP_TOKEN,
        pacing_enabled=True, pacing_account_concurrency=CAP,
        pacing_senders={FAST: "short_code", OTHER: "short_code"},
        route_window_seconds=5, route_min_requests=4, route_error_threshold=0.5,
        route_open_seconds=60, route_probes=1, route_ramp_seconds=0,
    )  # fmt: skip


async def every_worker_sees(service: Service, state: CircuitState) -> bool:
    return all(w.routes.circuits[TWILIO].state is state for w in service.workers)


async def fail_the_primary(service: Service, sim: RunningSimulator, pool: asyncpg.Pool) -> None:
    """The primary answers 503 to a few messages until every worker reads its
    circuit open; those messages go out through the backup on their retry."""
    sim.config.account_faults = {SIM_SID: {"status": 503}}
    warm_up = KeyedLoad(8, prefix="W", first_number=900, sender=FAST)
    await warm_up.send(service.api, 1)

    async def opened() -> bool:
        return await every_worker_sees(service, CircuitState.OPEN)

    await wait_for(opened, timeout=15, what="every worker to read the primary's circuit open")
    await wait_final(pool, warm_up.ids, within=15)


async def held_ms(redis: aioredis.Redis, account: str) -> float:
    """How long the account's bucket is held from now (0: not held), by Redis's clock."""
    seconds, micros = await redis.time()
    tat = float(await redis.get(pace_account(account)) or 0)
    return max(0.0, tat - (seconds * 1000 + micros / 1000))


def calls_to(sim: RunningSimulator, to: str) -> list[dict[str, Any]]:
    return sim.state.requests(provider="twilio", to=to)


async def test_sends_through_the_backup_take_the_backup_accounts_slots(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with in_process(settings, workers=2) as service:
        await fail_the_primary(service, sim, pool)
        sim.config.latency_ms = 300  # the backup's calls last long enough to be seen
        sim.state.clear_requests()
        load = KeyedLoad(10, prefix="B", first_number=100, sender=FAST)
        sending = asyncio.create_task(load.send(service.api, 1))
        primary_slots: list[int] = []

        async def backup_at_its_cap() -> bool:
            primary_slots.append(await redis.zcard(pace_inflight(PRIMARY)))
            return await redis.zcard(pace_inflight(BACKUP)) == CAP

        await wait_for(backup_at_its_cap, timeout=10, what="the backup account's slots to fill")
        await sending
        await wait_final(pool, load.ids, within=20)
        stats = sim.state.stats()
    assert set(primary_slots) == {0}  # nothing counted against the account that sent nothing
    assert {c["account_sid"] for c in sim.state.requests(provider="twilio")} == {BACKUP_SID}
    assert stats["received"] == len(load.ids) and stats["max_in_flight"] <= CAP
    assert await redis.zcard(pace_inflight(BACKUP)) == 0  # every slot given back


async def test_a_429_from_the_backup_holds_the_backup_account_and_not_the_primary(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    throttled = KeyedLoad(1, prefix="T", first_number=300, sender=FAST)
    other = KeyedLoad(1, prefix="O", first_number=400, sender=OTHER)
    async with in_process(settings, workers=2) as service:
        await fail_the_primary(service, sim, pool)
        await script(sim.base_url, {throttled.to["T0"]: [{"status": 429, "retry_after": 2}]})
        await throttled.send(service.api, 1)

        async def backup_held() -> float:
            return await held_ms(redis, BACKUP)

        left = await wait_for(backup_held, timeout=5, what="the backup account to be held")
        assert 1000 < left <= 2000
        assert await held_ms(redis, PRIMARY) == 0
        await other.send(service.api, 1)
        await wait_final(pool, [*throttled.ids, *other.ids], within=15)
    first, again = calls_to(sim, throttled.to["T0"])
    assert (first["account_sid"], first["status"]) == (BACKUP_SID, 429)
    assert (again["account_sid"], again["status"]) == (BACKUP_SID, 201)
    [other_call] = calls_to(sim, other.to["O0"])
    assert other_call["account_sid"] == BACKUP_SID
    # The other sender's message waited for the backup account's hold too.
    assert _seconds(other_call["received_at"]) >= _seconds(first["ended_at"]) + 1.9


async def test_a_429_holds_the_account_that_answered_not_the_one_paced(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """A half-open primary: a fresh message is paced against the backup (most
    such sends find the probe token gone) but wins the token and is sent
    through the primary, which answers 429: the primary is the one held."""
    probing = settings.model_copy(update={"route_open_seconds": 4})
    probe = KeyedLoad(1, prefix="P", first_number=500, sender=FAST)
    async with in_process(probing, workers=2) as service:
        await fail_the_primary(service, sim, pool)
        sim.config.account_faults = {}
        await script(sim.base_url, {probe.to["P0"]: [{"status": 429, "retry_after": 2}]})

        async def half_open() -> bool:
            return await every_worker_sees(service, CircuitState.HALF_OPEN)

        await wait_for(half_open, timeout=10, what="every worker to read the primary half-open")
        await probe.send(service.api, 1)

        async def primary_held() -> float:
            return await held_ms(redis, PRIMARY)

        await wait_for(primary_held, timeout=5, what="the primary account to be held")
        assert await held_ms(redis, BACKUP) == 0
        await wait_final(pool, probe.ids, within=15)
    first, again = calls_to(sim, probe.to["P0"])
    assert (first["account_sid"], first["status"]) == (SIM_SID, 429)  # it was the probe
    assert (again["account_sid"], again["status"]) == (BACKUP_SID, 201)  # a retry never probes


def _seconds(moment: str) -> float:
    """A time of the simulator's log (RFC 3339) as unix seconds."""
    return datetime.fromisoformat(moment).timestamp()
