"""What housekeeping may delete: the kinds a retention names, and never an open status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from postline.domain.retention import IDEMPOTENCY_WINDOW, Kind, Retention, describe
from postline.domain.statuses import OPEN, SETTLED, TRANSITIONS, Status
from postline.services.housekeeping import retention
from postline.settings import Settings


def test_settled_is_every_status_but_the_open_ones() -> None:
    assert SETTLED.isdisjoint(OPEN)
    assert set(Status) == SETTLED | OPEN
    # A settled message moves again only by a receipt or a retry by hand.
    assert all(TRANSITIONS[s] <= SETTLED | {Status.PENDING} for s in SETTLED)


def test_a_retention_of_zero_keeps_that_kind_forever() -> None:
    assert Retention(message_days=0, inbound_days=0).ages() == {
        Kind.IDEMPOTENCY_KEYS: IDEMPOTENCY_WINDOW,
        Kind.SUPPRESSIONS: timedelta(0),
    }
    ages = Retention(message_days=90, inbound_days=7).ages()
    assert (ages[Kind.MESSAGES], ages[Kind.INBOUND]) == (timedelta(days=90), timedelta(days=7))


def test_the_defaults_keep_messages_and_thirty_days_of_inbound() -> None:
    defaults = retention(Settings(_env_file=None))  # type: ignore[call-arg]
    assert defaults == Retention(message_days=0, inbound_days=30)
    given = retention(Settings(_env_file=None), message_days=3, inbound_days=0)  # type: ignore[call-arg]
    assert given == Retention(message_days=3, inbound_days=0)


@pytest.mark.parametrize("days", [-1, 36_501])
def test_a_retention_out_of_range_is_refused(days: int) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, message_retention_days=days)  # type: ignore[call-arg]


def test_each_kind_is_described_in_words() -> None:
    assert describe(Kind.IDEMPOTENCY_KEYS, IDEMPOTENCY_WINDOW) == (
        "idempotency keys older than 24 hours"
    )
    assert describe(Kind.MESSAGES, timedelta(days=1)) == (
        "settled messages last changed more than 1 day ago"
    )
    assert describe(Kind.INBOUND, timedelta(days=30)) == (
        "inbound messages received more than 30 days ago"
    )
