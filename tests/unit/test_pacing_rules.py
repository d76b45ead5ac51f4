"""The pacing rules: which buckets a message draws from, and how a bucket
hands out slots (`domain.pacing`; the Lua script `queue.pacing.PACE` runs
the same rule, tested against Redis in tests/integration)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from postline.domain.channels import Channel
from postline.domain.outcomes import RetryPolicy, judge_failure
from postline.domain.pacing import (
    PacingRules,
    SenderClass,
    hold_seconds,
    pace_of,
    rate_limited,
    refund,
    reserve,
    sender_class,
)
from postline.domain.statuses import Status
from postline.errors import PermanentProviderError, TransientProviderError
from postline.providers.registry import build_routes
from postline.services.pacing import pacing_rules
from postline.settings import Settings

RULES = PacingRules(
    rates={
        SenderClass.LONG_CODE: 1,
        SenderClass.TOLL_FREE: 3,
        SenderClass.SHORT_CODE: 100,
        SenderClass.WHATSAPP: 80,
        SenderClass.EMAIL: 50,
    },
    senders={"+15550001111": SenderClass.SHORT_CODE, "+15550002222": 5.0},
    account_concurrency=100,
)
ACCOUNT = "twilio:AC1"


@pytest.mark.parametrize(
    ("channel", "sender", "expected"),
    [
        (Channel.SMS, "+15551234567", SenderClass.LONG_CODE),
        (Channel.MMS, "+447700900123", SenderClass.LONG_CODE),
        *((Channel.SMS, f"+1{c}5550100", SenderClass.TOLL_FREE) for c in (800, 833, 888)),
        (Channel.SMS, "+18015550100", SenderClass.LONG_CODE),  # 801 is not toll-free
        (Channel.SMS, "+15550001111", SenderClass.SHORT_CODE),  # configured
        (Channel.SMS, "12345", SenderClass.SHORT_CODE),
        (Channel.WHATSAPP, "+15551234567", SenderClass.WHATSAPP),
        (Channel.EMAIL, "Bookings <b@example.com>", SenderClass.EMAIL),
    ],
)
def test_the_sender_class_comes_from_the_address_or_the_configuration(
    channel: Channel, sender: str, expected: SenderClass
) -> None:
    assert sender_class(channel, sender, RULES) == expected


def test_each_channel_draws_from_its_sender_and_its_account() -> None:
    sms = pace_of(Channel.SMS, "+15551234567", RULES, ACCOUNT)
    assert (sms.sender, sms.sender_interval_ms, sms.account) == (
        "+15551234567",
        1000.0,
        "twilio:AC1",
    )
    assert sms.concurrency == 100 and sms.account_interval_ms == 0
    mms = pace_of(Channel.MMS, "+15551234567", RULES, ACCOUNT)
    assert mms.sender == sms.sender  # one number, one bucket
    whatsapp = pace_of(Channel.WHATSAPP, "+15551234567", RULES, ACCOUNT)
    assert whatsapp.sender == "whatsapp:+15551234567" and whatsapp.sender_interval_ms == 12.5
    assert pace_of(Channel.SMS, "+15550002222", RULES, ACCOUNT).sender_interval_ms == 200.0
    email = pace_of(Channel.EMAIL, "a@example.com", RULES, "sendgrid:abc")
    assert (email.sender, email.account, email.account_interval_ms) == (None, "sendgrid:abc", 20.0)


def test_a_rate_of_zero_is_no_limit() -> None:
    rules = PacingRules(rates={SenderClass.LONG_CODE: 0})
    pace = pace_of(Channel.SMS, "+15551234567", rules, ACCOUNT)
    assert pace.sender is None and pace.sender_interval_ms == 0


@given(
    arrivals=st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=60),
    refunds=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_slots_of_one_sender_are_never_closer_than_its_interval(
    arrivals: list[float], refunds: list[bool]
) -> None:
    """Whatever the arrival times and whichever slots a claim gives back,
    no two used slots are closer than the interval, and none is early."""
    pace = pace_of(Channel.SMS, "+15551234567", RULES, ACCOUNT)
    tat: float | None = None
    used: list[float] = []
    for now, give_back in zip(sorted(arrivals), refunds, strict=False):
        reservation = reserve(pace, now=now, sender_tat=tat, account_tat=None)
        assert reservation.slot >= now
        tat = reservation.sender_tat
        if give_back and reservation.slot == now:  # refused by the claim at once
            assert tat is not None
            tat = refund(tat, interval=pace.sender_interval_ms, now=now)
        else:
            used.append(reservation.slot)
    used.sort()
    assert all(b - a >= pace.sender_interval_ms - 1e-6 for a, b in itertools.pairwise(used))


def test_a_backlog_is_spread_exactly_one_interval_apart() -> None:
    pace = pace_of(Channel.SMS, "+18005550100", RULES, ACCOUNT)  # toll-free, 3/s
    tat = None
    slots = []
    for _ in range(4):
        reservation = reserve(pace, now=0.0, sender_tat=tat, account_tat=None)
        slots.append(reservation.slot)
        tat = reservation.sender_tat
    assert slots == pytest.approx([0, 1000 / 3, 2000 / 3, 1000])


def test_a_held_account_delays_every_sender_of_it() -> None:
    pace = pace_of(Channel.SMS, "+15551234567", RULES, ACCOUNT)
    reservation = reserve(pace, now=0.0, sender_tat=None, account_tat=1500.0)
    assert reservation.slot == 1500.0 and reservation.account_tat == 1500.0


def test_a_refund_with_a_reservation_on_top_is_lost_not_shared() -> None:
    assert refund(2000.0, interval=1000.0, now=1000.0) == 1000.0
    assert refund(3000.0, interval=1000.0, now=1000.0) == 3000.0


def too_fast(retry_after: float | None = None, code: str = "20429") -> TransientProviderError:
    return TransientProviderError(
        provider="twilio", code=code, message="Too Many Requests", status=429,
        retry_after=retry_after,
    )  # fmt: skip


def test_a_429_is_a_rate_limit_and_a_500_or_a_400_is_not() -> None:
    assert rate_limited(too_fast())
    assert rate_limited(TransientProviderError(provider="t", code="20429", message="x"))
    assert not rate_limited(TransientProviderError(provider="t", code="x", message="x", status=500))
    assert not rate_limited(PermanentProviderError(provider="t", code="21211", message="x"))
    assert hold_seconds(too_fast(2.5), default=1, cap=300) == 2.5
    assert hold_seconds(too_fast(), default=1, cap=300) == 1
    assert hold_seconds(too_fast(10_000), default=1, cap=300) == 300


def test_under_pacing_a_429_costs_no_attempt_even_past_the_budget() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    paced = RetryPolicy(max_attempts=3, base_seconds=2, max_seconds=300, free_throttles=True)
    verdict = judge_failure(too_fast(4), attempt=9, budget_used=3, policy=paced, now=now)
    assert (verdict.status, verdict.hold_seconds) == (Status.RETRYING, 4)
    assert verdict.next_attempt_at == now + timedelta(seconds=4)
    unpaced = RetryPolicy(max_attempts=3, base_seconds=2, max_seconds=300)
    verdict = judge_failure(too_fast(4), attempt=3, budget_used=3, policy=unpaced, now=now)
    assert (verdict.status, verdict.hold_seconds) == (Status.FAILED, None)


def test_the_settings_read_per_sender_overrides_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACING_SENDERS", '{"+15551234567": 5, "+15557654321": "short_code"}')
    monkeypatch.setenv("PACING_LONG_CODE_RATE", "2")
    rules = pacing_rules(Settings(_env_file=None))  # type: ignore[call-arg]
    assert rules.rates[SenderClass.LONG_CODE] == 2
    assert rules.senders == {"+15551234567": 5.0, "+15557654321": SenderClass.SHORT_CODE}
    assert rules.account_concurrency == 100


@pytest.mark.parametrize("senders", ['{"+15551234567": "fast"}', '{"+15551234567": -1}'])
def test_a_sender_override_that_is_neither_a_rate_nor_a_class_is_refused(
    monkeypatch: pytest.MonkeyPatch, senders: str
) -> None:
    monkeypatch.setenv("PACING_SENDERS", senders)
    with pytest.raises(ValidationError, match="PACING_SENDERS"):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_each_route_has_its_own_account_named_without_its_secret() -> None:
    settings = Settings(
        _env_file=None, twilio_account_sid="AC1", twilio_auth_token="t1",
        twilio_backup_account_sid="AC2", twilio_backup_auth_token="t2",
        sendgrid_api_key="SG.secret",
    )  # type: ignore[call-arg]  # fmt: skip
    async with aiohttp.ClientSession() as session:
        plan = build_routes(settings, session)
    assert [route.account for route in plan[Channel.SMS]] == ["twilio:AC1", "twilio:AC2"]
    [sendgrid] = [route.account for route in plan[Channel.EMAIL]]
    assert sendgrid.startswith("sendgrid:") and "secret" not in sendgrid
