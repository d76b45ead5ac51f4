"""The worker loop: read, dispatch, and the side loops beside it.

One process keeps up to `concurrency` sends in flight. Reading stops while
every slot is taken, so a slow provider backs the queue up in Redis, where
it is visible, not in this process's memory. What it reads is paced,
claimed and sent by the `dispatch`; its claims are leases (`leases`). A
worker whose leases lapsed (cut off from PostgreSQL) reads nothing until a
renewal goes through: what it read it could not claim, and the hints the
reconciler queues for its held messages must reach the workers that can
take them over.

Side loops: due retries and scheduled sends are promoted from the delay set;
entries of dead workers and entries idle past the visibility timeout are
moved to this worker (the claim still decides); a heartbeat says this worker
is alive and renews its leases. No dependency error ends a loop (`outage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError, ResponseError

from postline.callbacks.dispatcher import CallbackDispatcher
from postline.domain.outcomes import RetryPolicy
from postline.metrics import WorkerMetrics
from postline.queue.streams import Enqueue, consumer_name
from postline.queue.workers import WorkerBeat
from postline.runtime import settle_garbage_collector
from postline.services.housekeeping import Housekeeping
from postline.services.pacing import Pacing
from postline.services.ports import WorkQueue, WorkStore
from postline.services.routing import REFRESH_SECONDS, Router
from postline.worker.dispatch import Dispatcher
from postline.worker.leases import HEARTBEAT_SECONDS, LEASE_MARGIN_SECONDS, Leases
from postline.worker.outage import DEPENDENCY_ERRORS, POSTGRESQL, REDIS, Outage
from postline.worker.reconciler import Reconciler

log = logging.getLogger("postline.worker")

#: How often a worker whose leases lapsed looks again whether it may read.
LAPSED_PAUSE_SECONDS = 0.25


class Worker:
    """Delivers queued messages until `stop` is set, then finishes what it holds."""

    def __init__(
        self,
        *,
        store: WorkStore,
        queue: WorkQueue,
        routes: Router,
        policy: RetryPolicy,
        concurrency: int,
        visibility_timeout: float,
        provider_timeout: float = 10.0,
        reconcile_interval: float = 10.0,
        metrics: WorkerMetrics | None = None,
        name: str | None = None,
        callbacks: CallbackDispatcher | None = None,
        pacing: Pacing | None = None,
        housekeeping: Housekeeping | None = None,
    ) -> None:
        self.name = name or consumer_name()
        self._store = store
        self._queue = queue
        self.routes = routes
        self._concurrency = concurrency
        self._visibility = visibility_timeout
        self.metrics = metrics or WorkerMetrics()
        self._reconcile_interval = reconcile_interval
        self._callbacks = callbacks
        self._groups_ready = False
        self._leases = Leases(
            store=store,
            holder=self.name,
            lease=visibility_timeout,
            provider_timeout=provider_timeout,
        )
        self._dispatcher = Dispatcher(
            name=self.name,
            store=store,
            queue=queue,
            routes=routes,
            policy=policy,
            leases=self._leases,
            metrics=self.metrics,
            provider_timeout=provider_timeout,
            pacing=pacing,
        )
        self.reconciler = Reconciler(
            store=store,
            queue=queue,
            owner=self.name,
            interval=reconcile_interval,
            lease_grace=LEASE_MARGIN_SECONDS + HEARTBEAT_SECONDS,
            hard_bound=self._leases.hard_bound,
            housekeeping=housekeeping,
        )

    @property
    def inflight(self) -> int:
        return len(self._leases.held)

    async def run(self, stop: asyncio.Event) -> None:
        self._dispatcher.start()
        loops: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
            ("promote", 0.2, self._promote),
            ("takeover", 1.0, self._reclaim),
            ("heartbeat", HEARTBEAT_SECONDS, self._heartbeat),
            ("reconcile", self._reconcile_interval, self.reconciler.tick),
            ("routes", REFRESH_SECONDS, self.routes.tick),
        ]
        if self._callbacks is not None:
            loops.append(("callbacks", 0.25, self._callback_round))
        side = [
            asyncio.create_task(self._every(name, seconds, action, stop), name=name)
            for name, seconds, action in loops
        ]
        settle_garbage_collector()
        log.info("worker %s started, concurrency %d", self.name, self._concurrency)
        try:
            await self._read_loop(stop)
        finally:
            await self._dispatcher.close()
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if self._callbacks is not None:
                await self._callbacks.close()
            with contextlib.suppress(RedisError, OSError):
                await self._queue.forget_worker(self.name)
            log.info("worker %s stopped", self.name)

    async def _read_loop(self, stop: asyncio.Event) -> None:
        outage = Outage("reading the queue", log)
        while not stop.is_set():
            free = self._concurrency - self.inflight
            if free <= 0:
                self._dispatcher.slot_free.clear()
                await _first(self._dispatcher.slot_free.wait(), stop.wait())
                continue
            if self._leases.lapsed():
                # It could not claim what it read, and it would take the
                # reconciler's hints for its own held messages away from the
                # workers that can take them over: read again once renewed.
                await _first(asyncio.sleep(LAPSED_PAUSE_SECONDS), stop.wait())
                continue
            try:
                if not self._groups_ready:
                    await self._queue.ensure_groups()
                    self._groups_ready = True
                entries = await self._queue.read(self.name, count=min(free, 500), block_ms=500)
                if entries:
                    await self._dispatcher.dispatch(entries)
                await self._succeeded(outage)
            except DEPENDENCY_ERRORS as exc:
                if isinstance(exc, ResponseError) and _groups_gone(exc):
                    # FLUSHALL or a Redis that lost its data: recreate the
                    # streams; the reconciler refills them from PostgreSQL.
                    self._groups_ready = False
                await _first(asyncio.sleep(outage.failed(exc)), stop.wait())
            except Exception as exc:  # a bug must show, and must not stop delivery
                log.exception("read loop error")
                await _first(asyncio.sleep(outage.failed(exc)), stop.wait())

    async def _every(
        self, name: str, seconds: float, action: Callable[[], Awaitable[Any]], stop: asyncio.Event
    ) -> None:
        outage = Outage(name, log)
        while not stop.is_set():
            wait = seconds
            try:
                await action()
                await self._succeeded(outage)
            except DEPENDENCY_ERRORS as exc:
                wait = min(seconds, outage.failed(exc))
            except Exception as exc:  # a bug in a side loop must show, and not stop the loop
                log.exception("%s crashed", name)
                wait = max(seconds, outage.failed(exc))
            await _first(asyncio.sleep(wait), stop.wait())

    async def _succeeded(self, outage: Outage) -> None:
        """A round went through: the outage is over once its cause answers again."""
        if outage.ongoing and not await self._answers(outage.cause):
            return
        outage.ok()

    async def _answers(self, dependency: str | None) -> bool:
        try:
            if dependency == REDIS:
                await self._queue.ping()
            elif dependency == POSTGRESQL:
                await self._store.ping()
        except DEPENDENCY_ERRORS:
            return False
        return True

    async def _promote(self) -> None:
        """Due retries back to their streams; due scheduled sends into their key's queue."""
        while True:
            count, scheduled = await self._queue.promote_due(limit=500)
            if scheduled:
                try:
                    due = await self._store.make_due([uuid.UUID(i.message_id) for i in scheduled])
                except DEPENDENCY_ERRORS:
                    # Put them back; failing that, the reconciler's sweep finds them.
                    with contextlib.suppress(*DEPENDENCY_ERRORS):
                        await self._queue.schedule_many(
                            [(i, time.time()) for i in scheduled], retry=False
                        )
                    raise
                await self._queue.push([Enqueue(h.id, h.channel, h.ordering_key) for h in due])
            if count < 500:
                return

    async def _reclaim(self) -> None:
        """Moves entries of dead workers (seconds) and idle entries here; the claim decides."""
        free = self._concurrency - self.inflight
        if free <= 0 or self._leases.lapsed():
            return
        dead = await self._queue.take_from_dead(self.name, limit=free)
        if dead:
            await self._dispatcher.dispatch(dead)
        free = self._concurrency - self.inflight
        if free <= 0:
            return
        idle = await self._queue.take_idle(
            self.name, idle_seconds=self._visibility, limit=min(free, 500)
        )
        if idle:
            log.info("took over %d entries idle for over %.0fs", len(idle), self._visibility)
            await self._dispatcher.dispatch(idle)

    async def _callback_round(self) -> None:
        assert self._callbacks is not None
        while await self._callbacks.tick() > 0:  # drain what is due, then rest
            pass

    async def _heartbeat(self) -> None:
        """Renews the leases of what this worker holds (but a send stuck past
        the provider deadline, `leases`) and gives up those a failed claim may
        have taken, then says it is alive."""
        try:
            await self._leases.renew()
            await self._leases.release_unsure()
        finally:
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            beat = WorkerBeat(self.name, now, self.inflight, self._concurrency)
            await self._queue.heartbeat(beat)


def _groups_gone(exc: ResponseError) -> bool:
    text = str(exc)
    return "NOGROUP" in text or "UNBLOCKED" in text


async def _first(*aws: Any) -> None:
    """Waits until the first of `aws` finishes and cancels the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
