"""Redis Streams adapter: with its package, the one place that speaks to Redis.

Entries are deleted once acknowledged (XACK + XDEL), so `XLEN` of a channel
stream is the backlog a person sees: not yet read, or read and in flight.
Key names come from `keys`; taking over a lost worker's entries is in
`recovery`, the heartbeat format in `workers`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from postline import tracing
from postline.domain.channels import Channel
from postline.queue import pacing, recovery, scripts, workers
from postline.queue.items import Enqueue, Entry
from postline.queue.keys import (
    ACTIVITY_READING,
    CHANNEL_STREAMS,
    CONSUMER_GROUP,
    DEAD_QUEUE,
    QUEUED_INDEX,
    RECONCILE_LOCK,
    RETRY_QUEUE,
    TOTALS_READING,
    stream_of,
)

DEAD_LETTER_MAXLEN = 100_000


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def connect(url: str, *, timeout: float = 5.0) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        health_check_interval=30,
        max_connections=64,
    )


class RedisQueue:
    """The real queue: channel streams with consumer group `workers`.

    Entries are hints; PostgreSQL decides (see `scripts`). So every method
    may be repeated, and a lost or duplicated entry is repaired by the
    reconciler or refused by the claim.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._push = client.register_script(scripts.PUSH)
        self._push_traced = client.register_script(scripts.PUSH_TRACED)
        self._ack = client.register_script(scripts.ACK)
        self._promote = client.register_script(scripts.PROMOTE)

    async def ensure_groups(self) -> None:
        """Creates the consumer group on every channel stream (idempotent).

        Id `0`, not `$`: entries added before the group existed are still read.
        """
        for stream in CHANNEL_STREAMS:
            try:
                await self.client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def push(self, items: Sequence[Enqueue]) -> int:
        """Puts one entry per message into its channel stream; returns how many."""
        if not items:
            return 0
        streams = [stream_of(item.channel) for item in items]
        keys, index = _declare([QUEUED_INDEX], streams)
        args: list[str | int] = []
        if tracing.enabled() and any(item.traceparent for item in items):
            for item, stream in zip(items, streams, strict=True):
                args += [item.message_id, index[stream], item.ordering_key, item.traceparent]
            return int(await self._push_traced(keys=keys, args=args))
        for item, stream in zip(items, streams, strict=True):
            args += [item.message_id, index[stream], item.ordering_key]
        return int(await self._push(keys=keys, args=args))

    async def queued(self, items: Sequence[Enqueue]) -> set[str]:
        """The ids of `items` whose latest entry is still in its stream (unread
        or pending), or that wait in the delay set to go back to it (a retry,
        or a message waiting for its pace)."""
        if not items:
            return set()
        ids = [item.message_id for item in items]
        where = await self.client.hmget(QUEUED_INDEX, ids)
        found = [(i, str(w).split(" ", 1)) for i, w in zip(ids, where, strict=True) if w]
        async with self.client.pipeline(transaction=False) as pipe:
            for _, (stream, entry) in found:
                pipe.xrange(stream, entry, entry, count=1)
            for item in items:
                pipe.zscore(RETRY_QUEUE, _member("r", item))
            replies = await pipe.execute()
        streamed, delayed = replies[: len(found)], replies[len(found) :]
        in_stream = {i for (i, _), reply in zip(found, streamed, strict=True) if reply}
        return in_stream | {i for i, at in zip(ids, delayed, strict=True) if at is not None}

    async def schedule_many(
        self, items: Sequence[tuple[Enqueue, float]], *, retry: bool, keep: bool = False
    ) -> None:
        """Puts retries (`retry`) or future sends in the delay set, due at the given time.

        `keep` leaves an existing entry's time alone (the reconciler's use).
        """
        if not items:
            return
        kind = "r" if retry else "s"
        mapping = {_member(kind, item): at for item, at in items}
        await self.client.zadd(RETRY_QUEUE, mapping, nx=keep)

    async def unschedule(self, item: Enqueue) -> None:
        """Removes a message's entries from the delay set (it was cancelled)."""
        tail = f"{item.message_id}|{item.channel.value}|{item.ordering_key}"
        await self.client.zrem(RETRY_QUEUE, f"r|{tail}", f"s|{tail}")

    async def promote_due(
        self, *, limit: int = 500, now: float | None = None
    ) -> tuple[int, list[Enqueue]]:
        """Moves due retries back into their streams.

        Returns how many members were due, and the scheduled sends among
        them: those join their key's queue in PostgreSQL first (`make_due`),
        then are pushed.
        """
        moment = time.time() if now is None else now
        count, scheduled = await self._promote(
            keys=[RETRY_QUEUE, QUEUED_INDEX, *CHANNEL_STREAMS],
            args=[moment, limit, *(channel.value for channel in Channel)],
        )
        items = []
        for member in scheduled:
            _, message_id, channel, key = member.split("|", 3)
            items.append(Enqueue(message_id, Channel(channel), key))
        return int(count), items

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[Entry]:
        reply = await self.client.xreadgroup(
            CONSUMER_GROUP,
            consumer,
            dict.fromkeys(CHANNEL_STREAMS, ">"),
            count=count,
            block=block_ms,
        )
        return _entries(reply)

    async def ack(self, entries: Sequence[Entry]) -> None:
        """Acknowledges and deletes entries (and their index fields)."""
        if not entries:
            return
        keys, index = _declare([QUEUED_INDEX], (entry.stream for entry in entries))
        args: list[str | int] = [CONSUMER_GROUP]
        for entry in entries:
            args += [index[entry.stream], entry.entry_id, entry.message_id]
        await self._ack(keys=keys, args=args)

    async def dead_letter(self, fields: Sequence[dict[str, str]]) -> None:
        if not fields:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for item in fields:
                entry: dict[Any, Any] = dict(item)
                pipe.xadd(DEAD_QUEUE, entry, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
            await pipe.execute()

    async def depths(self) -> dict[str, dict[str, int]]:
        """Backlog and in-flight (pending entries) per stream, and the delay set's size."""
        result: dict[str, dict[str, int]] = {}
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in CHANNEL_STREAMS:
                pipe.xlen(stream)
                pipe.xpending(stream, CONSUMER_GROUP)
            pipe.zcard(RETRY_QUEUE)
            pipe.xlen(DEAD_QUEUE)
            replies = await pipe.execute(raise_on_error=False)
        for i, stream in enumerate(CHANNEL_STREAMS):
            depth, pending = replies[2 * i], replies[2 * i + 1]
            result[stream] = {
                "depth": depth if isinstance(depth, int) else 0,
                "pending": pending.get("pending", 0) if isinstance(pending, dict) else 0,
            }
        retry, dead = replies[-2], replies[-1]
        result[RETRY_QUEUE] = {"depth": retry if isinstance(retry, int) else 0, "pending": 0}
        result[DEAD_QUEUE] = {"depth": dead if isinstance(dead, int) else 0, "pending": 0}
        return result

    async def paced(self) -> list[pacing.Waiting]:
        """Per sender, the messages waiting for their pace (`pacing.waiting`)."""
        return await pacing.waiting(self.client)

    async def ping(self) -> None:
        """Raises unless Redis answers."""
        await self.client.ping()

    async def heartbeat(self, beat: workers.WorkerBeat) -> None:
        """Says a worker is alive; without renewal it drops out (`workers`)."""
        await workers.write_heartbeat(self.client, beat)

    async def forget_worker(self, name: str) -> None:
        """Deletes a stopping worker's heartbeat, so it is not counted live."""
        await workers.delete_heartbeat(self.client, name)

    async def live_workers(self) -> list[workers.WorkerBeat]:
        return await workers.live_workers(self.client)

    async def take_from_dead(self, consumer: str, *, limit: int) -> list[Entry]:
        """Entries of consumers whose heartbeat is gone, now `consumer`'s (`recovery`)."""
        return await recovery.dead_consumers_entries(self.client, consumer, limit=limit)

    async def take_idle(self, consumer: str, *, idle_seconds: float, limit: int) -> list[Entry]:
        """Entries unacknowledged for `idle_seconds`, now `consumer`'s (`recovery`)."""
        return await recovery.idle_entries(
            self.client, consumer, idle_seconds=idle_seconds, limit=limit
        )

    async def try_reconcile_lock(self, owner: str, *, ttl_ms: int) -> bool:
        """Takes the reconcile lock unless someone holds it; it lapses after `ttl_ms`."""
        return bool(await self.client.set(RECONCILE_LOCK, owner, nx=True, px=ttl_ms))

    async def latest_reading(self) -> tuple[float, str] | None:
        """The newest shared reading (`offer_reading`) and its time, or None."""
        found = await self.client.zrevrange(TOTALS_READING, 0, 0, withscores=True)
        return (float(found[0][1]), str(found[0][0])) if found else None

    async def activity_reading(self) -> str | None:
        """The shared activity reading (`keep_activity_reading`), while it is fresh."""
        found = await self.client.get(ACTIVITY_READING)
        return None if found is None else str(found)

    async def keep_activity_reading(self, reading: str, *, ttl_ms: int) -> None:
        """Shares `reading` with the other API processes for `ttl_ms`."""
        await self.client.set(ACTIVITY_READING, reading, px=ttl_ms)

    async def offer_reading(self, as_of: float, reading: str) -> tuple[float, str]:
        """Keeps `reading` unless a newer one is kept; returns the one kept.

        The newest wins whatever order the offers arrive in, so the API
        processes serve readings that never step back in time.
        """
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(TOTALS_READING, {reading: as_of})
            pipe.zremrangebyrank(TOTALS_READING, 0, -2)
            pipe.zrevrange(TOTALS_READING, 0, 0, withscores=True)
            *_, kept = await pipe.execute()
        return float(kept[0][1]), str(kept[0][0])


def _member(kind: str, item: Enqueue) -> str:
    """A delay set member (see `scripts.PROMOTE`)."""
    return f"{kind}|{item.message_id}|{item.channel.value}|{item.ordering_key}"


def _declare(first: Sequence[str], streams: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """A script's KEYS: `first`, then each distinct stream once; and each
    stream's (1-based, as Lua counts) place in them."""
    keys = list(first)
    index: dict[str, int] = {}
    for stream in streams:
        if stream not in index:
            keys.append(stream)
            index[stream] = len(keys)
    return keys, index


def _entries(reply: Any) -> list[Entry]:
    entries: list[Entry] = []
    traced = tracing.enabled()
    for stream, items in reply or []:
        for entry_id, fields in items:
            if not fields:  # deleted while pending: nothing left to do but ack it
                entries.append(Entry(stream, entry_id, ""))
            elif traced:
                tp = fields.get(tracing.ENTRY_FIELD, "")
                entries.append(Entry(stream, entry_id, fields.get("id", ""), tp))
            else:
                entries.append(Entry(stream, entry_id, fields.get("id", "")))
    return entries


__all__ = ["Enqueue", "Entry", "RedisQueue", "connect", "consumer_name"]
