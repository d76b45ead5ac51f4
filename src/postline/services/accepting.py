"""Accepting messages: store (group commit), then queue; and sync mode's inline send.

A message is committed to PostgreSQL before the API answers 2xx, and put in
Redis only after its row is committed. When Redis is down the row is still
stored and the answer is still 202; the reconciler queues it later. When
PostgreSQL is down nothing is accepted (503).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from postline import tracing
from postline.batching import GroupCommit
from postline.domain.message import Message
from postline.domain.outcomes import RetryPolicy
from postline.domain.statuses import Status
from postline.errors import ContentRefused, DatabaseUnavailable
from postline.logs import message_log, message_log_enabled
from postline.queue.pacing import Ask
from postline.queue.streams import Enqueue
from postline.services.attempts import attempt
from postline.services.completion import Completer, Done
from postline.services.pacing import Pacing
from postline.services.ports import Acceptance, Hints
from postline.services.routing import Router
from postline.store.availability import DB_UNAVAILABLE, refused_values, unavailable

log = logging.getLogger("postline.api")
events = message_log()


@dataclass(slots=True)
class Pending:
    """One request's messages: they are stored together, in one transaction."""

    messages: Sequence[Message]
    enqueue: bool
    # The request's trace context (W3C traceparent), "" when tracing is off.
    traceparent: str = ""
    # Set when the flush had to store its requests one by one and this one
    # could not be stored; the others of the flush were.
    failure: Exception | None = None


class Acceptor:
    """Stores and queues accepted messages, many requests per round trip."""

    def __init__(self, *, store: Acceptance, queue: Hints) -> None:
        self.store = store
        self.queue = queue
        # max_batch counts requests; a batch request brings up to 1000 rows.
        self._commits: GroupCommit[Pending] = GroupCommit(self._flush, max_batch=200, parallel=3)

    def start(self) -> None:
        self._commits.start()

    async def close(self) -> None:
        await self._commits.close()

    async def accept(self, messages: Sequence[Message], *, enqueue: bool = True) -> None:
        """Returns once every message is committed.

        Raises DatabaseUnavailable if PostgreSQL is unavailable, ContentRefused
        if it refused these messages' values (requests stored in the same
        flush are not hurt).
        """
        pending = Pending(messages, enqueue, tracing.traceparent())
        with _database_answers():
            await self._commits.submit(pending)
            if pending.failure is not None:
                raise pending.failure
        log_accepted(messages)

    async def accept_idempotent(
        self, message: Message, *, key: str, request_hash: bytes, enqueue: bool = True
    ) -> tuple[bool, uuid.UUID, bytes]:
        """Like `accept`, unless `key` was used in the last 24 hours.

        Returns (created, message id, the key's request hash). Not batched:
        such requests are a minority and each needs its own transaction.
        """
        with _database_answers():
            created = await self.store.insert_idempotent(
                message, key=key, request_hash=request_hash
            )
        if created[0]:
            log_accepted([message])
            await self._queue_messages([Pending([message], enqueue, tracing.traceparent())])
        return created

    async def _flush(self, batch: Sequence[Pending]) -> None:
        with tracing.batch_span("postline.accept", (p.traceparent for p in batch)):
            await self._store_and_queue(batch)

    async def _store_and_queue(self, batch: Sequence[Pending]) -> None:
        try:
            await self.store.insert([m for p in batch for m in p.messages])
        except asyncpg.PostgresError as exc:
            if len(batch) == 1 or unavailable(exc):
                raise
            # Most likely one request's values were refused (validation
            # missed something): a request must not fail for its neighbour.
            log.warning(
                "a group insert of %d requests was refused (%s, SQLSTATE %s); "
                "storing them one by one",
                len(batch),
                type(exc).__name__,
                exc.sqlstate,
            )
            batch = await self._insert_one_by_one(batch)
        await self._queue_messages(batch)

    async def _insert_one_by_one(self, batch: Sequence[Pending]) -> list[Pending]:
        """Stores each request in its own statement; returns those stored."""
        stored = []
        for pending in batch:
            try:
                await self.store.insert(pending.messages)
            except Exception as exc:  # whatever it is, it is this request's answer alone
                pending.failure = exc
            else:
                stored.append(pending)
        return stored

    async def _queue_messages(self, batch: Sequence[Pending]) -> None:
        """Queues the stored messages of the requests that asked for it.

        A due message's entry carries its request's trace context; a
        scheduled one's does not (the delay set keeps no context).
        """
        due: list[Enqueue] = []
        later: list[tuple[Enqueue, float]] = []
        for pending in batch:
            if not pending.enqueue:
                continue
            for m in pending.messages:
                if m.status == Status.PENDING:
                    due.append(enqueue_item(m, pending.traceparent))
                elif m.status == Status.SCHEDULED and m.send_at is not None:
                    later.append((enqueue_item(m), m.send_at.timestamp()))
        try:
            await self.queue.push(due)
            await self.queue.schedule_many(later, retry=False)
        except (RedisError, OSError) as exc:
            # Stored is what counts: the reconciler queues these when Redis is back.
            log.warning(
                "redis unavailable, %d messages left to the reconciler: %s",
                len(due) + len(later),
                exc,
            )


