"""Writes attempt outcomes in batches: PostgreSQL first, then the queues.

The order matters. The row is the truth, so it is written first; only then
is the stream entry acknowledged and the key's FIFO advanced. A crash
between the two leaves the entry pending; whoever claims it next finds the
row already finished and only repeats the queue half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from postline.domain.channels import Channel
from postline.domain.statuses import Status
from postline.logs import message_log, message_log_enabled
from postline.metrics import WorkerMetrics
from postline.queue.streams import Enqueue, Entry, RedisQueue
from postline.store.messages import MessageStore, Outcome

log = logging.getLogger("postline.worker")
events = message_log()

DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class Done:
    outcome: Outcome
    entry: Entry | None
    channel: Channel
    ordering_key: str
    latency: float = 0.0  # seconds the provider took


async def persist(
    what: str, action: Callable[[], Any], errors: tuple[type[BaseException], ...]
) -> Any:
    """Retries `action` until it succeeds: an outcome the provider already
    saw must be recorded, or the message would be sent again."""
    delay = 0.1
    while True:
        try:
            return await action()
        except errors as exc:
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Completer:
    """The flush function behind the worker's outcome GroupCommit."""

    def __init__(self, *, store: MessageStore, queue: RedisQueue, metrics: WorkerMetrics) -> None:
        self._store = store
        self._queue = queue
        self._metrics = metrics

    async def __call__(self, batch: Sequence[Done]) -> None:
        landed: set[Any] = await persist(
            "status write", lambda: self._store.complete([d.outcome for d in batch]), DB_ERRORS
        )
        mine = [d for d in batch if d.outcome.id in landed]
        self._count(mine)
        self._log(mine)
        await persist("queue update", lambda: self._queue_side(batch, mine), (RedisError, OSError))

    @staticmethod
    def _log(done: Sequence[Done]) -> None:
        """One line per state change: ids, channel, attempt, latency; never a body."""
        if not message_log_enabled():
            return
        for d in done:
            events.info(
                f"message.{d.outcome.status}",
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

    async def _queue_side(self, batch: Sequence[Done], mine: Sequence[Done]) -> None:
        release = []
        for d in mine:
            item = Enqueue(str(d.outcome.id), d.channel, d.ordering_key)
            if d.outcome.status == Status.RETRYING:
                assert d.outcome.next_attempt_at is not None
                # A stream entry means "this key's head"; sync-mode sends never
                # had one, so their retry joins the FIFO instead.
                await self._queue.schedule(
                    item, at=d.outcome.next_attempt_at.timestamp(), retry=d.entry is not None
                )
            else:
                release.append(item)
        await self._queue.advance(release)
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
        await self._queue.ack([d.entry for d in batch if d.entry is not None])
