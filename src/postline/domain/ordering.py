"""Per-key order: what a key's first open message needs to make progress.

PostgreSQL decides order (README, "Ordering"): a message is claimed only when
it is the first open message of its ordering key. So a key makes progress as
long as its first open message (its head) is somewhere a worker will find
it: in its channel stream, in the delay set waiting for its retry or its
pace (`domain/pacing.py`), or in a live worker's hands. `plan_repairs` is
the reconciler's rule for heads that are nowhere; it is pure, so it is
unit-tested without servers.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from datetime import datetime

from postline.domain.channels import Channel
from postline.domain.statuses import Status


@dataclass(frozen=True, slots=True)
class Head:
    """The first open message of one ordering key, as PostgreSQL sees it (or
    any message as the queue side needs it: id, channel, key, status, times)."""

    id: str
    channel: Channel
    ordering_key: str
    status: Status
    next_attempt_at: datetime | None = None
    lease_lost: bool = False  # `sending`, and its holder's lease ran out
    send_at: datetime | None = None


@dataclass(slots=True)
class Repairs:
    """What to do so that every key's head is somewhere."""

    push: list[Head] = field(default_factory=list)  # into its channel stream
    delay: list[Head] = field(default_factory=list)  # into the delay set, at its retry time


def needs_queue_check(head: Head, now: datetime) -> bool:
    """Whether the head is only reachable through a stream entry (so: is there one?)."""
    if head.status == Status.PENDING:
        return True
    if head.status == Status.RETRYING:
        return head.next_attempt_at is None or head.next_attempt_at <= now
    return head.status == Status.SENDING and head.lease_lost


def plan_repairs(heads: Iterable[Head], *, queued: Set[str], now: datetime) -> Repairs:
    """The repairs for `heads`, given the ids that have a live stream entry
    or wait in the delay set to go back to their stream.

    - pending, a due retry, or `sending` with its lease lost: queued unless
      an entry is already there (a duplicate would only cost a wasted read);
    - a retry not yet due: into the delay set, unless it is there already
      (the delay set is written with NX, so its time is never moved);
    - `sending` with a live lease: a worker has it; nothing to do.
    """
    repairs = Repairs()
    for head in heads:
        if needs_queue_check(head, now):
            if head.id not in queued:
                repairs.push.append(head)
        elif head.status == Status.RETRYING:
            repairs.delay.append(head)
    return repairs


@dataclass(slots=True)
class Later:
    """Refused entries whose message goes again at a time: (message, epoch seconds)."""

    retries: list[tuple[Head, float]] = field(default_factory=list)
    scheduled: list[tuple[Head, float]] = field(default_factory=list)


def come_back_later(refused: Iterable[Head], *, now: datetime) -> Later:
    """What becomes of the stream entries a claim refused, given where their messages stand.

    An entry is only a hint, so it is dropped in every case; a retry or a
    scheduled send that came too early goes back to the delay set for its
    time (or now, if it has none). Every other message needs no entry: it
    is finished or cancelled; or an earlier message of its key is still
    open (that one's completion queues it next); or a live worker holds it
    (if that worker dies, the reconciler queues it once the lease is gone).
    """
    later = Later()
    for message in refused:
        if message.status == Status.RETRYING:
            at = message.next_attempt_at or message.send_at or now
            later.retries.append((message, at.timestamp()))
        elif message.status == Status.SCHEDULED:
            at = message.send_at or now
            later.scheduled.append((message, at.timestamp()))
    return later