@contextlib.contextmanager
def _database_answers() -> Iterator[None]:
    """PostgreSQL's errors as the service's: unavailable, or these values refused."""
    try:
        yield
    except DB_UNAVAILABLE as exc:
        log.warning("database unavailable: %s", exc)
        raise DatabaseUnavailable("the database is unavailable") from exc
    except asyncpg.PostgresError as exc:
        if not refused_values(exc):
            raise
        # A bug of validation: the request passed every rule.
        log.error(
            "the database refused a validated message: %s (SQLSTATE %s)",
            type(exc).__name__,
            exc.sqlstate,
        )
        raise ContentRefused(str(exc.sqlstate)) from exc


def log_accepted(messages: Sequence[Message]) -> None:
    """One line per accepted message: id, channel, status; never a body or address."""
    if not message_log_enabled():
        return
    for m in messages:
        events.info(
            f"message.{m.status.value}", message_id=str(m.id), channel=m.type.value, attempt=0
        )


def enqueue_item(message: Message, traceparent: str = "") -> Enqueue:
    return Enqueue(str(message.id), message.type, message.ordering_key, traceparent)


class InlineSender:
    """Sync mode: one attempt inside the request; the workers take it from there.

    With pacing on, the attempt is paced by the buckets the workers share
    (`services.pacing`): a message whose sender or account has no slot free
    now goes to the delay set for exactly its wait, and the workers send it.
    """

    def __init__(
        self,
        *,
        store: Acceptance,
        routes: Router,
        policy: RetryPolicy,
        completer: Completer,
        queue: Hints,
        visibility_timeout: float,
        provider_timeout: float,
        pacing: Pacing | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._deadline = provider_timeout
        self._holder = f"api-{socket.gethostname()}-{os.getpid()}"
        self._routes = routes
        self._policy = policy
        self._completer = completer
        self._visibility = visibility_timeout
        self._pacing = pacing

    def start(self) -> None:
        if self._pacing is not None:
            self._pacing.start(self._holder)

    async def close(self) -> None:
        if self._pacing is not None:
            await self._pacing.close()

    async def send(self, message: Message) -> Message:
        """One attempt now, if the message is its key's first open one and,
        with pacing on, its sender and account have a slot free now.

        Otherwise order or pace wins: the message is queued for the workers
        (or put in the delay set until its slot) and answered as it stands.
        """
        if self._pacing is None:
            await self._attempt(message, None)
        elif (paced := await self._pace(message)) is not None:
            await self._attempt(message, paced)
        stored = await self._store.get(message.id)
        assert stored is not None
        return stored

    async def _pace(self, message: Message) -> Ask | None:
        """The slots this message's attempt took, or None: no attempt now
        (it waits for its slot in the delay set, or is not its key's first
        open message and is queued, or Redis did not answer and the
        reconciler queues it)."""
        assert self._pacing is not None
        try:
            admission = await self._pacing.admit([message.id])
            if admission.waiting:
                await self._queue.schedule_many(admission.waiting, retry=True)
                return None
        except (RedisError, OSError) as exc:  # never send unpaced
            log.warning("pacing unavailable; %s is left to the workers: %s", message.id, exc)
            return None
        paced = admission.charged.get(message.id)
        if paced is None:  # the claim would refuse it too: order wins
            await self._for_workers(message)
        return paced

    async def _attempt(self, message: Message, paced: Ask | None) -> None:
        claimed = await self._store.claim([message.id], holder=self._holder, lease=self._visibility)
        if not claimed:
            if self._pacing is not None and paced is not None:
                with contextlib.suppress(RedisError, OSError):  # else that slot is lost
                    await self._pacing.unused([paced])
            await self._for_workers(message)
            return
        try:
            outcome, _ = await attempt(
                claimed[0].message,
                routes=self._routes,
                policy=self._policy,
                deadline=self._deadline,
                suppressed_by=claimed[0].suppressed_by,
            )
        finally:
            if self._pacing is not None and paced is not None:
                self._pacing.done(paced)  # the provider call is over
        if self._pacing is not None:
            await self._pacing.throttled(outcome)
        tracing.note_outcome(outcome.status.value, outcome.error_code)
        await self._completer([Done(outcome, None, message.type, message.ordering_key)])

    async def _for_workers(self, message: Message) -> None:
        with contextlib.suppress(RedisError, OSError):  # else the reconciler queues it
            await self._queue.push([enqueue_item(message)])
