"""Accepting messages: store (group commit), then queue, then answer.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from postline.api.errors import ApiError
from postline.api.schemas import MessageCreate
from postline.batching import GroupCommit
from postline.domain.channels import Channel
from postline.domain.outcomes import RetryPolicy
from postline.domain.statuses import Status
from postline.logs import message_log, message_log_enabled
from postline.providers.base import Provider
from postline.queue.streams import Enqueue, RedisQueue
from postline.store.availability import DB_UNAVAILABLE, refused_values, unavailable
from postline.store.messages import MessageStore, NewMessage
from postline.store.records import public_message
from postline.worker.attempts import attempt
from postline.worker.completion import Completer, Done

log = logging.getLogger("postline.api")
events = message_log()


@dataclass(slots=True)
class Pending:
    """One request's rows: they are stored together, in one transaction."""

    rows: Sequence[NewMessage]
    enqueue: bool
    # Set when the flush had to store its requests one by one and this one
    # could not be stored; the others of the flush were.
    failure: Exception | None = None


def new_row(request: MessageCreate, *, idempotency_key: str | None, now: datetime) -> NewMessage:
    checked = request.checked
    scheduled = request.send_at is not None and request.send_at > now
    return NewMessage(
        id=uuid.uuid4(),
        type=checked.channel.value,
        status=(Status.SCHEDULED if scheduled else Status.PENDING).value,
        from_addr=checked.from_addr,
        to_addr=checked.to_addr,
        body=checked.body,
        subject=checked.subject,
        html=checked.html,
        attachments=checked.attachments,
        ordering_key=checked.ordering_key,
        send_at=request.send_at,
        metadata=checked.metadata,
        callback_url=request.callback_url,
        idempotency_key=idempotency_key,
        created_at=now,
    )


def row_view(row: NewMessage) -> dict[str, Any]:
    """The answer for a just-stored row, without reading it back."""
    return public_message(
        {
            "id": row.id, "status": row.status, "type": row.type, "from_addr": row.from_addr,
            "to_addr": row.to_addr, "body": row.body, "subject": row.subject, "html": row.html,
            "attachments": row.attachments, "ordering_key": row.ordering_key,
            "send_at": row.send_at, "metadata": row.metadata, "callback_url": row.callback_url,
            "attempts": 0, "error_code": None, "error_message": None, "provider": None,
            "provider_message_id": None, "next_attempt_at": None, "created_at": row.created_at,
            "updated_at": row.created_at, "sent_at": None, "delivered_at": None,
        }
    )  # fmt: skip


