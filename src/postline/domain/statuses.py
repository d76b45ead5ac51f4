"""Message statuses and the transitions between them (SPEC 2).

The SQL that moves a row (`store/`) only ever moves it along an edge of this
graph, each statement naming the statuses it may start from, so a late worker
or a late receipt can never step a message backwards. Receipts derive their
allowed sources from `TRANSITIONS` directly.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses that still need work from Postline (what the reconciler looks after).
OPEN: frozenset[Status] = frozenset(
    {Status.SCHEDULED, Status.PENDING, Status.SENDING, Status.RETRYING}
)

#: Statuses no work of Postline's waits on: per-key order is decided among
#: `OPEN` messages only, so a settled message is never needed for it
#: (housekeeping may delete one, `domain/retention.py`).
SETTLED: frozenset[Status] = frozenset(Status) - OPEN

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.PENDING, Status.SENDING, Status.CANCELLED}),
    Status.PENDING: frozenset({Status.SENDING, Status.CANCELLED}),
    Status.SENDING: frozenset({Status.SENT, Status.RETRYING, Status.FAILED, Status.SENDING}),
    Status.RETRYING: frozenset({Status.SENDING, Status.PENDING, Status.CANCELLED}),
    Status.SENT: frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED}),
    Status.DELIVERED: frozenset(),
    Status.UNDELIVERED: frozenset({Status.DELIVERED}),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset(),
}
