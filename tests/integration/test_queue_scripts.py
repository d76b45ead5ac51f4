"""The queue's Lua scripts against a real Redis, with batches that span channels.

Each script is handed its streams in KEYS (not built from the channel inside
Lua), so a batch must still land each message in its own channel's stream.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from postline.domain.channels import Channel
from postline.queue.keys import QUEUED_INDEX, RETRY_QUEUE, stream_of
from postline.queue.streams import Enqueue, RedisQueue


async def test_push_and_ack_span_channels_in_one_call(
    queue: RedisQueue, redis: aioredis.Redis
) -> None:
    items = [
        Enqueue("m1", Channel.SMS, "k1"),
        Enqueue("m2", Channel.EMAIL, "k2"),
        Enqueue("m3", Channel.SMS, "k3"),
    ]
    assert await queue.push(items) == 3
    assert await redis.xlen(stream_of(Channel.SMS)) == 2
    assert await redis.xlen(stream_of(Channel.EMAIL)) == 1
    assert await queue.queued(items) == {"m1", "m2", "m3"}

    entries = await queue.read("c1", count=10, block_ms=100)
    assert sorted(e.message_id for e in entries) == ["m1", "m2", "m3"]
    await queue.ack(entries)
    assert await redis.xlen(stream_of(Channel.SMS)) == 0
    assert await redis.xlen(stream_of(Channel.EMAIL)) == 0
    assert await redis.hlen(QUEUED_INDEX) == 0


async def test_ack_of_an_old_entry_keeps_the_newer_one_indexed(queue: RedisQueue) -> None:
    item = Enqueue("m1", Channel.WHATSAPP, "k")
    await queue.push([item])
    [old] = await queue.read("c1", count=10, block_ms=100)
    await queue.push([item])
    await queue.ack([old])
    assert await queue.queued([item]) == {"m1"}


async def test_promote_puts_each_due_retry_in_its_own_stream(
    queue: RedisQueue, redis: aioredis.Redis
) -> None:
    mms, whatsapp = Enqueue("r1", Channel.MMS, "a"), Enqueue("r2", Channel.WHATSAPP, "b")
    later = Enqueue("r3", Channel.SMS, "c")
    scheduled = Enqueue("s1", Channel.EMAIL, "d")
    await queue.schedule_many([(mms, 1.0), (whatsapp, 2.0), (later, 1e10)], retry=True)
    await queue.schedule_many([(scheduled, 3.0)], retry=False)

    count, due = await queue.promote_due(now=100.0)
    assert (count, due) == (3, [scheduled])
    assert await redis.xlen(stream_of(Channel.MMS)) == 1
    assert await redis.xlen(stream_of(Channel.WHATSAPP)) == 1
    assert await redis.xlen(stream_of(Channel.SMS)) == 0
    assert await redis.xlen(stream_of(Channel.EMAIL)) == 0  # scheduled: PostgreSQL first
    assert await queue.queued([mms, whatsapp]) == {"r1", "r2"}
    assert await redis.zcard(RETRY_QUEUE) == 1
