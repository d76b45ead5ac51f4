"""What the services and the worker need from the store and the queue.

Each consumer takes the narrowest of these Protocols, so a unit test can hand
it an in-memory fake, and `MessageStore` / `RedisQueue` satisfy them as they
are (checked by mypy wherever the real ones are passed in).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from postline.domain.inbound import Effects, InboundMessage
from postline.domain.message import Claimed, Message
from postline.domain.ordering import Head
from postline.domain.outcomes import Outcome
from postline.domain.retention import Kind
from postline.queue.streams import Enqueue, Entry
from postline.queue.workers import WorkerBeat
from postline.store.inbound import Recorded


class Hints(Protocol):
    """The queue as the services use it: hints in, acknowledgements, dead letters."""

    async def push(self, items: Sequence[Enqueue]) -> int: ...

    async def schedule_many(
        self, items: Sequence[tuple[Enqueue, float]], *, retry: bool, keep: bool = False
    ) -> None: ...

    async def unschedule(self, item: Enqueue) -> None: ...

    async def ack(self, entries: Sequence[Entry]) -> None: ...

    async def dead_letter(self, fields: Sequence[dict[str, str]]) -> None: ...


class KeyHeads(Protocol):
    """Where each ordering key stands: what a released key sends next."""

    async def next_heads(self, keys: Sequence[str]) -> list[Head]: ...


class Outcomes(KeyHeads, Protocol):
    """What the completer writes: attempt outcomes, fenced by attempt."""

    async def complete(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]: ...


class Acceptance(Protocol):
    """What acceptance and sync mode need: store new messages, claim and read one."""

    async def insert(self, messages: Sequence[Message]) -> None: ...

    async def insert_idempotent(
        self, message: Message, *, key: str, request_hash: bytes
    ) -> tuple[bool, uuid.UUID, bytes]: ...

    async def claim(
        self, ids: Sequence[uuid.UUID], *, holder: str, lease: float
    ) -> list[Claimed]: ...

    async def get(self, message_id: uuid.UUID) -> Message | None: ...


class LiveWorkers(Protocol):
    """Which workers heartbeat: their expired leases wait for the hard bound."""

    async def live_workers(self) -> list[WorkerBeat]: ...


class ReconcileQueue(LiveWorkers, Protocol):
    """The queue as the reconciler repairs it."""

    async def try_reconcile_lock(self, owner: str, *, ttl_ms: int) -> bool: ...

    async def push(self, items: Sequence[Enqueue]) -> int: ...

    async def queued(self, items: Sequence[Enqueue]) -> set[str]: ...

    async def schedule_many(
        self, items: Sequence[tuple[Enqueue, float]], *, retry: bool, keep: bool = False
    ) -> None: ...


class WorkQueue(Hints, ReconcileQueue, Protocol):
    """The queue as a worker reads it, and says it is alive."""

    async def ensure_groups(self) -> None: ...

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[Entry]: ...

    async def promote_due(self, *, limit: int) -> tuple[int, list[Enqueue]]: ...

    async def take_from_dead(self, consumer: str, *, limit: int) -> list[Entry]: ...

    async def take_idle(self, consumer: str, *, idle_seconds: float, limit: int) -> list[Entry]: ...

    async def heartbeat(self, beat: WorkerBeat) -> None: ...

    async def forget_worker(self, name: str) -> None: ...

    async def ping(self) -> None: ...


class Scheduled(Protocol):
    """Scheduled sends joining their key's queue when due."""

    async def make_due(
        self, ids: Sequence[uuid.UUID] | None = None, *, limit: int = 1000
    ) -> list[Head]: ...


class ReconcileStore(Scheduled, Protocol):
    """What the reconciler reads and repairs from PostgreSQL."""

    async def scheduled_before(self, *, until: float, limit: int) -> list[Head]: ...

    async def open_heads(
        self,
        *,
        after_key: str | None,
        limit: int,
        lease_grace: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
    ) -> list[Head]: ...


class WorkStore(Outcomes, ReconcileStore, Protocol):
    """What a worker needs from PostgreSQL: claims and leases, and what its
    completer and reconciler need."""

    async def claim(
        self,
        ids: Sequence[uuid.UUID],
        *,
        holder: str,
        lease: float,
        live: Sequence[str] = (),
        hard_bound: float = 0.0,
        paced: Sequence[uuid.UUID] | None = None,
    ) -> list[Claimed]: ...

    async def release(self, message_id: uuid.UUID, *, holder: str) -> None: ...

    async def release_many(self, ids: Sequence[uuid.UUID], *, holder: str) -> None: ...

    async def renew(self, ids: Sequence[uuid.UUID], *, holder: str, lease: float) -> int: ...

    async def states(self, ids: Sequence[uuid.UUID]) -> list[Head]: ...

    async def ping(self) -> None: ...


class InboundRecords(Protocol):
    """Where inbound messages are kept (`store.inbound.InboundStore`)."""

    async def record(
        self,
        message: InboundMessage,
        *,
        effects: Effects,
        callback: tuple[str, bytes] | None = None,
    ) -> Recorded: ...


class Purges(Protocol):
    """Housekeeping's deletes, a bounded batch at a time (`store.retention.RetentionStore`)."""

    async def purge(self, kind: Kind, *, older_than: timedelta, limit: int) -> int: ...

    async def purgeable(self, kind: Kind, *, older_than: timedelta) -> int: ...
