"""Per-key order is PostgreSQL's: Redis losing, missing or refusing writes never reorders a key.

Each test sends keyed messages in three phases around a Redis fault, then
reads the order of provider calls per key from the simulator. Phase 1 is
still being sent when the fault hits (heads of some keys are in backoff,
the provider is slow), phase 2 is what the fault makes Redis lose or never
hold, phase 3 comes after it: phase 2 must still go out before phase 3.

Redis is the test's own here (it is flushed, killed and stopped); the API
and two workers run in-process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from postline.embedded import EmbeddedRedis
from postline.queue.streams import Enqueue, RedisQueue
from postline.settings import Settings
from tests.support.faults import (
    CUT_BY_DEADLINE,
    Service,
    aof_size,
    in_process,
    in_thread,
    kill_9,
    lose_writes_after,
    script,
    wait_final,
)
from tests.support.harness import settings_for, wait_for
from tests.support.order import CallRecorder, KeyedLoad, judge, overlaps

pytestmark = pytest.mark.timeout(120)

KEYS = 16
PER_PHASE = 3
BOUND = 1 + 7 + 30


@pytest.fixture
def settings(database_url: str, own_redis: EmbeddedRedis, sim: Any, pool: asyncpg.Pool) -> Settings:
    sim.config.latency_ms = 40  # a key's phase takes a while: the fault finds it half sent
    return settings_for(database_url, own_redis.url, sim.base_url, reconcile_interval_seconds=1)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with in_process(settings, workers=2) as running:
        yield running


async def heads_in_backoff(sim: Any, load: KeyedLoad) -> None:
    """The first message of every third key fails once and must wait 2 s (Retry-After)."""
    await script(
        sim.base_url, {load.to[k]: [{"status": 500, "retry_after": 2}] for k in load.keys[::3]}
    )


async def finish(
    load: KeyedLoad, calls: CallRecorder, pool: asyncpg.Pool, fault: str, healed: float
) -> None:
    assert load.refused == 0, f"{load.refused} sends were refused"
    # README's bound after the fault heals: RECONCILE_INTERVAL + VISIBILITY_TIMEOUT + 30 s.
    took = await wait_final(pool, load.ids, within=BOUND - (time.monotonic() - healed))
    report = judge(calls.calls, load.accepted)
    print(f"\n{fault}: {report.line()}; all sent {time.monotonic() - healed:.1f}s after "
          f"the fault ({took:.1f}s of waiting)")  # fmt: skip
    assert report.overtakes == 0
    assert report.missing == []
    assert report.duplicates <= await pool.fetchval(CUT_BY_DEADLINE)


@pytest.mark.parametrize("fault", ["flushall", "kill-9 losing the last writes"])
async def test_order_holds_when_redis_loses_its_data(
    fault: str, own_redis: EmbeddedRedis, service: Service, sim: Any, pool: asyncpg.Pool
) -> None:
    load, calls = KeyedLoad(KEYS), CallRecorder(sim.state)
    await heads_in_backoff(sim, load)
    await load.send(service.api, PER_PHASE)
    synced = aof_size(own_redis)
    # Phase 2: stored and queued, and then Redis forgets the queueing.
    await load.send(service.api, PER_PHASE)
    await lose_data(fault, own_redis, synced)
    healed = time.monotonic()
    await load.send(service.api, PER_PHASE)
    await finish(load, calls, pool, fault, healed)


async def lose_data(fault: str, own_redis: EmbeddedRedis, synced: int) -> None:
    """FLUSHALL, or kill -9 with the AOF's tail since `synced` lost, then a restart."""
    if fault == "flushall":
        client = aioredis.Redis.from_url(own_redis.url)
        await client.flushall()
        await client.aclose()
    else:
        kill_9(own_redis)
        lost = lose_writes_after(own_redis, synced)
        assert lost > 0
        await in_thread(own_redis.start)


