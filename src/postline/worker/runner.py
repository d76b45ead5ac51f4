"""The worker loop: read, claim, send concurrently, complete in batches.

One process keeps up to `concurrency` sends in flight. Reading stops while
every slot is taken, so a slow provider backs the queue up in Redis, where
it is visible, not in this process's memory.

A claim is a lease in PostgreSQL (`held_by`, `lease_until`). While a send's
provider call or its status write is pending, the heartbeat loop renews it,
so no other worker takes a live send over; a dead worker's leases run out
and its messages are claimed again. Before it calls the provider, a send
checks that its lease has not lapsed meanwhile (a process paused past it).
A worker whose leases lapsed (cut off from PostgreSQL) reads nothing until a
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError, ResponseError

from postline import tracing
from postline.batching import GroupCommit
from postline.callbacks.dispatcher import CallbackDispatcher
from postline.domain.message import Message
from postline.domain.ordering import come_back_later
from postline.domain.outcomes import Outcome, RetryPolicy
from postline.domain.statuses import Status
from postline.logs import message_log, message_log_enabled
from postline.metrics import WorkerMetrics
from postline.queue.pacing import Ask
from postline.queue.streams import Enqueue, Entry, consumer_name
from postline.queue.workers import WorkerBeat
from postline.runtime import settle_garbage_collector
from postline.services.attempts import attempt
from postline.services.completion import Completer, Done
from postline.services.ports import WorkQueue, WorkStore
from postline.services.routing import REFRESH_SECONDS, Router
from postline.worker.outage import DEPENDENCY_ERRORS, POSTGRESQL, REDIS, Outage
from postline.worker.pacing import Pacing
from postline.worker.reconciler import Reconciler

log = logging.getLogger("postline.worker")
events = message_log()

HEARTBEAT_SECONDS = 2.0
#: A send stops calling the provider this close to its lease's end.
LEASE_MARGIN_SECONDS = 2.0
#: An expired lease whose holder still heartbeats (alive, but cut off from
#: PostgreSQL, or stuck) is taken over only this many leases after it ran out.
HARD_BOUND_LEASES = 4
#: How often a worker whose leases lapsed looks again whether it may read.
LAPSED_PAUSE_SECONDS = 0.25
#: How long a list of live workers (their heartbeats) is trusted.
LIVE_REFRESH_SECONDS = 1.0


@dataclass(slots=True)
class Held:
    """A message this worker holds: claimed, being sent or being written."""

    entry: Entry
    claimed: float  # monotonic
    lease_ok_until: float  # monotonic: the lease is ours until then, margin included
    answered: bool = False  # the provider call is over; only the status write is left
    paced: Ask | None = None  # the pacing slots it took, if pacing is on


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
    ) -> None:
        self.name = name or consumer_name()
        self._store = store
        self._queue = queue
        self.routes = routes
        self._policy = policy
        self._concurrency = concurrency
        self._visibility = visibility_timeout
        self._lease = visibility_timeout
        self._provider_timeout = provider_timeout
        self.metrics = metrics or WorkerMetrics()
        self._held: dict[uuid.UUID, Held] = {}
        #: Ids of a claim that failed: it may have committed all the same.
        self._unsure: set[uuid.UUID] = set()
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconcile_interval = reconcile_interval
        self._callbacks = callbacks
        self._pacing = pacing
        self._frees: set[asyncio.Task[None]] = set()
        self._groups_ready = False
        self._hard_bound = HARD_BOUND_LEASES * self._lease
        self._live: list[str] = []
        self._live_at = float("-inf")
        self.reconciler = Reconciler(
            store=store,
            queue=queue,
            owner=self.name,
            interval=reconcile_interval,
            lease_grace=LEASE_MARGIN_SECONDS + HEARTBEAT_SECONDS,
            hard_bound=self._hard_bound,
        )
        self._completer = GroupCommit(
            Completer(store=store, queue=queue, metrics=self.metrics), max_batch=1000, parallel=2
        )

    @property
    def inflight(self) -> int:
        return len(self._held)

    async def run(self, stop: asyncio.Event) -> None:
        self._completer.start()
        if self._pacing is not None:
            self._pacing.start(self.name)
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
            if self._tasks:
                log.info("finishing %d sends in flight", len(self._tasks))
                await asyncio.wait(set(self._tasks))
            await self._completer.close()
            if self._frees:
                await asyncio.wait(set(self._frees))
            if self._pacing is not None:
                await self._pacing.close()
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
                self._slot_free.clear()
                await _first(self._slot_free.wait(), stop.wait())
                continue
            if self._leases_lapsed():
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
                    await self._dispatch(entries)
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

    async def _dispatch(self, entries: Sequence[Entry]) -> None:
        by_id: dict[uuid.UUID, Entry] = {}
        extra: list[Entry] = []
        for entry in entries:
            message_id = _uuid(entry.message_id)
            if message_id in self._unsure:
                continue  # left pending until its release lands (see below)
            if message_id is None or message_id in by_id or message_id in self._held:
                extra.append(entry)
            else:
                by_id[message_id] = entry
        live = await self._live_holders()
        charged = await self._pace(by_id)
        try:
            with tracing.batch_span("postline.claim", (e.traceparent for e in by_id.values())):
                claimed = await self._store.claim(
                    list(by_id),
                    holder=self.name,
                    lease=self._lease,
                    live=live,
                    hard_bound=self._hard_bound,
                )
        except BaseException:
            # The claim may have committed without its answer reaching us (the
            # connection broke after COMMIT). Such messages are leased to this
            # live worker, which does not hold them: nobody would send them
            # before the hard bound. The heartbeat gives them up.
            self._unsure.update(by_id)
            raise
        log_claims = message_log_enabled()
        for message, previous, suppressed_by in claimed:
            entry = by_id.pop(message.id)
            if log_claims:
                events.info(
                    "message.sending",
                    message_id=str(message.id),
                    channel=message.type.value,
                    attempt=message.attempts,
                    taken_over=previous == Status.SENDING,
                )
            self._start(message, entry, suppressed_by, charged.pop(message.id, None))
        if self._pacing is not None and charged:
            await self._pacing.unused(list(charged.values()))
        await self._settle_unclaimed(by_id, extra)

    async def _pace(self, by_id: dict[uuid.UUID, Entry]) -> dict[uuid.UUID, Ask]:
        """Takes pacing slots for the batch before its claim (`worker.pacing`):
        entries that must wait go to the delay set for exactly their wait and
        leave the batch, unclaimed. Returns the slots taken, by message."""
        if self._pacing is None or not by_id:
            return {}
        admission = await self._pacing.admit(by_id)
        if admission.waiting:
            await self._queue.schedule_many(admission.waiting, retry=True)
            await self._queue.ack([by_id.pop(i) for i in admission.waiting_ids])
            for kind, wait in admission.waits:
                self.metrics.paced.labels(kind).observe(wait)
        return admission.charged

    async def _settle_unclaimed(self, by_id: dict[uuid.UUID, Entry], extra: list[Entry]) -> None:
        """Entries whose message cannot be sent now are dropped (acknowledged);
        too early ones go back to the delay set (`come_back_later`)."""
        if not by_id and not extra:
            return
        states = await self._store.states(list(by_id))
        early = come_back_later(states, now=datetime.now(UTC))
        for retry, items in ((True, early.retries), (False, early.scheduled)):
            await self._queue.schedule_many(
                [(Enqueue(h.id, h.channel, h.ordering_key), at) for h, at in items],
                retry=retry,
                keep=True,
            )
        await self._queue.ack([*by_id.values(), *extra])

    async def _live_holders(self) -> list[str]:
        """Workers whose heartbeat exists (cached for a second): their expired
        leases are not taken over before the hard bound."""
        if time.monotonic() - self._live_at > LIVE_REFRESH_SECONDS:
            self._live = [beat.name for beat in await self._queue.live_workers()]
            self._live_at = time.monotonic()
        return self._live

    def _start(
        self, message: Message, entry: Entry, suppressed_by: str | None, paced: Ask | None
    ) -> None:
        now = time.monotonic()
        held = Held(entry, now, now + self._lease - LEASE_MARGIN_SECONDS, paced=paced)
        self._held[message.id] = held
        self.metrics.inflight.set(self.inflight)
        task = asyncio.create_task(self._send(message, entry, suppressed_by))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message: Message, entry: Entry, suppressed_by: str | None) -> None:
        with tracing.message_span(
            "postline.deliver",
            entry.traceparent,
            message_id=entry.message_id,
            channel=message.type.value,
            attempt=message.attempts,
        ):
            await self._deliver(message, entry, suppressed_by)

    async def _deliver(self, message: Message, entry: Entry, suppressed_by: str | None) -> None:
        held = self._held[message.id]
        sent = False
        try:
            if time.monotonic() > held.lease_ok_until:
                # Paused past the lease (a stopped process, a starved loop):
                # another worker may hold it now. Leave it to the lease.
                log.warning("lease of %s lapsed before its send; not sending", message.id)
                return
            outcome, latency = await attempt(
                message,
                routes=self.routes,
                policy=self._policy,
                deadline=self._provider_timeout,
                suppressed_by=suppressed_by,
            )
            held.answered = True
            paced = held.paced
            if paced is not None:
                # The provider call is over: its concurrency slot is free now,
                # not after the status write (the cap counts provider calls).
                self._free_slot(held)
                if outcome.free:
                    await self._throttled(paced, outcome)
            tracing.note_outcome(outcome.status.value, outcome.error_code)
            if outcome.provider is not None:  # else no provider was called (suppressed)
                self.metrics.provider_duration.labels(outcome.provider).observe(latency)
            done = Done(
                outcome, entry, message.type, message.ordering_key, latency, tracing.traceparent()
            )
            await self._completer.submit(done)
            sent = True
        except Exception:  # a bug must not kill the loop; the lease runs out, then a retake
            log.exception("send of %s crashed", message.id)
        finally:
            if not sent:
                # Let another worker take it once the lease runs out, without
                # waiting for the hard bound that protects a live holder.
                with contextlib.suppress(*DEPENDENCY_ERRORS):
                    await self._store.release(message.id, holder=self.name)
            self._held.pop(message.id, None)
            self.metrics.inflight.set(self.inflight)
            self._slot_free.set()
            self._free_slot(held)  # a send that ended without a provider answer

    async def _throttled(self, ask: Ask, outcome: Outcome) -> None:
        """A "too fast" answer holds the account until its Retry-After (the
        message itself waits until then too, without using an attempt)."""
        assert self._pacing is not None and outcome.next_attempt_at is not None
        self.metrics.throttled.labels(outcome.provider or "").inc()
        hold = (outcome.next_attempt_at - datetime.now(UTC)).total_seconds()
        try:
            await self._pacing.hold(ask, max(hold, 0.0))
        except DEPENDENCY_ERRORS as exc:  # the message still waits its Retry-After
            log.warning("pacing: could not hold account %s: %r", ask.pace.account, exc)

    def _free_slot(self, held: Held) -> None:
        """Frees the send's concurrency slot in the background, once (if that
        fails, the slot's lease frees it)."""
        ask, held.paced = held.paced, None
        if ask is None or self._pacing is None:
            return
        task = asyncio.create_task(self._pacing.done(ask))
        self._frees.add(task)
        task.add_done_callback(_discard_freed(self._frees))

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
        if free <= 0 or self._leases_lapsed():
            return
        dead = await self._queue.take_from_dead(self.name, limit=free)
        if dead:
            await self._dispatch(dead)
        free = self._concurrency - self.inflight
        if free <= 0:
            return
        idle = await self._queue.take_idle(
            self.name, idle_seconds=self._visibility, limit=min(free, 500)
        )
        if idle:
            log.info("took over %d entries idle for over %.0fs", len(idle), self._visibility)
            await self._dispatch(idle)

    async def _callback_round(self) -> None:
        assert self._callbacks is not None
        while await self._callbacks.tick() > 0:  # drain what is due, then rest
            pass

    async def _heartbeat(self) -> None:
        """Renews the leases of what this worker holds, then says it is alive.

        A send still inside its provider call past the provider deadline
        (plus a margin) is not renewed: the deadline is enforced, so such a
        send is stuck, and its lease may run out and be taken over.
        """
        try:
            await self._renew_leases()
            await self._release_unsure()
        finally:
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            beat = WorkerBeat(self.name, now, self.inflight, self._concurrency)
            await self._queue.heartbeat(beat)

    async def _release_unsure(self) -> None:
        """Gives up the leases a failed claim may have taken (see `_dispatch`):
        their lease then runs out like a dead worker's, without the hard bound."""
        if not self._unsure:
            return
        ids = [i for i in self._unsure if i not in self._held]
        await self._store.release_many(ids, holder=self.name)
        self._unsure.clear()

    def _renewable(self, now: float) -> list[uuid.UUID]:
        """What the heartbeat renews: all it holds but sends stuck past the deadline."""
        bound = self._provider_timeout + LEASE_MARGIN_SECONDS
        return [
            message_id
            for message_id, held in self._held.items()
            if held.answered or now - held.claimed < bound
        ]

    def _leases_lapsed(self) -> bool:
        """A lease this worker should have renewed has run out (margin included):
        PostgreSQL is out of its reach, or the process was paused. Such a
        worker takes no new work until a renewal goes through."""
        now = time.monotonic()
        return any(now > self._held[i].lease_ok_until for i in self._renewable(now))

    async def _renew_leases(self) -> None:
        started = time.monotonic()
        ids = self._renewable(started)
        if not ids:
            return
        await self._store.renew(ids, holder=self.name, lease=self._lease)
        for message_id in ids:
            held = self._held.get(message_id)
            if held is not None:
                held.lease_ok_until = started + self._lease - LEASE_MARGIN_SECONDS


def _discard_freed(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    """Forgets a finished slot release; one that failed is left to its lease."""

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("pacing: a slot release failed: %r", task.exception())

    return done


def _groups_gone(exc: ResponseError) -> bool:
    text = str(exc)
    return "NOGROUP" in text or "UNBLOCKED" in text


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
