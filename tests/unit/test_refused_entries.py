"""What becomes of the stream entries a claim refused (`come_back_later`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.domain.channels import Channel
from postline.domain.ordering import Head, come_back_later
from postline.domain.statuses import Status

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)


def head(status: Status, **times: Any) -> Head:
    return Head("m1", Channel.SMS, "k", status, **times)


def test_an_early_retry_goes_back_to_the_delay_set_for_its_time() -> None:
    early = head(status=Status.RETRYING, next_attempt_at=LATER)
    later = come_back_later([early], now=NOW)
    assert later.retries == [(early, LATER.timestamp())] and later.scheduled == []


def test_an_early_scheduled_send_goes_back_for_its_send_at() -> None:
    early = head(status=Status.SCHEDULED, send_at=LATER)
    later = come_back_later([early], now=NOW)
    assert later.scheduled == [(early, LATER.timestamp())] and later.retries == []


def test_a_retry_without_a_time_comes_back_now() -> None:
    lost = head(status=Status.RETRYING, next_attempt_at=None)
    assert come_back_later([lost], now=NOW).retries == [(lost, NOW.timestamp())]


def test_a_retry_without_a_retry_time_falls_back_to_its_send_at() -> None:
    odd = head(status=Status.RETRYING, send_at=LATER)
    assert come_back_later([odd], now=NOW).retries == [(odd, LATER.timestamp())]


@pytest.mark.parametrize(
    "status",
    [s for s in Status if s not in (Status.RETRYING, Status.SCHEDULED)],
)
def test_every_other_message_needs_no_entry(status: Status) -> None:
    """Finished, cancelled, behind an open message of its key, or held: dropped."""
    later = come_back_later([head(status=status, next_attempt_at=LATER)], now=NOW)
    assert later.retries == [] and later.scheduled == []
