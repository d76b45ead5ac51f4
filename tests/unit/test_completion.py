"""The completer's decisions, against in-memory fakes of the store and the queue.

PostgreSQL first, then the queue: only outcomes that landed are acknowledged,
a released key gets its next message queued, a retry goes to the delay set,
a failure to the dead letters, and an outcome PostgreSQL refuses for its data
fails that message alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from postline.domain.channels import Channel
from postline.domain.ordering import Head
from postline.domain.outcomes import Outcome
from postline.domain.statuses import Status
from postline.metrics import WorkerMetrics
from postline.queue.streams import Enqueue, Entry
from postline.services.completion import Completer, Done

METRICS = WorkerMetrics()


@dataclass
class FakeStore:
    """Rows as (status, attempt); `complete` is fenced by attempt like the SQL."""

    rows: dict[uuid.UUID, tuple[Status, int]]
    keys: dict[uuid.UUID, str]
    refuse: set[uuid.UUID] = field(default_factory=set)  # data errors, as PostgreSQL would

    async def complete(self, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        if any(o.id in self.refuse and o.status != Status.FAILED for o in outcomes):
            raise asyncpg.exceptions.UntranslatableCharacterError("\\u0000 cannot be converted")
        landed = set()
        for o in outcomes:
            if self.rows.get(o.id) == (Status.SENDING, o.attempt):
                self.rows[o.id] = (o.status, o.attempt)
                landed.add(o.id)
        return landed

    async def next_heads(self, keys: Sequence[str]) -> list[Head]:
        heads = []
        for key in sorted(set(keys)):
            open_ = [
                i for i, k in self.keys.items() if k == key and self.rows[i][0] == Status.PENDING
            ]
            heads += [Head(str(i), Channel.SMS, key, Status.PENDING) for i in open_[:1]]
        return heads


@dataclass
class FakeQueue:
    pushed: list[str] = field(default_factory=list)
    scheduled: list[tuple[str, bool]] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    async def push(self, items: Sequence[Enqueue]) -> int:
        self.pushed += [i.message_id for i in items]
        return len(items)

    async def schedule_many(
        self, items: Sequence[tuple[Enqueue, float]], *, retry: bool, keep: bool = False
    ) -> None:
        self.scheduled += [(i.message_id, retry) for i, _ in items]

    async def unschedule(self, item: Enqueue) -> None:
        raise AssertionError("the completer never unschedules")

    async def ack(self, entries: Sequence[Entry]) -> None:
        self.acked += [e.message_id for e in entries]

    async def dead_letter(self, fields: Sequence[dict[str, str]]) -> None:
        self.dead += [f["id"] for f in fields]


def done(message_id: uuid.UUID, status: Status, *, attempt: int = 1, key: str = "k") -> Done:
    later = datetime.now(UTC) + timedelta(seconds=5) if status == Status.RETRYING else None
    outcome = Outcome(message_id, attempt, status, next_attempt_at=later)
    entry = Entry("message_queue:sms", "1-0", str(message_id))
    return Done(outcome, entry, Channel.SMS, key)


def setup(*rows: tuple[Status, int, str]) -> tuple[list[uuid.UUID], FakeStore, FakeQueue]:
    ids = [uuid.uuid4() for _ in rows]
    store = FakeStore(
        rows={i: (status, attempt) for i, (status, attempt, _) in zip(ids, rows, strict=True)},
        keys={i: key for i, (_, _, key) in zip(ids, rows, strict=True)},
    )
    return ids, store, FakeQueue()


async def test_a_sent_message_is_acknowledged_and_releases_its_key() -> None:
    (sent, waiting), store, queue = setup((Status.SENDING, 1, "k"), (Status.PENDING, 0, "k"))
    await Completer(store=store, queue=queue, metrics=METRICS)([done(sent, Status.SENT)])
    assert store.rows[sent] == (Status.SENT, 1)
    assert queue.acked == [str(sent)] and queue.pushed == [str(waiting)]


async def test_an_outcome_fenced_off_is_neither_acknowledged_nor_releases_the_key() -> None:
    """Another worker took the message over (attempt 2): its entry is not ours to ack."""
    (taken, waiting), store, queue = setup((Status.SENDING, 2, "k"), (Status.PENDING, 0, "k"))
    await Completer(store=store, queue=queue, metrics=METRICS)([done(taken, Status.SENT)])
    assert store.rows[taken] == (Status.SENDING, 2)
    assert queue.acked == [] and queue.pushed == [] and waiting not in queue.pushed


async def test_a_retry_keeps_its_key_and_waits_in_the_delay_set() -> None:
    (retried, _), store, queue = setup((Status.SENDING, 1, "k"), (Status.PENDING, 0, "k"))
    await Completer(store=store, queue=queue, metrics=METRICS)([done(retried, Status.RETRYING)])
    assert queue.scheduled == [(str(retried), True)]
    assert queue.acked == [str(retried)] and queue.pushed == []


async def test_a_failure_is_dead_lettered_and_releases_its_key() -> None:
    (failed, waiting), store, queue = setup((Status.SENDING, 1, "k"), (Status.PENDING, 0, "k"))
    await Completer(store=store, queue=queue, metrics=METRICS)([done(failed, Status.FAILED)])
    assert queue.dead == [str(failed)] and queue.pushed == [str(waiting)]


@pytest.mark.parametrize("culprit_first", [True, False])
async def test_an_outcome_refused_for_its_data_fails_that_message_alone(
    culprit_first: bool,
) -> None:
    (culprit, fine), store, queue = setup((Status.SENDING, 1, "a"), (Status.SENDING, 1, "b"))
    store.refuse = {culprit}
    batch = [done(culprit, Status.SENT, key="a"), done(fine, Status.SENT, key="b")]
    await Completer(store=store, queue=queue, metrics=METRICS)(
        batch if culprit_first else batch[::-1]
    )
    assert store.rows == {culprit: (Status.FAILED, 1), fine: (Status.SENT, 1)}
    assert sorted(queue.acked) == sorted([str(culprit), str(fine)])
    assert queue.dead == [str(culprit)]