class Acceptor:
    """Stores and queues accepted messages, many requests per round trip."""

    def __init__(self, *, store: MessageStore, queue: RedisQueue) -> None:
        self.store = store
        self.queue = queue
        # max_batch counts requests; a batch request brings up to 1000 rows.
        self._commits: GroupCommit[Pending] = GroupCommit(self._flush, max_batch=200, parallel=3)

    def start(self) -> None:
        self._commits.start()

    async def close(self) -> None:
        await self._commits.close()

    async def accept(self, rows: Sequence[NewMessage], *, enqueue: bool = True) -> None:
        """Returns once every row is committed.

        Raises ApiError 503 if PostgreSQL is unavailable, 422 if it refused
        these rows' values (requests stored in the same flush are not hurt).
        """
        pending = Pending(rows, enqueue)
        try:
            await self._commits.submit(pending)
            if pending.failure is not None:
                raise pending.failure
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable: %s", exc)
            raise ApiError(503, "the database is unavailable", code="database_unavailable") from exc
        except asyncpg.PostgresError as exc:
            if refused_values(exc):
                raise refused(exc) from exc
            raise
        log_accepted(rows)

    async def accept_idempotent(
        self, row: NewMessage, *, key: str, request_hash: bytes, enqueue: bool = True
    ) -> tuple[bool, uuid.UUID, bytes]:
        """Like `accept`, unless `key` was used in the last 24 hours.

        Returns (created, message id, the key's request hash). Not batched:
        such requests are a minority and each needs its own transaction.
        """
        try:
            created = await self.store.insert_idempotent(row, key=key, request_hash=request_hash)
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable: %s", exc)
            raise ApiError(503, "the database is unavailable", code="database_unavailable") from exc
        except asyncpg.PostgresError as exc:
            if refused_values(exc):
                raise refused(exc) from exc
            raise
        if created[0]:
            log_accepted([row])
            if enqueue:
                await self._queue_rows([row])
        return created

    async def _flush(self, batch: Sequence[Pending]) -> None:
        try:
            await self.store.insert([row for p in batch for row in p.rows])
        except asyncpg.PostgresError as exc:
            if len(batch) == 1 or unavailable(exc):
                raise
            # Most likely one request's values were refused (validation
            # missed something): a request must not fail for its neighbour.
            log.warning(
                "a group insert of %d requests was refused (%s, SQLSTATE %s); "
                "storing them one by one",
                len(batch), type(exc).__name__, exc.sqlstate,
            )  # fmt: skip
            batch = await self._insert_one_by_one(batch)
        await self._queue_rows([row for p in batch if p.enqueue for row in p.rows])

    async def _insert_one_by_one(self, batch: Sequence[Pending]) -> list[Pending]:
        """Stores each request in its own statement; returns those stored."""
        stored = []
        for pending in batch:
            try:
                await self.store.insert(pending.rows)
            except Exception as exc:  # whatever it is, it is this request's answer alone
                pending.failure = exc
            else:
                stored.append(pending)
        return stored

    async def _queue_rows(self, rows: Sequence[NewMessage]) -> None:
        due = [r for r in rows if r.status == Status.PENDING]
        later = [
            (enqueue_item(r), r.send_at.timestamp())
            for r in rows
            if r.status == Status.SCHEDULED and r.send_at is not None
        ]
        try:
            await self.queue.push([enqueue_item(r) for r in due])
            await self.queue.schedule_many(later, retry=False)
        except (RedisError, OSError) as exc:
            # Stored is what counts: the reconciler queues these when Redis is back.
            log.warning("redis unavailable, %d messages left to the reconciler: %s", len(rows), exc)


def refused(exc: asyncpg.PostgresError) -> ApiError:
    """422 for a request whose values PostgreSQL refused; a bug of validation, logged."""
    log.error("the database refused a validated message: %s (SQLSTATE %s)",
              type(exc).__name__, exc.sqlstate)  # fmt: skip
    message = "the database refused this message's content"
    detail = {"loc": ["body"], "msg": f"{message} (SQLSTATE {exc.sqlstate})",
              "type": "database_refused"}  # fmt: skip
    return ApiError(422, message, details=[detail])


def log_accepted(rows: Sequence[NewMessage]) -> None:
    """One line per accepted message: id, channel, status; never a body or address."""
    if not message_log_enabled():
        return
    for row in rows:
        events.info(f"message.{row.status}", message_id=str(row.id), channel=row.type, attempt=0)


def enqueue_item(row: NewMessage) -> Enqueue:
    return Enqueue(str(row.id), Channel(row.type), row.ordering_key)


class InlineSender:
    """Sync mode: one attempt inside the request; the workers take it from there."""

    def __init__(
        self,
        *,
        store: MessageStore,
        providers: Mapping[Channel, Provider],
        policy: RetryPolicy,
        completer: Completer,
        queue: RedisQueue,
        visibility_timeout: float,
        provider_timeout: float,
    ) -> None:
        self._store = store
        self._queue = queue
        self._deadline = provider_timeout
        self._holder = f"api-{socket.gethostname()}-{os.getpid()}"
        self._providers = providers
        self._policy = policy
        self._completer = completer
        self._visibility = visibility_timeout

    async def send(self, row: NewMessage) -> dict[str, Any]:
        """One attempt now, if the message is its key's first open one.

        Otherwise an earlier message of its key is still open: order wins,
        the message is queued for the workers and answered as it stands.
        """
        claimed = await self._store.claim([row.id], holder=self._holder, lease=self._visibility)
        if claimed:
            outcome, _ = await attempt(
                claimed[0], providers=self._providers, policy=self._policy,
                deadline=self._deadline,
            )  # fmt: skip
            await self._completer([Done(outcome, None, Channel(row.type), row.ordering_key)])
        else:
            with contextlib.suppress(RedisError, OSError):  # else the reconciler queues it
                await self._queue.push([enqueue_item(row)])
        stored = await self._store.get(row.id)
        assert stored is not None
        return public_message(stored)
