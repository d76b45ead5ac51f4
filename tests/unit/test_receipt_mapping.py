"""Provider status reports -> receipts, and which statuses a receipt may move."""

from __future__ import annotations

import itertools
import uuid

import pytest

from postline.domain.receipts import (
    RECEIPT_RANK,
    RECEIPT_SOURCES,
    Receipt,
    receipt_applies,
    receipt_sources,
    sendgrid_message_id,
    sendgrid_receipt,
    sendgrid_receipts,
    twilio_receipt,
)
from postline.domain.statuses import TRANSITIONS, Status

SID = "SM" + "a" * 32
PID = uuid.UUID("0b9f2a4e-8f43-4c8e-9f55-0d5f6c3f0a11")


def twilio_form(status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": SID,
        "SmsSid": SID,
        "MessageStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "To": "+15559876543",
        "ApiVersion": "2010-04-01",
        **extra,
    }


@pytest.mark.parametrize(
    ("reported", "status"),
    [
        ("delivered", Status.DELIVERED),
        ("read", Status.DELIVERED),
        ("undelivered", Status.UNDELIVERED),
        ("failed", Status.FAILED),
        ("DELIVERED", Status.DELIVERED),
    ],
)
def test_twilio_final_statuses_map_to_receipts(reported: str, status: Status) -> None:
    receipt = twilio_receipt(twilio_form(reported))

    assert receipt is not None
    assert receipt.status == status
    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == SID
    assert receipt.message_id is None
    assert receipt.detail == f"receipt from twilio: {reported.lower()}"


@pytest.mark.parametrize(
    "reported", ["queued", "accepted", "scheduled", "sending", "sent", "canceled", "", "bogus"]
)
def test_twilio_intermediate_statuses_record_nothing(reported: str) -> None:
    assert twilio_receipt(twilio_form(reported)) is None


def test_twilio_error_code_is_kept_and_described() -> None:
    receipt = twilio_receipt(twilio_form("undelivered", ErrorCode="30003"))

    assert receipt is not None
    assert (receipt.error_code, receipt.error_message) == (
        "30003",
        "Unreachable destination handset",
    )


def test_twilio_error_message_given_wins_and_unknown_codes_keep_no_text() -> None:
    given = twilio_receipt(twilio_form("failed", ErrorCode="30008", ErrorMessage="Carrier said no"))
    unknown = twilio_receipt(twilio_form("failed", ErrorCode="63016"))

    assert given is not None and given.error_message == "Carrier said no"
    assert unknown is not None and (unknown.error_code, unknown.error_message) == ("63016", None)


def test_twilio_without_a_sid_records_nothing() -> None:
    form = twilio_form("delivered")
    del form["MessageSid"], form["SmsSid"]

    assert twilio_receipt(form) is None


def test_twilio_legacy_sms_fields_are_read() -> None:
    receipt = twilio_receipt({"SmsSid": SID, "SmsStatus": "delivered"})

    assert receipt is not None and receipt.status == Status.DELIVERED


def sg_event(kind: str, **extra: object) -> dict[str, object]:
    return {
        "email": "ana@example.org",
        "timestamp": 1_700_000_000,
        "event": kind,
        "sg_event_id": "evt-1",
        "sg_message_id": "W86EgYT6SQKk0lRflfLRsA.filterdrecv-5645d9c87f-78xgx-1-62841247-82-0",
        "postline_id": str(PID),
        **extra,
    }


def test_sendgrid_message_id_is_the_part_before_the_first_dot() -> None:
    assert sendgrid_message_id("W86EgYT6SQKk0lRflfLRsA.filter0001.16648.5515E0B88.0") == (
        "W86EgYT6SQKk0lRflfLRsA"
    )
    assert sendgrid_message_id("plain") == "plain"
    assert sendgrid_message_id(None) is None
    assert sendgrid_message_id(".x") is None


def test_sendgrid_delivered() -> None:
    receipt = sendgrid_receipt(sg_event("delivered", response="250 OK"))

    assert receipt == Receipt(
        provider="sendgrid",
        message_id=PID,
        provider_message_id="W86EgYT6SQKk0lRflfLRsA",
        status=Status.DELIVERED,
        detail="receipt from sendgrid: delivered",
    )


