"""Suppression: recipients Postline must not send to, and why.

A suppression is (channel, recipient, sender): the recipient in its
`addresses.recipient` form, the sender likewise or `ANY_SENDER` (empty)
for every sender. SMS and MMS share one number, so both are `sms` here
(the store's `CHANNEL_OF`).
What suppresses:

- SendGrid events (`sendgrid_suppressions`): a `bounce` of type `bounce`
  (permanent; `blocked` is a temporary refusal and suppresses nothing), a
  `spamreport`, an `unsubscribe` or `group_unsubscribe`. Every sender: the
  mailbox refused or complained about mail as such.
- Twilio's error 21610 on a send (the recipient replied STOP to that
  sender): that sender only, as carriers apply it.
- The one-click unsubscribe link of an email (RFC 8058): that sender only.
- The API (`POST /api/v1/suppressions`), with an optional expiry.
- An inbound STOP (or STOPALL) from the recipient (`domain/inbound.py`).

A send to a suppressed recipient ends `failed` with `SUPPRESSED_CODE` and no
provider call; the claim looks the suppression up (`store/leases.py`), so
every path (single, batch, retry, scheduled, sync mode) meets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from postline.domain import addresses

SUPPRESSED_CODE = "suppressed"
#: Twilio: "Attempt to send to unsubscribed recipient" (the recipient sent STOP).
TWILIO_OPT_OUT_CODES: frozenset[str] = frozenset({"21610"})
ANY_SENDER = ""


class SuppressionChannel(StrEnum):
    SMS = "sms"  # and MMS: one phone number
    WHATSAPP = "whatsapp"
    EMAIL = "email"


class Reason(StrEnum):
    BOUNCE = "bounce"
    SPAM_REPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    OPT_OUT = "opt_out"  # STOP, or the provider's word for it
    MANUAL = "manual"


class Source(StrEnum):
    SENDGRID = "sendgrid"
    TWILIO = "twilio"
    API = "api"
    LIST_UNSUBSCRIBE = "list_unsubscribe"  # the one-click link of an email (RFC 8058)
    INBOUND = "inbound"  # the recipient texted STOP (or STOPALL) to one of our numbers


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    channel: SuppressionChannel
    recipient: str
    sender: str = ANY_SENDER
    reason: Reason
    source: Source
    created_at: datetime | None = None
    expires_at: datetime | None = None


def suppressed_message(reason: str) -> str:
    return f"the recipient is suppressed ({reason}); nothing was sent"


_SENDGRID_REASONS: dict[str, Reason] = {
    "bounce": Reason.BOUNCE,
    "spamreport": Reason.SPAM_REPORT,
    "unsubscribe": Reason.UNSUBSCRIBE,
    "group_unsubscribe": Reason.UNSUBSCRIBE,
}


def sendgrid_suppression(event: object) -> Suppression | None:
    """The suppression one SendGrid event asks for, or None."""
    if not isinstance(event, Mapping):
        return None
    kind = str(event.get("event") or "").strip().lower()
    reason = _SENDGRID_REASONS.get(kind)
    if reason is None:
        return None
    if kind == "bounce" and str(event.get("type") or "bounce").strip().lower() != "bounce":
        return None  # `blocked`: the receiving server refused for now, not the mailbox
    try:
        recipient = addresses.recipient(str(event.get("email") or ""))
    except addresses.AddressError:
        return None
    return Suppression(
        channel=SuppressionChannel.EMAIL, recipient=recipient, reason=reason, source=Source.SENDGRID
    )


def sendgrid_suppressions(events: object) -> list[Suppression]:
    """The suppressions in a SendGrid event webhook body (a JSON array)."""
    if not isinstance(events, list):
        return []
    return [s for s in (sendgrid_suppression(e) for e in events) if s is not None]
