"""Worker heartbeats in Redis: written, deleted and read here.

Each worker writes `postline:worker:<name>` (JSON: name, last_heartbeat,
inflight, concurrency) every 2 s with a 10 s TTL and deletes it when it
stops. So the keys that exist are the live workers: no clock comparison
between hosts is needed, and a worker that was killed drops out within 10 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from postline.queue.keys import HEARTBEAT_PREFIX, heartbeat

#: A worker whose heartbeat is this old is gone (it renews every 2 s).
HEARTBEAT_TTL_SECONDS = 10


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """One worker's last heartbeat."""

    name: str
    last_heartbeat: str
    inflight: int
    concurrency: int | None = None

    def public(self) -> dict[str, Any]:
        """The shape of `/api/v1/stats` `workers[]` (SPEC 3.1)."""
        return {"name": self.name, "last_heartbeat": self.last_heartbeat, "inflight": self.inflight}


def _parse(raw: str | bytes | None) -> WorkerBeat | None:
    if raw is None:  # expired between SCAN and MGET
        return None
    try:
        beat = orjson.loads(raw)
        concurrency = beat.get("concurrency")
        return WorkerBeat(
            name=str(beat["name"]),
            last_heartbeat=str(beat["last_heartbeat"]),
            inflight=int(beat.get("inflight", 0)),
            concurrency=int(concurrency) if concurrency is not None else None,
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        # Something else wrote under our prefix; it is not a worker we can show.
        return None


async def live_workers(client: aioredis.Redis) -> list[WorkerBeat]:
    """Every worker whose heartbeat key exists, sorted by name.

    SCAN, not KEYS: KEYS blocks Redis for the whole keyspace, and the
    workers' queue traffic goes through the same server.
    """
    keys = [key async for key in client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=500)]
    if not keys:
        return []
    values = await client.mget(keys)
    beats = [beat for raw in values if (beat := _parse(raw)) is not None]
    return sorted(beats, key=lambda beat: beat.name)


async def write_heartbeat(client: aioredis.Redis, beat: WorkerBeat) -> None:
    """Says the worker is alive for the next `HEARTBEAT_TTL_SECONDS`."""
    await client.set(heartbeat(beat.name), orjson.dumps(beat), ex=HEARTBEAT_TTL_SECONDS)


async def delete_heartbeat(client: aioredis.Redis, name: str) -> None:
    """A worker that stops says so at once, instead of after the TTL."""
    await client.delete(heartbeat(name))
