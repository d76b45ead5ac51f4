"""Which provider reports suppress a recipient (domain/suppression.py)."""

from __future__ import annotations

from typing import Any

import pytest

from postline.domain.suppression import (
    Reason,
    sendgrid_suppressions,
)


def event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"event": kind, "email": "Ana@Example.org", "timestamp": 1, **extra}


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (event("bounce", type="bounce"), Reason.BOUNCE),
        (event("bounce"), Reason.BOUNCE),  # no type: SendGrid's older payloads
        (event("spamreport"), Reason.SPAM_REPORT),
        (event("unsubscribe"), Reason.UNSUBSCRIBE),
        (event("group_unsubscribe", asm_group_id=3), Reason.UNSUBSCRIBE),
    ],
)
def test_permanent_refusals_and_complaints_suppress_the_bare_address(
    sent: dict[str, Any], reason: Reason
) -> None:
    [found] = sendgrid_suppressions([sent])
    assert (found.channel, found.recipient, found.sender) == ("email", "ana@example.org", "")
    assert found.reason is reason


@pytest.mark.parametrize(
    "sent",
    [
        event("bounce", type="blocked"),  # a temporary refusal by the receiving server
        event("dropped"),
        event("deferred"),
        event("delivered"),
        event("open"),
        event("bounce", email="not an address"),
        event("spamreport", email=None),
        "not an event",
    ],
)
def test_other_events_suppress_nothing(sent: Any) -> None:
    assert sendgrid_suppressions([sent]) == []


def test_a_body_that_is_not_a_list_suppresses_nothing() -> None:
    assert sendgrid_suppressions({"event": "bounce", "email": "a@b.org"}) == []
