"""Pacing: how fast a sender and a provider account may send (README, "Pacing").

Carriers and providers limit throughput per sending number (a US long code
about 1 message/s, a toll-free number 3/s, a short code 100/s, a WhatsApp
sender 80/s) and per account (SendGrid per API key, a Twilio account's
concurrent requests). Every worker shares one bucket per sender and per
account in Redis; this module holds the rules that decide which buckets a
message draws from and how a bucket hands out send times, so they are
unit-tested without Redis (`queue/pacing.py` runs the same rule in Lua).

The rule is GCRA (the generic cell rate algorithm) with reservations: a
bucket keeps its *theoretical arrival time* (TAT), the earliest time its
next message may go. A message takes the later of now and the TATs of its
buckets as its slot, and moves each TAT one interval past that slot. A slot
in the future is a reservation: the message waits in the delay set exactly
until then and is not charged again when it comes back. So a sender with a
backlog is paced at its rate exactly, each waiting message costs one delay
set entry rather than a retry loop, and no burst beyond one message is
allowed (an idle sender's first message goes at once). A slot due within
a few milliseconds is used at once (`queue.pacing.EARLY_MS`): the slots
stay one interval apart, so the rate is the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from postline.domain.channels import Channel
from postline.errors import ProviderError, TransientProviderError


class SenderClass(StrEnum):
    """What kind of sender a `from` is, which sets its default rate."""

    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"
    WHATSAPP = "whatsapp"
    EMAIL = "email"  # paced per SendGrid account, not per address


#: US/CA toll-free area codes (NANP): +1 800, 833, 844, 855, 866, 877, 888.
TOLL_FREE_PREFIXES: tuple[str, ...] = tuple(
    f"+1{code}" for code in (800, 833, 844, 855, 866, 877, 888)
)

#: Twilio's code for "too many requests" (its answer to a 429).
TWILIO_TOO_MANY_REQUESTS = "20429"


@dataclass(frozen=True, slots=True)
class PacingRules:
    """The configured limits (`PACING_*` settings); a rate of 0 means no limit.

    `senders` overrides one sender: a rate in messages per second, or a
    class name (e.g. a short code, which Postline cannot tell from the
    number, since it accepts only E.164 senders). Whether pacing runs at
    all is `PACING_ENABLED`: without it a worker builds no pacing.
    """

    rates: Mapping[SenderClass, float] = field(default_factory=dict)
    senders: Mapping[str, float | SenderClass] = field(default_factory=dict)
    account_concurrency: int = 0


@dataclass(frozen=True, slots=True)
class Sender:
    """A message about to be paced: its id, channel, `from` and ordering key,
    and the route of its last attempt (None: not tried yet), which steers
    its retry away from that route (`domain.routes.candidates`)."""

    id: uuid.UUID
    channel: Channel
    from_addr: str
    ordering_key: str
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Pace:
    """The buckets one message draws from.

    `sender` is None when the sender has no limit of its own (email, or a
    rate of 0); `account` is always named, since 429s hold it and the
    concurrency cap counts it. Intervals are milliseconds between sends (0:
    no rate limit on that bucket).
    """

    sender: str | None
    sender_class: SenderClass
    sender_interval_ms: float
    account: str
    account_interval_ms: float
    concurrency: int


def sender_class(channel: Channel, from_addr: str, rules: PacingRules) -> SenderClass:
    """The class of a sender: configured per sender, else read from the address."""
    configured = rules.senders.get(sender_name(channel, from_addr))
    if isinstance(configured, SenderClass):
        return configured
    if channel == Channel.EMAIL:
        return SenderClass.EMAIL
    if channel == Channel.WHATSAPP:
        return SenderClass.WHATSAPP
    if from_addr.startswith(TOLL_FREE_PREFIXES):
        return SenderClass.TOLL_FREE
    digits = from_addr.removeprefix("+")
    if digits.isdigit() and 5 <= len(digits) <= 6:
        return SenderClass.SHORT_CODE
    return SenderClass.LONG_CODE


def sender_name(channel: Channel, from_addr: str) -> str:
    """A sender as its bucket and the stats name it: SMS and MMS share a
    number's bucket, WhatsApp has its own (`whatsapp:+1...`)."""
    bare = from_addr.removeprefix("whatsapp:")
    return f"whatsapp:{bare}" if channel == Channel.WHATSAPP else bare


def interval_ms(rate: float) -> float:
    return 1000.0 / rate if rate > 0 else 0.0


def pace_of(channel: Channel, from_addr: str, rules: PacingRules, account: str) -> Pace:
    """The buckets of a message from `from_addr` on `channel`, sent through
    the provider account whose bucket is `account` (the route's)."""
    kind = sender_class(channel, from_addr, rules)
    name = sender_name(channel, from_addr)
    override = rules.senders.get(name)
    if kind == SenderClass.EMAIL:
        # SendGrid limits the account (the API key), whoever the sender is.
        return Pace(None, kind, 0.0, account, interval_ms(rules.rates.get(kind, 0.0)), 0)
    rate = override if isinstance(override, float | int) else rules.rates.get(kind, 0.0)
    step = interval_ms(float(rate))
    return Pace(name if step else None, kind, step, account, 0.0, rules.account_concurrency)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A bucket rule's answer: when the message may go, and the new TATs."""

    slot: float
    sender_tat: float | None
    account_tat: float | None


def reserve(
    pace: Pace, *, now: float, sender_tat: float | None, account_tat: float | None
) -> Reservation:
    """GCRA with reservations (see the module docstring); times in ms.

    The slot is the latest of now and both TATs; a bucket with an interval
    moves its TAT one interval past the slot; an account without a rate keeps
    its TAT (only a 429 hold sets it). The Lua script `PACE` is this rule.
    """
    slot = max(now, sender_tat or now, account_tat or now)
    new_sender = slot + pace.sender_interval_ms if pace.sender is not None else sender_tat
    new_account = slot + pace.account_interval_ms if pace.account_interval_ms else account_tat
    return Reservation(slot, new_sender, new_account)


def refund(tat: float, *, interval: float, now: float) -> float:
    """A TAT after giving back a slot nobody used (a claim refused its
    message). Only when no later reservation sits on top of it (the TAT is
    at most one interval ahead) does the bucket go back to now; otherwise
    the slot is lost, since moving the TAT back would let the next message
    share a slot with the last reserved one."""
    return now if tat - interval <= now else tat


def rate_limited(error: ProviderError) -> bool:
    """Whether a failure is the provider saying "too fast" (HTTP 429, or
    Twilio's 20429), which slows the account instead of using an attempt."""
    return isinstance(error, TransientProviderError) and (
        error.status == 429 or error.code == TWILIO_TOO_MANY_REQUESTS
    )


def hold_seconds(error: ProviderError, *, default: float, cap: float) -> float:
    """How long an account is held after a 429: its Retry-After, else `default`."""
    retry_after = getattr(error, "retry_after", None)
    wait = default if retry_after is None else float(retry_after)
    return min(max(wait, 0.0), cap)
