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
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError, ResponseError

from postline.batching import GroupCommit
from postline.callbacks.dispatcher import CallbackDispatcher
from postline.domain.channels import Channel
from postline.domain.outcomes import RetryPolicy
from postline.domain.statuses import RELEASES_ORDERING_KEY, Status
from postline.logs import message_log, message_log_enabled
from postline.metrics import WorkerMetrics
from postline.providers.base import Provider
from postline.queue.streams import Enqueue, Entry, RedisQueue, consumer_name
from postline.runtime import settle_garbage_collector
from postline.store.messages import MessageStore
from postline.worker import recovery
from postline.worker.attempts import attempt
from postline.worker.completion import DB_ERRORS, Completer, Done
from postline.worker.reconciler import Reconciler

log = logging.getLogger("postline.worker")
events = message_log()

HEARTBEAT_PREFIX = recovery.HEARTBEAT_PREFIX
HEARTBEAT_SECONDS = 2.0


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
        reconcile_interval: float = 10.0,
        reconcile_quiet_for: float = 5.0,
        metrics: WorkerMetrics | None = None,
        name: str | None = None,
        callbacks: CallbackDispatcher | None = None,
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
        self._reconcile_interval = reconcile_interval
        self._callbacks = callbacks
        self.reconciler = Reconciler(
            store=store,
            queue=queue,
            owner=self.name,
            interval=reconcile_interval,
            quiet_for=reconcile_quiet_for,
        )
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
            asyncio.create_task(self._every(1.0, self._reclaim, stop), name="claim"),
            asyncio.create_task(self._every(HEARTBEAT_SECONDS, self._heartbeat, stop), name="beat"),
            asyncio.create_task(
                self._every(self._reconcile_interval, self.reconciler.tick, stop), name="reconcile"
            ),
        ]
        if self._callbacks is not None:
            side.append(
                asyncio.create_task(self._every(0.25, self._callback_round, stop), name="callbacks")
            )
        settle_garbage_collector()
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
            if self._callbacks is not None:
                await self._callbacks.close()
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
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The streams are gone (FLUSHALL, a Redis that lost its data):
                # recreate them; the reconciler refills them from PostgreSQL.
                log.warning("consumer group missing, recreating it")
                await self._queue.ensure_groups()
            except (RedisError, OSError, *DB_ERRORS) as exc:
                log.warning("read failed, retrying in %.1fs: %s", backoff, exc)
                await _first(asyncio.sleep(backoff), stop.wait())
                backoff = min(backoff * 2, 5.0)

    async def _dispatch(
        self, entries: Sequence[Entry], *, stale_after: float | None = None
    ) -> None:
        by_id: dict[uuid.UUID, Entry] = {}
        extra: list[Entry] = []
        for entry in entries:
            message_id = _uuid(entry.message_id)
            if message_id is None or message_id in by_id:
                extra.append(entry)
            else:
                by_id[message_id] = entry
        rows = await self._store.claim(
            list(by_id), stale_after=self._visibility if stale_after is None else stale_after
        )
        log_claims = message_log_enabled()
        for row in rows:
            entry = by_id.pop(row["id"])
            if log_claims:
                again = row["previous"] == Status.SENDING
                events.info("message.sending", message_id=str(row["id"]), channel=row["type"],
                            attempt=row["attempts"], taken_over=again)  # fmt: skip
            self._start(row, entry)
        await self._settle_unclaimed(by_id, extra)

    async def _settle_unclaimed(self, by_id: dict[uuid.UUID, Entry], extra: list[Entry]) -> None:
        """Entries whose message cannot be sent now.

        - finished or cancelled: released from its FIFO (repairs a crash
          between status write and advance) and acknowledged;
        - retrying or scheduled but not yet due: it is its key's head, so it
          goes back to the delay set until its time, and is acknowledged;
        - `sending` in another worker's hands: left unacknowledged, so that if
          that worker is dead the entry is taken over after the visibility
          timeout instead of being lost;
        - unknown id or a duplicate within this read: acknowledged.
        """
        if not by_id and not extra:
            return
        states = await self._store.states(list(by_id))
        release, later, keep = [], [], set()
        for message_id, row in states.items():
            item = Enqueue(str(message_id), Channel(row["type"]), row["ordering_key"])
            if row["status"] in RELEASES_ORDERING_KEY:
                release.append(item)
            elif row["status"] in (Status.RETRYING, Status.SCHEDULED):
                due = row["next_attempt_at"] or row["send_at"] or datetime.now(UTC)
                later.append((item, due.timestamp()))
            elif row["status"] == Status.SENDING:
                keep.add(message_id)
        for item, at in later:
            await self._queue.schedule(item, at=at, retry=True, keep=True)
        await self._queue.advance(release)
        await self._queue.ack([e for i, e in by_id.items() if i not in keep] + extra)

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
            done = Done(outcome, entry, Channel(row["type"]), row["ordering_key"], latency)
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
            except Exception:  # a bug in a side loop must show, and not stop the loop
                log.exception("%s crashed", getattr(action, "__name__", action))
            await _first(asyncio.sleep(seconds), stop.wait())

    async def _promote(self) -> None:
        while await self._queue.promote_due(limit=500) == 500:
            pass

    async def _reclaim(self) -> None:
        """Takes over entries of dead workers (seconds) and idle entries (visibility timeout)."""
        free = self._concurrency - self._inflight
        if free <= 0:
            return
        dead = await recovery.dead_consumers_entries(self._queue.client, self.name, limit=free)
        if dead:
            await self._dispatch(dead, stale_after=recovery.HEARTBEAT_TTL_SECONDS)
        free = self._concurrency - self._inflight
        if free <= 0:
            return
        idle = await recovery.idle_entries(
            self._queue.client, self.name, idle_seconds=self._visibility, limit=min(free, 500)
        )
        if idle:
            log.info("took over %d entries idle for over %.0fs", len(idle), self._visibility)
            await self._dispatch(idle)

    async def _callback_round(self) -> None:
        assert self._callbacks is not None
        while await self._callbacks.tick() > 0:  # drain what is due, then rest
            pass

    async def _heartbeat(self) -> None:
        beat = {
            "name": self.name,
            "last_heartbeat": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "inflight": self._inflight,
            "concurrency": self._concurrency,
        }
        await self._queue.client.set(
            HEARTBEAT_PREFIX + self.name, orjson.dumps(beat), ex=recovery.HEARTBEAT_TTL_SECONDS
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
