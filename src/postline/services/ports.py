"""What the services and the worker need from the store and the queue.

Each consumer takes the narrowest of these Protocols, so a unit test can hand
it an in-memory fake, and `MessageStore` / `RedisQueue` satisfy them as they
are (checked by mypy wherever the real ones are passed in).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from postline.domain.message import Message
from postline.domain.ordering import Head
from postline.domain.outcomes import Outcome
from postline.domain.statuses import Status
from postline.queue.streams import Enqueue, Entry


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
    ) -> list[tuple[Message, Status]]: ...

    async def get(self, message_id: uuid.UUID) -> Message | None: ...