@pytest.mark.parametrize("fault", ["flushall", "kill-9 losing the last writes"])
async def test_heads_in_flight_at_the_loss_keep_their_keys_one_at_a_time(
    fault: str, own_redis: EmbeddedRedis, settings: Settings, sim: Any, pool: asyncpg.Pool
) -> None:
    """Every key's head is at the provider (4 s answers) when Redis loses its data,
    the workers' heartbeats included: the heads' leases are still live, so no other
    message of their keys may go before those calls end, and nothing goes twice."""
    slow = settings.model_copy(
        update={"provider_timeout_seconds": 6.0, "visibility_timeout_seconds": 11.0}
    )
    load, calls = KeyedLoad(KEYS), CallRecorder(sim.state)
    await script(
        sim.base_url, {load.to[k]: [{"status": 201, "latency_ms": 4000}] for k in load.keys}
    )
    synced = aof_size(own_redis)
    async with in_process(slow, workers=2) as service:
        await load.send(service.api, PER_PHASE)

        async def heads_at_the_provider() -> bool:
            return await pool.fetchval(
                "SELECT count(*) FROM messages WHERE status = 'sending' AND id = ANY($1::uuid[])",
                load.ids,
            ) == KEYS  # fmt: skip

        await wait_for(heads_at_the_provider, timeout=10, what="every head in flight", every=0.02)
        await lose_data(fault, own_redis, synced)
        healed = time.monotonic()
        await load.send(service.api, PER_PHASE)
        heads = {tags[0] for tags in load.accepted.values()}
        assert all(c.tag not in heads for c in calls.calls), "a head's call ended before the loss"
        await finish(load, calls, pool, f"{fault}, heads in flight", healed)
    assert overlaps(calls.calls) == 0
    assert len(calls.calls) == len(load.ids)  # one call each: none taken over, none resent


async def test_messages_accepted_while_redis_was_down_go_before_later_ones(
    own_redis: EmbeddedRedis, service: Service, sim: Any, pool: asyncpg.Pool
) -> None:
    load, calls = KeyedLoad(KEYS), CallRecorder(sim.state)
    await heads_in_backoff(sim, load)
    await load.send(service.api, PER_PHASE)
    await in_thread(own_redis.stop)
    # Phase 2: answered 202 and stored, never queued.
    assert await load.send(service.api, PER_PHASE) == KEYS * PER_PHASE
    await in_thread(own_redis.start)
    healed = time.monotonic()
    await load.send(service.api, PER_PHASE)
    await finish(load, calls, pool, "redis down while accepting", healed)


class RefusedPushes:
    """The API's queue with every push failing, as on a dropped connection."""

    def __init__(self, real: RedisQueue) -> None:
        self.real = real
        self.refused = 0

    async def push(self, items: list[Enqueue]) -> int:
        self.refused += len(items)
        raise RedisConnectionError("push refused by the test")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_failed_push_on_accept_never_lets_later_messages_overtake(
    service: Service, sim: Any, pool: asyncpg.Pool
) -> None:
    """Workers keep reading meanwhile: phase 3's entries reach them before phase 2's."""
    load, calls = KeyedLoad(KEYS), CallRecorder(sim.state)
    await heads_in_backoff(sim, load)
    acceptor = service.app.state.components.acceptor
    await load.send(service.api, PER_PHASE)
    acceptor.queue = refused = RefusedPushes(acceptor.queue)
    await load.send(service.api, PER_PHASE)
    acceptor.queue = refused.real
    healed = time.monotonic()
    await load.send(service.api, PER_PHASE)
    assert refused.refused == KEYS * PER_PHASE
    await finish(load, calls, pool, "failed pushes on accept", healed)


async def test_a_scheduled_send_takes_its_place_when_due_after_redis_lost_it(
    own_redis: EmbeddedRedis, service: Service, sim: Any, pool: asyncpg.Pool
) -> None:
    """Accepted first, due in 1 s: it goes after what its key accepted before it fell
    due, and before what came after, though Redis lost it from the delay set."""
    load, calls = KeyedLoad(8), CallRecorder(sim.state)
    # Heads in backoff for 3 s: phase 1 is still open when the scheduled ones fall due.
    await script(sim.base_url, {load.to[k]: [{"status": 500, "retry_after": 3}] for k in load.keys})
    send_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    scheduled = {}
    for key in load.keys:
        payload = load.payload(key, send_at=send_at)
        answer = await service.api.post("/api/v1/messages/send", json=payload)
        assert answer.json()["status"] == "scheduled"
        scheduled[key] = (payload["body"], answer.json()["id"])
    await load.send(service.api, PER_PHASE)
    client = aioredis.Redis.from_url(own_redis.url)
    delayed = await client.zrange("message_queue:retry", 0, -1)
    assert sum(m.startswith(b"s|") for m in delayed) == len(load.keys)
    await client.flushall()
    await client.aclose()

    async def all_due() -> bool:
        rows = await pool.fetch(
            "SELECT status FROM messages WHERE id = ANY($1::uuid[])",
            [message_id for _, message_id in scheduled.values()],
        )
        return all(row["status"] != "scheduled" for row in rows)

    await wait_for(all_due, timeout=10, what="the scheduled sends to fall due", every=0.05)
    healed = time.monotonic()
    still_open = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]) AND status <> 'sent'", load.ids
    )
    for key, (tag, message_id) in scheduled.items():
        load.note(key, tag, message_id)
    await load.send(service.api, PER_PHASE)
    print(f"\n{still_open} of phase 1 were still open when the scheduled ones fell due")
    assert still_open > 0
    await finish(load, calls, pool, "scheduled sends lost from the delay set", healed)
