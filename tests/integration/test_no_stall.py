"""No key stalls: whatever failed, every acknowledged message ends final, within a bound.

The bound, after the fault heals: RECONCILE_INTERVAL + VISIBILITY_TIMEOUT +
30 s (1 + 7 + 30 here). Redis is the test's own (it is stopped); the API and
a worker run in-process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from postline.domain.message import Message
from postline.embedded import EmbeddedRedis
from postline.queue.streams import Enqueue, RedisQueue
from postline.settings import Settings
from postline.store.messages import MessageStore
from tests.support.faults import Service, in_process, in_thread, script, wait_final
from tests.support.harness import settings_for, wait_for
from tests.support.messages import new_message
from tests.support.order import CallRecorder, KeyedLoad, judge

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(database_url: str, own_redis: EmbeddedRedis, sim: Any, pool: asyncpg.Pool) -> Settings:
    return settings_for(
        database_url, own_redis.url, sim.base_url,
        reconcile_interval_seconds=1, visibility_timeout_seconds=7, provider_timeout_seconds=2,
    )  # fmt: skip


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with in_process(settings, workers=1) as running:
        yield running


def bound(settings: Settings) -> float:
    return settings.reconcile_interval_seconds + settings.visibility_timeout_seconds + 30


async def status_of(pool: asyncpg.Pool, message_id: str) -> str:
    return str(
        await pool.fetchval("SELECT status FROM messages WHERE id = $1", uuid.UUID(message_id))
    )


async def wait_status(pool: asyncpg.Pool, message_id: str, status: str) -> None:
    async def reached() -> bool:
        return await status_of(pool, message_id) == status

    await wait_for(reached, timeout=15, what=f"{message_id} to be {status}")


async def test_cancelling_a_retrying_head_while_redis_fails_releases_its_key(
    own_redis: EmbeddedRedis, service: Service, settings: Settings, sim: Any,
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Redis stops between the cancel's UPDATE and its queue calls (unschedule, next head)."""
    load, calls = KeyedLoad(1), CallRecorder(sim.state)
    key = load.keys[0]
    await script(sim.base_url, {load.to[key]: [{"status": 500, "retry_after": 60}]})
    await load.send(service.api, 3)
    head, *behind = load.ids
    await wait_status(pool, head, "retrying")
    cancel = MessageStore.cancel

    async def cancel_then_lose_redis(self: MessageStore, message_id: uuid.UUID) -> Any:
        outcome = await cancel(self, message_id)
        await in_thread(own_redis.stop)
        return outcome

    monkeypatch.setattr(MessageStore, "cancel", cancel_then_lose_redis)
    answer = await service.api.post(f"/api/v1/messages/{head}/cancel")
    monkeypatch.setattr(MessageStore, "cancel", cancel)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert own_redis.pid is None
    await in_thread(own_redis.start)
    took = await wait_final(pool, behind, within=bound(settings))
    load.accepted[key].remove(f"{key}:0")
    report = judge(calls.calls, load.accepted)
    print(f"\ncancel while Redis failed: the rest of the key sent {took:.1f}s after Redis "
          f"was back (bound {bound(settings):g}s); {report.line()}")  # fmt: skip
    assert await status_of(pool, head) == "cancelled"
    assert [c.tag for c in calls.calls if c.ok and c.tag == f"{key}:0"] == []
    assert report.overtakes == 0 and report.missing == []


async def test_a_retry_requested_while_redis_is_down_is_sent_in_its_turn(
    own_redis: EmbeddedRedis, service: Service, settings: Settings, sim: Any, pool: asyncpg.Pool
) -> None:
    load, calls = KeyedLoad(1), CallRecorder(sim.state)
    key = load.keys[0]
    await script(sim.base_url, {load.to[key]: [400]})  # the first fails for good
    await load.send(service.api, 2)
    failed, second = load.ids
    await wait_status(pool, failed, "failed")
    await wait_status(pool, second, "sent")
    await in_thread(own_redis.stop)
    again = await service.api.post(f"/api/v1/messages/{failed}/retry")
    assert again.status_code == 202 and again.json()["status"] == "pending"
    await load.send(service.api, 1)  # accepted after the retry: it goes after it
    await in_thread(own_redis.start)
    took = await wait_final(pool, load.ids, within=bound(settings))
    # The failed message's turn is now at the back: after `second`, before the last.
    load.accepted[key] = [f"{key}:1", f"{key}:0", f"{key}:2"]
    report = judge([c for c in calls.calls if c.ok], load.accepted)
    print(f"\nretry while Redis was down: all sent {took:.1f}s after Redis was back "
          f"(bound {bound(settings):g}s); {report.line()}")  # fmt: skip
    assert report.overtakes == 0 and report.missing == [] and report.duplicates == 0


@pytest.mark.parametrize("redis_too", [False, True], ids=["worker dies", "and Redis loses it"])
async def test_a_lost_send_behind_a_late_commit_does_not_stall_its_key(
    redis_too: bool, own_redis: EmbeddedRedis, settings: Settings, sim: Any, pool: asyncpg.Pool
) -> None:
    """Positions are drawn before commit, so an earlier position can become visible late.

    Interleaving (forced here with an open transaction):
    1. a large accept batch draws position p1 for message Y of key K, still running;
    2. a small request stores X of K (p2 > p1), commits first, is queued;
    3. a worker claims X (Y is invisible) and dies during the send;
    4. the batch commits: Y is pending at p1 < p2, X is `sending` with a lease
       that runs out.
    X must be taken over and sent, then Y. (It stalled for good: X's claim
    was refused because Y is ahead of it, Y's because X is being sent.)
    """
    store = MessageStore(pool)
    load, calls = KeyedLoad(1), CallRecorder(sim.state)
    key = load.keys[0]
    y_tag, x_tag = load.payload(key)["body"], load.payload(key)["body"]
    y, x = _row(load.to[key], y_tag), _row(load.to[key], x_tag)
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    async with pool.acquire() as batch:
        late = batch.transaction()
        await late.start()
        await store.insert([y], connection=batch)  # step 1: p1 drawn, not committed
        await store.insert([x])  # step 2
        queue = RedisQueue(client)
        await queue.ensure_groups()
        await queue.push([_item(x)])
        await client.xreadgroup("workers", "lost-worker", {"message_queue:sms": ">"})
        claimed = await store.claim([x.id], holder="lost-worker", lease=1)  # step 3
        assert [c.message.id for c in claimed] == [x.id]
        await late.commit()  # step 4
    await queue.push([_item(y)])  # the batch's own push, after its commit
    if redis_too:
        await client.flushall()
    await client.aclose()
    healed = time.monotonic()
    async with in_process(settings, workers=1):
        took = await wait_final(pool, [str(x.id), str(y.id)], within=bound(settings))
    load.note(key, x_tag, str(x.id))
    load.note(key, y_tag, str(y.id))
    report = judge(calls.calls, load.accepted)
    print(f"\nlost send behind a late commit: both sent {took:.1f}s after the loss "
          f"(bound {bound(settings):g}s); {report.line()}")  # fmt: skip
    assert time.monotonic() - healed < bound(settings)
    assert report.overtakes == 0 and report.missing == []


def _row(to: str, body: str) -> Message:
    return new_message(to, from_addr="+15550000000", body=body)


def _item(row: Message) -> Enqueue:
    return Enqueue(str(row.id), row.type, row.ordering_key)
