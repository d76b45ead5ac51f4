"""Housekeeping: what a long-running Postline deletes, and what it never may.

Four kinds of rows would otherwise grow without bound (README, "Housekeeping"):

- idempotency keys older than 24 h: a key holds for 24 h (SPEC 3), and an
  older one is replaced anyway when its key is used again;
- suppressions whose expiry has passed: they are inactive already (the
  claim and the list ignore them; suppressing the recipient again replaces
  the row), so nothing reads them any more;
- inbound messages received more than `INBOUND_RETENTION_DAYS` ago;
- settled messages (`statuses.SETTLED`) last changed more than
  `MESSAGE_RETENTION_DAYS` ago, with their events, callbacks, parked
  receipts and idempotency key.

Never an open message. Order is decided among a key's open messages only (a
claim compares a message with the open ones of its key, `store/leases.py`),
so a settled message is never needed for it: deleting one cannot let a later
message of its key overtake an earlier one, whatever stands before or after
it. Never a message or inbound message whose client callback is still being
tried either: the callback is sent from its row. A retention of 0 days keeps
that kind forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Kind(StrEnum):
    """What housekeeping deletes; the value names the table (and the metric's label)."""

    IDEMPOTENCY_KEYS = "idempotency_keys"
    SUPPRESSIONS = "suppressions"
    INBOUND = "inbound_messages"
    MESSAGES = "messages"


#: How long an idempotency key holds (SPEC 3).
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days inbound and settled messages are kept; 0: forever."""

    message_days: int = 0
    inbound_days: int = 30

    def ages(self) -> dict[Kind, timedelta]:
        """Each kind to purge, with the age past which its rows go (cheapest first)."""
        ages = {Kind.IDEMPOTENCY_KEYS: IDEMPOTENCY_WINDOW, Kind.SUPPRESSIONS: timedelta(0)}
        if self.inbound_days > 0:
            ages[Kind.INBOUND] = timedelta(days=self.inbound_days)
        if self.message_days > 0:
            ages[Kind.MESSAGES] = timedelta(days=self.message_days)
        return ages


def describe(kind: Kind, age: timedelta) -> str:
    """The rows a purge of `kind` at `age` deletes, in words (for logs and the CLI)."""
    days = f"{age.days} day{'s' if age.days != 1 else ''}"
    return {
        Kind.IDEMPOTENCY_KEYS: f"idempotency keys older than {age.total_seconds() / 3600:g} hours",
        Kind.SUPPRESSIONS: "expired suppressions",
        Kind.INBOUND: f"inbound messages received more than {days} ago",
        Kind.MESSAGES: f"settled messages last changed more than {days} ago",
    }[kind]
