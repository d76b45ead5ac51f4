"""Provider status reports -> receipts, and which statuses a receipt may move.

The expected values are written out from SPEC 3.1 ("Receipts") and the
README, never read back from `postline.domain`, so a change to the mapping
has to change these tables too.
"""

from __future__ import annotations

import itertools
import string
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.domain.receipts import (
    RECEIPT_RANK,
    Receipt,
    receipt_applies,
    receipt_sources,
    sendgrid_message_id,
    sendgrid_receipt,
    sendgrid_receipts,
    twilio_receipt,
)
from postline.domain.statuses import Status

SID = "SM" + "a" * 32
PID = uuid.UUID("0b9f2a4e-8f43-4c8e-9f55-0d5f6c3f0a11")

# SPEC 3.1: the provider's report -> the message's status. Nothing else moves a message.
TWILIO_SPEC = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
SENDGRID_SPEC = {
    "delivered": "delivered",
    "bounce": "undelivered",
    "dropped": "failed",
}
# What Twilio and SendGrid also report, and Postline records no move for.
TWILIO_OTHERS = ["queued", "accepted", "scheduled", "sending", "sent", "canceled", "receiving"]
SENDGRID_OTHERS = ["processed", "deferred", "open", "click", "spamreport", "unsubscribe"]

# Where a receipt may take a message (README, "Receipts and callbacks"): out
# of `sent`, plus `undelivered` -> `delivered` (a carrier that reported a
# failure and then delivered after all). Every other pair is refused.
RECEIPT_MOVES = {
    ("sent", "delivered"),
    ("sent", "undelivered"),
    ("sent", "failed"),
    ("undelivered", "delivered"),
}
ALL_STATUSES = [
    "scheduled", "pending", "sending", "retrying", "sent", "delivered", "undelivered", "failed",
    "cancelled",
]  # fmt: skip


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


@pytest.mark.parametrize(("reported", "expected"), sorted(TWILIO_SPEC.items()))
def test_twilio_final_statuses_map_as_the_spec_says(reported: str, expected: str) -> None:
    receipt = twilio_receipt(twilio_form(reported))

    assert receipt is not None
    assert receipt.status == expected
    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == SID
    assert receipt.message_id is None
    assert receipt.detail == f"receipt from twilio: {reported}"


@pytest.mark.parametrize("reported", [*TWILIO_OTHERS, "", "bogus"])
def test_twilio_intermediate_statuses_record_nothing(reported: str) -> None:
    assert twilio_receipt(twilio_form(reported)) is None


@given(
    reported=st.sampled_from(sorted(TWILIO_SPEC)),
    upper=st.lists(st.booleans(), min_size=12, max_size=12),
    pad=st.sampled_from(["", " ", "\t", "  \n"]),
)
def test_twilio_statuses_are_read_whatever_their_case_and_padding(
    reported: str, upper: list[bool], pad: str
) -> None:
    mixed = "".join(c.upper() if up else c for c, up in zip(reported, upper, strict=False))
    receipt = twilio_receipt(twilio_form(pad + mixed + pad))

    assert receipt is not None and receipt.status == TWILIO_SPEC[reported]


@given(st.text(max_size=30))
def test_no_other_twilio_status_moves_a_message(reported: str) -> None:
    receipt = twilio_receipt(twilio_form(reported))

    if reported.strip().lower() in TWILIO_SPEC:
        assert receipt is not None and receipt.status == TWILIO_SPEC[reported.strip().lower()]
    else:
        assert receipt is None


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

    assert receipt is not None and receipt.status == "delivered"


def test_sendgrid_message_id_is_the_part_before_the_first_dot() -> None:
    assert sendgrid_message_id("W86EgYT6SQKk0lRflfLRsA.filter0001.16648.5515E0B88.0") == (
        "W86EgYT6SQKk0lRflfLRsA"
    )
    assert sendgrid_message_id("plain") == "plain"
    assert sendgrid_message_id(None) is None
    assert sendgrid_message_id(".x") is None


@given(
    st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=40),
    st.text(max_size=40),
)
def test_any_suffix_after_the_first_dot_is_dropped(x_message_id: str, suffix: str) -> None:
    assert sendgrid_message_id(f"{x_message_id}.{suffix}") == x_message_id


