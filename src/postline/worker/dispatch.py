"""From entries read to sends in flight: pace, claim, send, settle the rest.

A batch of stream entries is paced (`pacing`, when on), then claimed in
PostgreSQL, which decides what may go (order, leases, suppression). Each
message claimed is sent in a task of its own and its outcome handed to the
completer, which writes it in batches before it acknowledges the entry.
Entries the claim refused are acknowledged, and those that came too early
go back to the delay set (`come_back_later`).

A claim whose answer did not arrive may have committed all the same: its
ids are kept as unsure (`leases`) and their entries left pending until the
heartbeat has given up their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from postline import tracing
from postline.batching import GroupCommit
from postline.domain.message import Message
from postline.domain.ordering import come_back_later
from postline.domain.outcomes import Outcome, RetryPolicy
from postline.domain.statuses import Status
from postline.logs import message_log, message_log_enabled
from postline.metrics import WorkerMetrics
from postline.queue.pacing import Ask
from postline.queue.streams import Enqueue, Entry
from postline.services.attempts import attempt
from postline.services.completion import Completer, Done
from postline.services.pacing import Pacing
from postline.services.ports import WorkQueue, WorkStore
from postline.services.routing import Router
from postline.worker.leases import Held, Leases
from postline.worker.outage import DEPENDENCY_ERRORS

log = logging.getLogger("postline.worker")
events = message_log()

#: How long a list of live workers (their heartbeats) is trusted.
LIVE_REFRESH_SECONDS = 1.0


class Dispatcher:
    """Turns the entries a worker read into sends (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        store: WorkStore,
        queue: WorkQueue,
        routes: Router,
        policy: RetryPolicy,
        leases: Leases,
        metrics: WorkerMetrics,
        provider_timeout: float,
        pacing: Pacing | None,
    ) -> None:
        self._name = name
        self._store = store
        self._queue = queue
        self._routes = routes
        self._policy = policy
        self._leases = leases
        self.metrics = metrics
        self._provider_timeout = provider_timeout
        self._pacing = pacing
        #: Set whenever a send ends, so a reader waiting for a free slot reads again.
        self.slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: list[str] = []
        self._live_at = float("-inf")
        self._completer = GroupCommit(
            Completer(store=store, queue=queue, metrics=metrics), max_batch=1000, parallel=2
        )

    def start(self) -> None:
        self._completer.start()
        if self._pacing is not None:
            self._pacing.start(self._name)

    async def close(self) -> None:
        """Finishes the sends in flight, then writes their outcomes."""
        if self._tasks:
            log.info("finishing %d sends in flight", len(self._tasks))
            await asyncio.wait(set(self._tasks))
        await self._completer.close()
        if self._pacing is not None:
            await self._pacing.close()

    async def dispatch(self, entries: Sequence[Entry]) -> None:
        by_id: dict[uuid.UUID, Entry] = {}
        extra: list[Entry] = []
        for entry in entries:
            message_id = _uuid(entry.message_id)
            if message_id in self._leases.unsure:
                continue  # left pending until its release lands (see below)
            if message_id is None or message_id in by_id or message_id in self._leases.held:
                extra.append(entry)
            else:
                by_id[message_id] = entry
        live = await self._live_holders()
        charged = await self._pace(by_id)
        try:
            with tracing.batch_span("postline.claim", (e.traceparent for e in by_id.values())):
                claimed = await self._store.claim(
                    list(by_id),
                    holder=self._name,
                    lease=self._leases.lease,
                    live=live,
                    hard_bound=self._leases.hard_bound,
                    paced=None if self._pacing is None else list(charged),
                )
        except BaseException:
            # The claim may have committed without its answer reaching us (the
            # connection broke after COMMIT). Such messages are leased to this
            # live worker, which does not hold them: nobody would send them
            # before the hard bound. The heartbeat gives them up.
            self._leases.unsure.update(by_id)
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
        """Takes pacing slots for the batch before its claim (`services.pacing`):
        entries that must wait go to the delay set for exactly their wait and
        leave the batch, unclaimed. Returns the slots taken, by message."""
        if self._pacing is None or not by_id:
            return {}
        admission = await self._pacing.admit(list(by_id))
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
        self._leases.hold(message.id, entry, paced)
        self.metrics.inflight.set(len(self._leases.held))
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
        held = self._leases.held[message.id]
        sent = False
        try:
            if time.monotonic() > held.lease_ok_until:
                # Paused past the lease (a stopped process, a starved loop):
                # another worker may hold it now. Leave it to the lease.
                log.warning("lease of %s lapsed before its send; not sending", message.id)
                return
            outcome, latency = await attempt(
                message,
                routes=self._routes,
                policy=self._policy,
                deadline=self._provider_timeout,
                suppressed_by=suppressed_by,
            )
            held.answered = True
            # The provider call is over: its concurrency slot is free now,
            # not after the status write (the cap counts provider calls).
            self._free_slot(held)
            await self._throttled(outcome)
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
                    await self._store.release(message.id, holder=self._name)
            self._leases.held.pop(message.id, None)
            self.metrics.inflight.set(len(self._leases.held))
            self.slot_free.set()
            self._free_slot(held)  # a send that ended without a provider answer

    async def _throttled(self, outcome: Outcome) -> None:
        """A "too fast" answer holds the account of the route that gave it
        (pacing off: a 429 is then a plain retry)."""
        if self._pacing is not None and await self._pacing.throttled(outcome):
            self.metrics.throttled.labels(outcome.provider or "").inc()

    def _free_slot(self, held: Held) -> None:
        """Frees the send's concurrency slot in the background, once."""
        ask, held.paced = held.paced, None
        if ask is not None and self._pacing is not None:
            self._pacing.done(ask)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
