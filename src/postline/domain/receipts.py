"""Delivery receipts: what a provider's status report means for a message.

Pure mapping, no I/O. The webhook routes verify and parse a request, these
functions turn it into `Receipt`s, and `store/receipts.py` applies them
along the lifecycle graph of `domain/statuses.py`.

Which provider statuses count:

- Twilio `MessageStatus`: `delivered` (and WhatsApp's `read`, which implies
  it) -> delivered; `undelivered` -> undelivered; `failed` -> failed, each
  keeping `ErrorCode`/`ErrorMessage`. The intermediate statuses (`queued`,
  `accepted`, `scheduled`, `sending`, `sent`, ...) record nothing: Postline
  already wrote `sent` when Twilio accepted the message, so a `sent` report
  adds no information, and recording it could read as a step backwards after
  `delivered`.
- SendGrid events: `delivered` -> delivered; `bounce` -> undelivered (the
  receiving server refused the message, which is what Twilio's
  `undelivered` means too); `dropped` -> failed (SendGrid itself would not
  send it); both keep the reason. `deferred` -> a note in the history, the
  status stays (SendGrid keeps trying for up to 72 hours); everything else
  (`processed`, `open`, `click`, ...) records nothing.

Only a message the provider has accepted (`sent`) may take a receipt, plus
`undelivered -> delivered` (a carrier that reported a failure and then
delivered after all). The statuses before `sent` belong to the worker: a
receipt that finds its message there waits until the send is recorded
(see `store/receipts.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postline.domain.statuses import TRANSITIONS, Status

TWILIO = "twilio"
SENDGRID = "sendgrid"

#: Statuses a receipt may move a message out of.
RECEIPT_SOURCES: frozenset[Status] = frozenset({Status.SENT, Status.UNDELIVERED})

#: Statuses in which a receipt arrived too early: it is kept until the worker records the send.
RECEIPT_WAITS: frozenset[Status] = frozenset({Status.PENDING, Status.SENDING, Status.RETRYING})

#: When several receipts for one message arrive together, the strongest wins:
#: `delivered` is the final word, and `failed` is final where `undelivered` is not.
RECEIPT_RANK: dict[Status, int] = {
    Status.DELIVERED: 3,
    Status.FAILED: 2,
    Status.UNDELIVERED: 1,
}

_TWILIO_STATUSES: dict[str, Status] = {
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}

# Twilio's status callbacks carry ErrorCode without a text; these are the
# descriptions of the delivery errors from Twilio's error dictionary.
_TWILIO_ERROR_TEXT: dict[str, str] = {
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
    "30009": "Missing segment",
    "30010": "Message price exceeds max price",
}

#: SendGrid events that end a message short of delivery, and where they move it.
_SENDGRID_FAILURES: dict[str, Status] = {
    "bounce": Status.UNDELIVERED,
    "dropped": Status.FAILED,
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """One provider report about one message.

    `message_id` is Postline's id when the provider echoes it (SendGrid's
    custom args); `provider_message_id` is the provider's own id. `status`
    is where the message moves, or None for a note that only adds to the
    history.
    """

    provider: str
    message_id: uuid.UUID | None
    provider_message_id: str | None
    status: Status | None
    detail: str
    error_code: str | None = None
    error_message: str | None = None

    @property
    def rank(self) -> int:
        return RECEIPT_RANK.get(self.status, 0) if self.status is not None else 0


def receipt_applies(current: Status, new: Status) -> bool:
    """True when a receipt may move a message from `current` to `new`."""
    return current in RECEIPT_SOURCES and new in TRANSITIONS[current]


def receipt_sources(new: Status) -> frozenset[Status]:
    """The statuses from which a receipt may move a message to `new`."""
    return frozenset(s for s in RECEIPT_SOURCES if receipt_applies(s, new))


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def twilio_receipt(form: Mapping[str, str]) -> Receipt | None:
    """The receipt in a Twilio status callback, or None when it records nothing."""
    reported = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    status = _TWILIO_STATUSES.get(reported)
    sid = _text(form.get("MessageSid") or form.get("SmsSid"))
    if status is None or sid is None:
        return None
    code = _text(form.get("ErrorCode"))
    message = _text(form.get("ErrorMessage"))
    if code is not None and message is None:
        message = _TWILIO_ERROR_TEXT.get(code)
    return Receipt(
        provider=TWILIO,
        message_id=None,
        provider_message_id=sid,
        status=status,
        detail=f"receipt from twilio: {reported}",
        error_code=code,
        error_message=message,
    )


def sendgrid_message_id(sg_message_id: object) -> str | None:
    """The X-Message-Id inside an event's `sg_message_id` (SendGrid appends `.<suffix>`)."""
    text = _text(sg_message_id)
    if text is None:
        return None
    return text.split(".", 1)[0] or None


def _postline_id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _failure(event: Mapping[str, Any], kind: str) -> tuple[str, str | None]:
    """Error code and message of a bounce or drop: SendGrid's type, reason and status."""
    code = _text(event.get("type")) or kind
    reason = _text(event.get("reason"))
    status = _text(event.get("status"))
    if reason and status and status not in reason:
        return code, f"{reason} (status {status})"
    return code, reason or status


def sendgrid_receipt(event: object) -> Receipt | None:
    """The receipt in one SendGrid event, or None when it records nothing."""
    if not isinstance(event, Mapping):
        return None
    kind = str(event.get("event") or "").strip().lower()
    message_id = _postline_id(event.get("postline_id"))
    provider_id = sendgrid_message_id(event.get("sg_message_id"))
    if message_id is None and provider_id is None:
        return None
    if kind == "delivered":
        status: Status | None = Status.DELIVERED
        detail, code, message = "receipt from sendgrid: delivered", None, None
    elif kind in _SENDGRID_FAILURES:
        status = _SENDGRID_FAILURES[kind]
        detail = f"receipt from sendgrid: {kind}"
        code, message = _failure(event, kind)
    elif kind == "deferred":
        status, code, message = None, None, None
        detail = _deferral(event)
    else:
        return None
    return Receipt(
        provider=SENDGRID,
        message_id=message_id,
        provider_message_id=provider_id,
        status=status,
        detail=detail,
        error_code=code,
        error_message=message,
    )


def _deferral(event: Mapping[str, Any]) -> str:
    note = "receipt from sendgrid: deferred"
    attempt = _text(event.get("attempt"))
    if attempt:
        note += f" (attempt {attempt})"
    response = _text(event.get("response"))
    if response:
        note += f": {response[:200]}"
    return note


def sendgrid_receipts(events: object) -> list[Receipt]:
    """The receipts in a SendGrid event webhook body (a JSON array)."""
    if not isinstance(events, list):
        return []
    return [r for r in (sendgrid_receipt(e) for e in events) if r is not None]