@pytest.mark.parametrize(("kind", "expected"), sorted(SENDGRID_SPEC.items()))
def test_sendgrid_events_map_as_the_spec_says(kind: str, expected: str) -> None:
    receipt = sendgrid_receipt(sg_event(kind, reason="some reason"))

    assert receipt is not None
    assert receipt.status == expected
    assert (receipt.provider, receipt.message_id) == ("sendgrid", PID)
    assert receipt.provider_message_id == "W86EgYT6SQKk0lRflfLRsA"
    assert receipt.detail == f"receipt from sendgrid: {kind}"


def test_sendgrid_delivered() -> None:
    receipt = sendgrid_receipt(sg_event("delivered", response="250 OK"))

    assert receipt == Receipt(
        provider="sendgrid",
        message_id=PID,
        provider_message_id="W86EgYT6SQKk0lRflfLRsA",
        status=Status("delivered"),
        detail="receipt from sendgrid: delivered",
    )


def test_sendgrid_bounce_is_undelivered_with_the_reason() -> None:
    receipt = sendgrid_receipt(
        sg_event(
            "bounce",
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
        )
    )

    assert receipt is not None
    assert receipt.status == "undelivered"
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
        "failed",
        "dropped",
        "Bounced Address",
    )


def test_sendgrid_deferred_is_a_note_only() -> None:
    receipt = sendgrid_receipt(sg_event("deferred", attempt="2", response="400 try again later"))

    assert receipt is not None
    assert receipt.status is None
    assert receipt.rank == 0
    assert receipt.detail == "receipt from sendgrid: deferred (attempt 2): 400 try again later"


@pytest.mark.parametrize("kind", [k for k in SENDGRID_OTHERS if k != "deferred"] + [""])
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

    assert [r.status for r in receipts] == ["delivered", "undelivered"]
    assert sendgrid_receipts({"event": "delivered"}) == []


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_event = st.fixed_dictionaries(
    {"event": st.sampled_from([*SENDGRID_SPEC, *SENDGRID_OTHERS, "", "BOUNCE"])},
    optional={"postline_id": st.just(str(PID)) | _junk, "sg_message_id": _junk, "reason": _junk},
)


@given(st.lists(_event | _junk, max_size=12))
def test_a_sendgrid_batch_moves_messages_only_as_the_spec_says(events: list[Any]) -> None:
    receipts = sendgrid_receipts(events)

    moves = [r.status for r in receipts if r.status is not None]
    expected = [
        SENDGRID_SPEC[_kind(e)]
        for e in events
        if isinstance(e, dict) and _kind(e) in SENDGRID_SPEC and _has_an_id(e)
    ]
    assert moves == expected


def _kind(event: dict[str, Any]) -> str:
    """Event names are read whatever their case (SendGrid sends them lower-case)."""
    return str(event.get("event") or "").strip().lower()


def _has_an_id(event: dict[str, Any]) -> bool:
    """An event names its message by Postline's id or by a non-blank SendGrid id."""
    if event.get("postline_id") == str(PID):
        return True
    sg_id = event.get("sg_message_id")
    return sg_id is not None and bool(str(sg_id).strip().split(".", 1)[0])


@pytest.mark.parametrize("current", ALL_STATUSES)
@pytest.mark.parametrize("new", ["delivered", "undelivered", "failed"])
def test_receipts_move_a_message_only_along_the_documented_edges(current: str, new: str) -> None:
    assert receipt_applies(Status(current), Status(new)) == ((current, new) in RECEIPT_MOVES)


@pytest.mark.parametrize("new", ["delivered", "undelivered", "failed"])
def test_receipt_sources_are_the_documented_ones(new: str) -> None:
    expected = {current for current, target in RECEIPT_MOVES if target == new}

    assert {s.value for s in receipt_sources(Status(new))} == expected


def test_strongest_receipt_can_apply_wherever_a_weaker_one_can() -> None:
    # store/receipts.py applies only the strongest receipt per message and batch;
    # that is only sound if its sources include every weaker receipt's.
    ranked = sorted(RECEIPT_RANK, key=RECEIPT_RANK.__getitem__)
    assert [s.value for s in ranked] == ["undelivered", "failed", "delivered"]
    for weaker, stronger in itertools.pairwise(ranked):
        assert receipt_sources(weaker) <= receipt_sources(stronger)
