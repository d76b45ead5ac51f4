"""Writes attempt outcomes in batches: PostgreSQL first, then the queues.

The order matters. The row is the truth, so it is written first; only then
are the stream entries acknowledged and the next message of each released
key queued. A crash between the two leaves entries pending and a key's next
message unqueued; the reconciler repairs both, and a redelivered entry finds
the row already finished.

Only entries whose outcome landed are acknowledged: an outcome that the
fence refused (another worker took the message over) leaves that worker's
entry alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from redis.exceptions import RedisError

from postline import tracing
from postline.domain.channels import Channel
from postline.domain.outcomes import Outcome
from postline.domain.statuses import Status
from postline.logs import message_log, message_log_enabled
from postline.metrics import WorkerMetrics
from postline.queue.streams import Enqueue, Entry
from postline.services.ports import Hints, KeyHeads, Outcomes
from postline.store.availability import DB_ERRORS, DB_UNAVAILABLE

log = logging.getLogger("postline.worker")
events = message_log()

T = TypeVar("T")
_BEST_EFFORT: tuple[type[BaseException], ...] = (RedisError, *DB_ERRORS)

__all__ = ["DB_ERRORS", "Completer", "Done", "persist", "queue_next_heads"]


@dataclass(frozen=True, slots=True)
class Done:
    outcome: Outcome
    entry: Entry | None
    channel: Channel
    ordering_key: str
    latency: float = 0.0  # seconds the provider took
    traceparent: str = ""  # the attempt's trace context, "" when tracing is off


async def persist(
    what: str,
    action: Callable[[], Awaitable[T]],
    errors: tuple[type[BaseException], ...],
    *,
    other_tries: int = 5,
) -> T:
    """Retries `action` while it fails with `errors`: an outcome the provider
    already saw must be recorded, or the message would be sent again.

    Backoff is jittered and capped at 2 s, so the write lands soon after the
    dependency is back; the outage is logged once, and so is its end. Any
    other error is tried `other_tries` times in all, then raised: a driver in
    a state it never saw before is worth a few more tries, a bug is not
    worth spinning on forever.
    """
    delay, failures, others = 0.05, 0, 0
    while True:
        try:
            result = await action()
        except errors as exc:
            failures += 1
            if failures == 1:
                log.warning("%s failed, retrying until it succeeds: %s", what, exc)
        except Exception:
            others += 1
            if others >= other_tries:
                raise
            log.exception("%s failed unexpectedly (try %d of %d)", what, others, other_tries)
        else:
            if failures or others:
                log.warning("%s succeeded after %d failed tries", what, failures + others)
            return result
        await asyncio.sleep(random.uniform(delay / 2, delay))
        delay = min(delay * 2, 2.0)


async def queue_next_heads(store: KeyHeads, queue: Hints, keys: Sequence[str]) -> None:
    """Queues the first open message of each released key, if it waits (`pending`).

    Runs after the release is committed, so a message of the key that was
    refused while the released one was still open is found here. Best
    effort: if either side fails, the reconciler queues the head.
    """
    if not keys:
        return
    try:
        heads = await store.next_heads(keys)
        await queue.push(
            [Enqueue(h.id, h.channel, h.ordering_key) for h in heads if h.status == Status.PENDING]
        )
    except _BEST_EFFORT as exc:
        log.warning(
            "could not queue the next message of %d keys (left to the reconciler): %s",
            len(keys),
            exc,
        )


class Completer:
    """The flush function behind the worker's outcome GroupCommit."""

    def __init__(self, *, store: Outcomes, queue: Hints, metrics: WorkerMetrics) -> None:
        self._store = store
        self._queue = queue
        self._metrics = metrics

    async def __call__(self, batch: Sequence[Done]) -> None:
        with tracing.batch_span("postline.complete", (d.traceparent for d in batch)):
            await self._complete(batch)

    async def _complete(self, batch: Sequence[Done]) -> None:
        landed = await persist("status write", lambda: self._write(batch), DB_UNAVAILABLE)
        mine = [replace(d, outcome=landed[d.outcome.id]) for d in batch if d.outcome.id in landed]
        self._count(mine)
        self._log(mine)
        await persist("queue update", lambda: self._queue_side(mine), (RedisError, OSError))
        released = {
            d.ordering_key for d in mine if d.outcome.status in (Status.SENT, Status.FAILED)
        }
        await queue_next_heads(self._store, self._queue, sorted(released))

    async def _write(self, batch: Sequence[Done]) -> dict[uuid.UUID, Outcome]:
        """One statement for the batch; one per outcome if the batch hits a data error.

        Returns the outcome that landed for each message whose row was still
        that attempt's.
        """
        try:
            ids = await self._store.complete([d.outcome for d in batch])
            return {d.outcome.id: d.outcome for d in batch if d.outcome.id in ids}
        except DB_UNAVAILABLE:
            raise
        except DB_ERRORS:
            if len(batch) == 1:
                return await self._fail_unwritable(batch[0])
        landed: dict[uuid.UUID, Outcome] = {}
        for d in batch:
            landed |= await self._write([d])
        return landed

    async def _fail_unwritable(self, done: Done) -> dict[uuid.UUID, Outcome]:
        """An outcome PostgreSQL refuses for its data: fail the message, with the reason."""
        log.error("the outcome of %s cannot be stored; failing the message", done.outcome.id)
        failed = Outcome(
            id=done.outcome.id,
            attempt=done.outcome.attempt,
            status=Status.FAILED,
            error_code="internal_error",
            error_message="the attempt's outcome could not be stored",
            detail="outcome refused by the database",
        )
        ids = await self._store.complete([failed])
        return {failed.id: failed} if failed.id in ids else {}

    @staticmethod
    def _log(done: Sequence[Done]) -> None:
        """One line per state change: ids, channel, attempt, latency; never a body."""
        if not message_log_enabled():
            return
        for d in done:
            events.info(
                f"message.{d.outcome.status.value}",
                message_id=str(d.outcome.id),
                channel=d.channel.value,
                provider=d.outcome.provider,
                attempt=d.outcome.attempt,
                latency_ms=round(d.latency * 1000, 1),
                error_code=d.outcome.error_code,
            )

    def _count(self, done: Sequence[Done]) -> None:
        for d in done:
            channel = d.channel.value
            if d.outcome.status == Status.SENT:
                self._metrics.sent.labels(channel, d.outcome.provider or "").inc()
            elif d.outcome.status == Status.RETRYING:
                self._metrics.retried.labels(channel).inc()
            else:
                self._metrics.failed.labels(channel).inc()

    async def _queue_side(self, mine: Sequence[Done]) -> None:
        retries = []
        for d in mine:
            if d.outcome.status == Status.RETRYING:
                assert d.outcome.next_attempt_at is not None
                item = Enqueue(str(d.outcome.id), d.channel, d.ordering_key)
                retries.append((item, d.outcome.next_attempt_at.timestamp()))
        # A retry keeps its place: it stays its key's head, and its entry
        # comes back to the stream when due.
        await self._queue.schedule_many(retries, retry=True)
        await self._queue.dead_letter(
            [
                {
                    "id": str(d.outcome.id),
                    "channel": d.channel.value,
                    "attempts": str(d.outcome.attempt),
                    "error_code": d.outcome.error_code or "",
                    "error_message": (d.outcome.error_message or "")[:500],
                }
                for d in mine
                if d.outcome.status == Status.FAILED
            ]
        )
        await self._queue.ack([d.entry for d in mine if d.entry is not None])
