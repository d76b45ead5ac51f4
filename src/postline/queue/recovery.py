"""Taking over work a lost worker held.

Two ways, both ending in the worker's normal fenced claim:
- entries idle past the visibility timeout are claimed with XAUTOCLAIM (any
  cause: a crash, a network split, a stuck process);
- a consumer whose heartbeat has expired is dead: its entries are claimed at
  once (XCLAIM) instead of waiting out the visibility timeout, and the
  consumer is removed from the group once it holds nothing, never before
  (deleting a consumer deletes its pending entries).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from postline import tracing
from postline.queue.items import Entry
from postline.queue.keys import CHANNEL_STREAMS, CONSUMER_GROUP, heartbeat
from postline.queue.workers import HEARTBEAT_TTL_SECONDS

log = logging.getLogger("postline.worker")  # what a worker does, wherever the code lives


def _entry(stream: str, entry_id: str, fields: dict[str, str] | None) -> Entry:
    fields = fields or {}
    return Entry(stream, entry_id, fields.get("id", ""), fields.get(tracing.ENTRY_FIELD, ""))


async def idle_entries(
    client: aioredis.Redis, consumer: str, *, idle_seconds: float, limit: int
) -> list[Entry]:
    """XAUTOCLAIM on every channel stream, up to `limit` entries in all."""
    found: list[Entry] = []
    for stream in CHANNEL_STREAMS:
        if len(found) >= limit:
            break
        reply = await client.xautoclaim(
            stream,
            CONSUMER_GROUP,
            consumer,
            int(idle_seconds * 1000),
            "0-0",
            count=limit - len(found),
        )
        found += [_entry(stream, entry_id, fields) for entry_id, fields in reply[1]]
    return found


async def dead_consumers_entries(
    client: aioredis.Redis, consumer: str, *, limit: int
) -> list[Entry]:
    """Claims what consumers without a live heartbeat hold; forgets empty dead consumers."""
    found: list[Entry] = []
    min_idle = HEARTBEAT_TTL_SECONDS * 1000
    for stream in CHANNEL_STREAMS:
        for info in await client.xinfo_consumers(stream, CONSUMER_GROUP):
            name = info["name"]
            if name == consumer or info["idle"] < min_idle:
                continue
            if await client.exists(heartbeat(name)):
                continue
            if info["pending"] == 0:
                await client.xgroup_delconsumer(stream, CONSUMER_GROUP, name)
                continue
            if len(found) >= limit:
                continue
            pending = await client.xpending_range(
                stream,
                CONSUMER_GROUP,
                min="-",
                max="+",
                count=limit - len(found),
                consumername=name,
            )
            ids: list[Any] = [p["message_id"] for p in pending]
            if not ids:
                continue
            claimed: list[Any] = await client.xclaim(
                stream, CONSUMER_GROUP, consumer, min_idle, ids
            )
            log.warning("worker %s is gone: took over %d entries on %s", name, len(claimed), stream)
            found += [_entry(stream, entry_id, fields) for entry_id, fields in claimed]
    return found
