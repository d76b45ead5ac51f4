"""The pacing scripts against a real Redis: slots, reservations, refunds,
holds and the concurrency cap, shared by every pacer on the same Redis."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from postline.domain.pacing import Pace, SenderClass
from postline.queue.keys import PACE_WAITING
from postline.queue.pacing import Ask, RedisPacer, waiting
from tests.support.harness import wait_for

pytestmark = pytest.mark.timeout(30)

TEN_PER_SECOND = Pace("+15551234567", SenderClass.LONG_CODE, 100.0, "twilio:AC1", 0.0, 0)
CAPPED = Pace(None, SenderClass.LONG_CODE, 0.0, "twilio:AC2", 0.0, 2)


def asks(pace: Pace, n: int) -> list[Ask]:
    return [Ask(str(uuid.uuid4()), pace) for _ in range(n)]


async def test_a_batch_is_spread_one_interval_apart_and_each_waiter_holds_its_slot(
    redis: aioredis.Redis,
) -> None:
    pacer, other = RedisPacer(redis, lease_seconds=5), RedisPacer(redis, lease_seconds=5)
    batch = asks(TEN_PER_SECOND, 5)
    waits = await pacer.take(batch, holder="w1")
    assert waits[0] == 0
    for n, wait in enumerate(waits[1:], start=1):  # slots 100 ms apart, whoever asks
        assert n * 100 - 20 <= wait <= n * 100
    assert await redis.zcard(PACE_WAITING) == 4
    # Coming back (or a duplicate entry) before its slot: still waiting, charged once.
    again = await other.take(batch[1:], holder="w2")
    assert all(0 < a <= w for a, w in zip(again, waits[1:], strict=True))
    fresh = await other.take(asks(TEN_PER_SECOND, 1), holder="w2")
    assert 480 <= fresh[0] <= 500  # after the five reserved slots, not among them
    [row] = await waiting(redis)
    assert (row.sender, row.sender_class, row.waiting) == ("+15551234567", "long_code", 5)
    assert 0.4 <= row.wait_seconds <= 0.5

    async def second_slot_came() -> bool:
        return (await pacer.take(batch[1:2], holder="w1")) == [0]

    await wait_for(second_slot_came, timeout=2, what="the reserved slot", every=0.01)
    assert await redis.zcard(PACE_WAITING) == 4  # its reservation is used up


async def test_a_refund_frees_the_slot_only_when_nobody_reserved_after_it(
    redis: aioredis.Redis,
) -> None:
    pacer = RedisPacer(redis, lease_seconds=5)
    [first] = asks(TEN_PER_SECOND, 1)
    assert await pacer.take([first], holder="w") == [0]
    await pacer.give_back(unused=[first], holder="w")
    assert await pacer.take(asks(TEN_PER_SECOND, 1), holder="w") == [0]  # refunded
    second, third = asks(TEN_PER_SECOND, 2)
    assert (await pacer.take([third], holder="w"))[0] > 0  # reserved on top
    await pacer.give_back(unused=[second], holder="w")
    assert (await pacer.take(asks(TEN_PER_SECOND, 1), holder="w"))[0] >= 150


async def test_a_hold_stops_the_whole_account_until_it_ends(redis: aioredis.Redis) -> None:
    pacer = RedisPacer(redis, lease_seconds=5)
    other_sender = Pace("+15557654321", SenderClass.LONG_CODE, 100.0, "twilio:AC1", 0.0, 0)
    await pacer.hold("twilio:AC1", 1.5)
    waits = await pacer.take([*asks(TEN_PER_SECOND, 1), *asks(other_sender, 1)], holder="w")
    assert all(1400 <= w <= 1500 for w in waits)
    elsewhere = Pace("+15550001111", SenderClass.LONG_CODE, 100.0, "twilio:AC9", 0.0, 0)
    assert await pacer.take(asks(elsewhere, 1), holder="w") == [0]


async def test_the_concurrency_cap_is_shared_and_a_dead_holders_slots_lapse(
    redis: aioredis.Redis,
) -> None:
    short = RedisPacer(redis, lease_seconds=0.5, busy_ms=100)
    three = asks(CAPPED, 3)
    assert await short.take(three, holder="dead") == [0, 0, 100]
    other = RedisPacer(redis, lease_seconds=5)
    assert await other.take(three[2:], holder="w") == [100]

    async def lapsed() -> bool:
        return (await other.take(three[2:], holder="w")) == [0]

    await wait_for(lapsed, timeout=3, what="the dead holder's slots to lapse", every=0.05)
    [mine] = three[2:]
    assert await other.take(asks(CAPPED, 1), holder="w") == [0]
    assert await other.take(asks(CAPPED, 1), holder="w") == [100]
    await other.give_back(done=[mine], holder="w")
    assert await other.take(asks(CAPPED, 1), holder="w") == [0]
