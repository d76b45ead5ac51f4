"""The retry delay is always a finite time within [0, RETRY_MAX_SECONDS].

Whatever the attempt number and whatever a provider writes in Retry-After
(`inf`, `nan`, negative, a year, junk), computing the next attempt never
raises and never parks a message past the configured cap.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from postline.domain.outcomes import RetryPolicy, judge_failure
from postline.domain.retry import backoff_seconds
from postline.domain.statuses import Status
from postline.errors import TransientProviderError
from postline.providers.base import raise_for_answer, retry_after_seconds
from postline.settings import Settings

POLICY = RetryPolicy(max_attempts=5, base_seconds=2.0, max_seconds=300.0)
NOW = datetime(2030, 1, 1, tzinfo=UTC)

any_float = st.floats(allow_nan=True, allow_infinity=True)
header_text = st.one_of(
    st.none(),
    st.text(),
    st.sampled_from(["inf", "-inf", "Infinity", "nan", "NaN", "-1", "1e400", "1e9", " 7 ",
                     "9" * 400, "0." + "9" * 400, "Wed, 21 Oct 2015 07:28:00 GMT",
                     "Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 01 Jan 2024 00:00:00 +9999"]),
    st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,30})?", fullmatch=True),
    st.builds(str, any_float),
)  # fmt: skip


@given(
    attempt=st.integers(),
    base=st.floats(min_value=1e-6, max_value=1e6),
    cap=st.floats(min_value=0, max_value=1e7),
    retry_after=st.one_of(st.none(), any_float),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_finite_and_within_zero_and_the_cap(
    attempt: int, base: float, cap: float, retry_after: float | None, seed: int
) -> None:
    delay = backoff_seconds(
        attempt=attempt, base=base, cap=cap, retry_after=retry_after, rng=random.Random(seed)
    )
    assert math.isfinite(delay)
    assert 0 <= delay <= cap
    if retry_after is not None and 0 <= retry_after <= cap:
        assert delay >= retry_after  # honoured as a floor while it fits under the cap


@given(value=header_text)
def test_retry_after_parsing_never_raises(value: str | None) -> None:
    seconds = retry_after_seconds(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@given(value=header_text, attempt=st.integers(min_value=1, max_value=10_000))
def test_any_retry_after_gives_a_next_attempt_within_the_cap(
    value: str | None, attempt: int
) -> None:
    error = TransientProviderError(
        provider="twilio", code="429", message="slow down", status=429,
        retry_after=retry_after_seconds(value),
    )  # fmt: skip
    verdict = judge_failure(error, attempt=attempt, budget_used=1, policy=POLICY, now=NOW)
    assert verdict.status is Status.RETRYING
    assert verdict.next_attempt_at is not None
    assert NOW <= verdict.next_attempt_at <= NOW + timedelta(seconds=POLICY.max_seconds)


def test_a_retry_after_past_the_cap_waits_exactly_the_cap() -> None:
    error = TransientProviderError(provider="sendgrid", code="429", message="m", retry_after=3600)
    verdict = judge_failure(error, attempt=1, budget_used=1, policy=POLICY, now=NOW)
    assert verdict.next_attempt_at == NOW + timedelta(seconds=300)


def test_a_retry_after_under_the_cap_is_a_floor() -> None:
    for seed in range(50):
        delay = backoff_seconds(attempt=1, base=2.0, cap=300.0, retry_after=7.0,
                                rng=random.Random(seed))  # fmt: skip
        assert 7.0 <= delay <= 300.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("9" * 400, 366 * 24 * 3600.0),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-5", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: now
        ("Mon, 01 Jan 99999999999 00:00:00 GMT", None),
    ],
)
def test_retry_after_forms(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


def test_an_http_date_retry_after_counts_from_now() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after_seconds(format_datetime(later, usegmt=True))
    assert seconds is not None and 100 <= seconds <= 120


@pytest.mark.parametrize("header", ["inf", "nan", "-1", "1e999", "\x00", "9" * 5000])
def test_a_429_with_a_garbled_retry_after_is_still_a_transient_error(header: str) -> None:
    with pytest.raises(TransientProviderError) as caught:
        raise_for_answer("twilio", 429, {"Retry-After": header}, "20429", "Too Many Requests")
    retry_after = caught.value.retry_after
    assert retry_after is None or math.isfinite(retry_after)


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_settings_refuse_a_retry_cap_that_is_not_a_finite_positive_time(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retry_max_seconds=value)  # type: ignore[call-arg]