def test_sendgrid_bounce_fails_with_the_reason() -> None:
    receipt = sendgrid_receipt(
        sg_event(
            "bounce",
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
        )
    )

    assert receipt is not None
    assert receipt.status == Status.FAILED
    assert receipt.error_code == "bounce"
    assert (
        receipt.error_message
        == "550 5.1.1 The email account that you tried to reach does not exist."
    )
    assert receipt.detail == "receipt from sendgrid: bounce"


def test_sendgrid_blocked_bounce_and_status_without_reason() -> None:
    blocked = sendgrid_receipt(sg_event("bounce", type="blocked", reason="blocked", status="4.0.0"))
    bare = sendgrid_receipt(sg_event("bounce", status="5.0.0"))

    assert blocked is not None and blocked.error_code == "blocked"
    assert blocked.error_message == "blocked (status 4.0.0)"
    assert bare is not None and (bare.error_code, bare.error_message) == ("bounce", "5.0.0")


def test_sendgrid_dropped_fails_with_the_reason() -> None:
    receipt = sendgrid_receipt(sg_event("dropped", reason="Bounced Address"))

    assert receipt is not None
    assert (receipt.status, receipt.error_code, receipt.error_message) == (
        Status.FAILED,
        "dropped",
        "Bounced Address",
    )


def test_sendgrid_deferred_is_a_note_only() -> None:
    receipt = sendgrid_receipt(sg_event("deferred", attempt="2", response="400 try again later"))

    assert receipt is not None
    assert receipt.status is None
    assert receipt.rank == 0
    assert receipt.detail == "receipt from sendgrid: deferred (attempt 2): 400 try again later"


@pytest.mark.parametrize("kind", ["processed", "open", "click", "spamreport", "unsubscribe", ""])
def test_sendgrid_other_events_record_nothing(kind: str) -> None:
    assert sendgrid_receipt(sg_event(kind)) is None


def test_sendgrid_finds_the_message_by_either_id() -> None:
    by_sg = sendgrid_receipt(sg_event("delivered", postline_id=None))
    bad_postline_id = sendgrid_receipt(sg_event("delivered", postline_id="not-a-uuid"))
    neither = sendgrid_receipt(sg_event("delivered", postline_id=None, sg_message_id=None))

    assert by_sg is not None and by_sg.message_id is None
    assert by_sg.provider_message_id == "W86EgYT6SQKk0lRflfLRsA"
    assert bad_postline_id is not None and bad_postline_id.message_id is None
    assert neither is None


def test_sendgrid_batch_keeps_order_and_skips_junk() -> None:
    receipts = sendgrid_receipts(
        [sg_event("processed"), "junk", 7, sg_event("delivered"), sg_event("bounce")]
    )

    assert [r.status for r in receipts] == [Status.DELIVERED, Status.FAILED]
    assert sendgrid_receipts({"event": "delivered"}) == []


def test_only_sent_and_undelivered_take_receipts() -> None:
    assert frozenset({Status.SENT, Status.UNDELIVERED}) == RECEIPT_SOURCES
    assert receipt_sources(Status.DELIVERED) == {Status.SENT, Status.UNDELIVERED}
    assert receipt_sources(Status.UNDELIVERED) == {Status.SENT}
    assert receipt_sources(Status.FAILED) == {Status.SENT}


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("new", list(RECEIPT_RANK))
def test_receipt_moves_follow_the_lifecycle_graph(current: Status, new: Status) -> None:
    allowed = receipt_applies(current, new)

    # Every receipt move is an edge of the graph, and never out of a worker-owned status.
    assert not allowed or new in TRANSITIONS[current]
    assert not allowed or current in RECEIPT_SOURCES
    # A late report can never step a message backwards or repeat a final status.
    if current in (Status.DELIVERED, Status.FAILED, Status.CANCELLED) or current == new:
        assert not allowed


def test_strongest_receipt_can_apply_wherever_a_weaker_one_can() -> None:
    # store/receipts.py applies only the strongest receipt per message and batch;
    # that is only sound if its sources include every weaker receipt's.
    ranked = sorted(RECEIPT_RANK, key=RECEIPT_RANK.__getitem__)
    for weaker, stronger in itertools.pairwise(ranked):
        assert receipt_sources(weaker) <= receipt_sources(stronger)
