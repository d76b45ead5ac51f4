"""The worker loop: read, claim, send concurrently, complete in batches.

One process keeps up to `concurrency` sends in flight. Reading stops while
every slot is taken, so a slow provider backs the queue up in Redis, where
it is visible, not in this process's memory.

Side loops: due retries and scheduled sends are promoted from the delay set;
entries idle past the visibility timeout are taken over (XAUTOCLAIM) from a
worker that died; a heartbeat says this worker is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from postline.batching import GroupCommit
from postline.domain.channels import CHANNEL_STREAMS, CONSUMER_GROUP, Channel
from postline.domain.outcomes import RetryPolicy
from postline.domain.statuses import RELEASES_ORDERING_KEY, Status
from postline.metrics import WorkerMetrics
from postline.providers.base import Provider
from postline.queue.streams import Enqueue, Entry, RedisQueue, consumer_name
from postline.store.messages import MessageStore
from postline.worker.attempts import attempt
from postline.worker.completion import DB_ERRORS, Completer, Done

log = logging.getLogger("postline.worker")

HEARTBEAT_PREFIX = "postline:worker:"
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 10


class Worker:
    """Delivers queued messages until `stop` is set, then finishes what it holds."""

    def __init__(
        self,
        *,
        store: MessageStore,
        queue: RedisQueue,
        providers: Mapping[Channel, Provider],
        policy: RetryPolicy,
        concurrency: int,
        visibility_timeout: float,
        metrics: WorkerMetrics | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or consumer_name()
        self._store = store
        self._queue = queue
        self._providers = providers
        self._policy = policy
        self._concurrency = concurrency
        self._visibility = visibility_timeout
        self.metrics = metrics or WorkerMetrics()
        self._inflight = 0
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._completer = GroupCommit(
            Completer(store=store, queue=queue, metrics=self.metrics), max_batch=1000, parallel=2
        )

    @property
    def inflight(self) -> int:
        return self._inflight

    async def run(self, stop: asyncio.Event) -> None:
        await self._queue.ensure_groups()
        self._completer.start()
        side = [
            asyncio.create_task(self._every(0.2, self._promote, stop), name="promote"),
            asyncio.create_task(self._every(self._visibility / 4, self._reclaim, stop), name="claim"),
            asyncio.create_task(self._every(HEARTBEAT_SECONDS, self._heartbeat, stop), name="beat"),
        ]
        log.info("worker %s started, concurrency %d", self.name, self._concurrency)
        try:
            await self._read_loop(stop)
        finally:
            if self._tasks:
                log.info("finishing %d sends in flight", len(self._tasks))
                await asyncio.wait(set(self._tasks))
            await self._completer.close()
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self._queue.client.delete(HEARTBEAT_PREFIX + self.name)
            log.info("worker %s stopped", self.name)

    async def _read_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            free = self._concurrency - self._inflight
            if free <= 0:
                self._slot_free.clear()
                await _first(self._slot_free.wait(), stop.wait())
                continue
            try:
                entries = await self._queue.read(self.name, count=min(free, 500), block_ms=500)
                if entries:
                    await self._dispatch(entries)
                backoff = 0.1
            except (RedisError, OSError, *DB_ERRORS) as exc:
                log.warning("read failed, retrying in %.1fs: %s", backoff, exc)
                await _first(asyncio.sleep(backoff), stop.wait())
                backoff = min(backoff * 2, 5.0)

    async def _dispatch(self, entries: Sequence[Entry]) -> None:
        by_id: dict[uuid.UUID, Entry] = {}
        extra: list[Entry] = []
        for entry in entries:
            message_id = _uuid(entry.message_id)
            if message_id is None or message_id in by_id:
                extra.append(entry)
            else:
                by_id[message_id] = entry
        rows = await self._store.claim(list(by_id), stale_after=self._visibility)
        for row in rows:
            entry = by_id.pop(row["id"])
            self._start(row, entry)
        await self._settle_unclaimed(by_id, extra)

    async def _settle_unclaimed(self, by_id: dict[uuid.UUID, Entry], extra: list[Entry]) -> None:
        """Entries whose message cannot be sent now: finished, cancelled, a
        duplicate, or not due. Each is acknowledged; a finished head that
        still blocks its key (a crash between status write and advance) is
        released."""
        if not by_id and not extra:
            return
        states = await self._store.states(list(by_id))
        release = [
            Enqueue(str(row["id"]), Channel(row["type"]), row["ordering_key"])
            for row in states.values()
            if row["status"] in RELEASES_ORDERING_KEY
        ]
        await self._queue.advance(release)
        await self._queue.ack([*by_id.values(), *extra])

    def _start(self, row: Mapping[str, Any], entry: Entry) -> None:
        self._inflight += 1
        self.metrics.inflight.set(self._inflight)
        task = asyncio.create_task(self._send(row, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, row: Mapping[str, Any], entry: Entry) -> None:
        try:
            outcome, latency = await attempt(row, providers=self._providers, policy=self._policy)
            self.metrics.provider_duration.labels(outcome.provider or "").observe(latency)
            done = Done(outcome, entry, Channel(row["type"]), row["ordering_key"])
            await self._completer.submit(done)
        except Exception:  # a bug must not kill the loop; the entry is reclaimed later
            log.exception("send of %s crashed", row["id"])
        finally:
            self._inflight -= 1
            self.metrics.inflight.set(self._inflight)
            self._slot_free.set()

    async def _every(self, seconds: float, action: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await action()
            except (RedisError, OSError, *DB_ERRORS) as exc:
                log.warning("%s failed: %s", getattr(action, "__name__", action), exc)
            await _first(asyncio.sleep(seconds), stop.wait())

    async def _promote(self) -> None:
        while await self._queue.promote_due(limit=500) == 500:
            pass

    async def _reclaim(self) -> None:
        """Takes over entries a lost worker read and never acknowledged."""
        idle_ms = int(self._visibility * 1000)
        for stream in CHANNEL_STREAMS:
            free = self._concurrency - self._inflight
            if free <= 0:
                return
            reply = await self._queue.client.xautoclaim(
                stream, CONSUMER_GROUP, self.name, idle_ms, "0-0", count=min(free, 200)
            )
            claimed = [
                Entry(stream, entry_id, (f or {}).get("id", ""), (f or {}).get("k", ""))
                for entry_id, f in reply[1]
            ]
            if claimed:
                log.info("took over %d entries idle for %ds on %s", len(claimed), idle_ms // 1000, stream)
                await self._dispatch(claimed)

    async def _heartbeat(self) -> None:
        beat = {
            "name": self.name,
            "last_heartbeat": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "inflight": self._inflight,
            "concurrency": self._concurrency,
        }
        await self._queue.client.set(
            HEARTBEAT_PREFIX + self.name, orjson.dumps(beat), ex=HEARTBEAT_TTL_SECONDS
        )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _first(*aws: Any) -> None:
    """Waits until the first of `aws` finishes and cancels the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["HEARTBEAT_PREFIX", "Status", "Worker"]
