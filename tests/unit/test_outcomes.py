"""What a failed attempt means (SPEC 2, Retries): retry later, or fail now.

A provider answer becomes a transient or permanent error (providers.base),
and `judge_failure` turns that error into a verdict: permanent errors fail
at once, transient ones retry on the backoff schedule until the attempt
budget is spent. Retry-After parsing and the [0, cap] bound of every delay
are in test_retry_schedule.py; here: the classification, the budget, and
the shape of the schedule itself.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.domain.outcomes import RetryPolicy, judge_failure
from postline.domain.retry import MAX_EXPONENT, backoff_seconds
from postline.domain.statuses import Status
from postline.errors import PermanentProviderError, ProviderError, TransientProviderError
from postline.providers.base import raise_for_answer, transport_error

POLICY = RetryPolicy(max_attempts=3, base_seconds=2.0, max_seconds=300.0)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Highest(random.Random):
    """Jitter that always draws the top of its range: the schedule's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def answered(provider: str, status: int, code: str = "", retry_after: str = "") -> ProviderError:
    headers = {"Retry-After": retry_after} if retry_after else {}
    with pytest.raises(ProviderError) as caught:
        raise_for_answer(provider, status, headers, code or str(status), "refused")
    return caught.value


@pytest.mark.parametrize("provider", ["twilio", "sendgrid"])
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_timeouts_throttling_and_server_errors_are_retried(provider: str, status: int) -> None:
    error = answered(provider, status)
    assert isinstance(error, TransientProviderError)
    assert (error.provider, error.status) == (provider, status)
    verdict = judge_failure(error, attempt=1, budget_used=1, policy=POLICY, now=NOW)
    assert verdict.status is Status.RETRYING
    assert verdict.next_attempt_at is not None and verdict.next_attempt_at >= NOW


@pytest.mark.parametrize(
    ("provider", "status", "code"),
    [
        ("twilio", 400, "21211"),  # invalid 'To' number
        ("twilio", 400, "21610"),  # recipient unsubscribed
        ("twilio", 401, "20003"),  # authentication
        ("twilio", 404, "20404"),
        ("sendgrid", 400, "400"),
        ("sendgrid", 401, "401"),
        ("sendgrid", 403, "403"),
        ("sendgrid", 413, "413"),
        ("sendgrid", 422, "422"),
        ("twilio", 409, "409"),
    ],
)
def test_other_client_errors_fail_at_once_keeping_the_providers_code(
    provider: str, status: int, code: str
) -> None:
    error = answered(provider, status, code)
    assert isinstance(error, PermanentProviderError)
    assert (error.provider, error.status, error.code) == (provider, status, code)
    verdict = judge_failure(error, attempt=1, budget_used=1, policy=POLICY, now=NOW)
    assert verdict == judge_failure(error, attempt=1, budget_used=0, policy=POLICY, now=NOW)
    assert (verdict.status, verdict.next_attempt_at) == (Status.FAILED, None)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerDisconnectedError(), "network_error"),
        (aiohttp.ClientConnectionError("refused"), "network_error"),
        (ConnectionResetError("reset"), "network_error"),
    ],
    ids=["timeout", "disconnected", "connection-error", "reset"],
)
def test_a_request_without_an_answer_is_retried(exc: BaseException, code: str) -> None:
    error = transport_error("twilio", exc)
    assert (error.code, error.status, error.retry_after) == (code, None, None)
    verdict = judge_failure(error, attempt=1, budget_used=1, policy=POLICY, now=NOW)
    assert verdict.status is Status.RETRYING


def test_a_retry_after_under_the_cap_is_waited_in_full() -> None:
    error = answered("sendgrid", 503, retry_after="120")
    for seed in range(20):
        verdict = judge_failure(
            error, attempt=1, budget_used=1, policy=POLICY, now=NOW, rng=random.Random(seed)
        )
        assert verdict.next_attempt_at is not None
        assert NOW + timedelta(seconds=120) <= verdict.next_attempt_at


@pytest.mark.parametrize(("budget_used", "status"), [
    (0, Status.RETRYING), (1, Status.RETRYING), (2, Status.RETRYING),
    (3, Status.FAILED), (4, Status.FAILED), (100, Status.FAILED),
])  # fmt: skip
def test_a_transient_error_gives_up_once_the_budget_is_spent(
    budget_used: int, status: Status
) -> None:
    error = answered("twilio", 503)
    verdict = judge_failure(error, attempt=budget_used, budget_used=budget_used, policy=POLICY)
    assert verdict.status is status
    if status is Status.FAILED:
        assert verdict.next_attempt_at is None
        assert verdict.detail == f"gave up after {budget_used} attempts"


def test_a_fresh_budget_retries_whatever_the_lifetime_attempt_number() -> None:
    # After a manual retry the lifetime count is high but the budget is new:
    # the message retries, and its backoff starts again from the base delay.
    error = answered("twilio", 500)
    verdict = judge_failure(error, attempt=40, budget_used=1, policy=POLICY, now=NOW, rng=Highest())
    assert verdict.status is Status.RETRYING
    assert verdict.next_attempt_at == NOW + timedelta(seconds=POLICY.base_seconds)
    assert verdict.detail == "retry in 2.00s"


@given(
    budget_used=st.integers(min_value=0, max_value=50),
    max_attempts=st.integers(min_value=1, max_value=20),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_the_verdict_depends_on_the_budget_alone(
    budget_used: int, max_attempts: int, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, base_seconds=1.0, max_seconds=60.0)
    error = TransientProviderError(provider="twilio", code="500", message="m", status=500)
    verdict = judge_failure(
        error, attempt=budget_used, budget_used=budget_used, policy=policy, now=NOW,
        rng=random.Random(seed),
    )  # fmt: skip
    if budget_used >= max_attempts:
        assert (verdict.status, verdict.next_attempt_at) == (Status.FAILED, None)
    else:
        assert verdict.status is Status.RETRYING
        assert verdict.next_attempt_at is not None
        assert NOW <= verdict.next_attempt_at <= NOW + timedelta(seconds=60)


bases = st.floats(min_value=1e-3, max_value=1e4)
caps = st.floats(min_value=0, max_value=1e7)


@given(base=bases, cap=caps, first=st.integers(-5, 200), second=st.integers(-5, 200))
def test_the_schedule_without_jitter_never_shrinks(
    base: float, cap: float, first: int, second: int
) -> None:
    low, high = sorted((first, second))
    shorter = backoff_seconds(attempt=low, base=base, cap=cap, rng=Highest())
    longer = backoff_seconds(attempt=high, base=base, cap=cap, rng=Highest())
    assert 0 <= shorter <= longer <= cap


@given(base=bases, cap=caps, attempt=st.integers(1, MAX_EXPONENT + 1))
def test_the_schedule_without_jitter_doubles_up_to_the_cap(
    base: float, cap: float, attempt: int
) -> None:
    delay = backoff_seconds(attempt=attempt, base=base, cap=cap, rng=Highest())
    assert delay == min(cap, base * 2 ** (attempt - 1))


@given(
    base=bases, cap=caps, attempt=st.integers(-5, 10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)  # fmt: skip
def test_jitter_stays_between_zero_and_that_attempts_ceiling(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), MAX_EXPONENT))
    delay = backoff_seconds(attempt=attempt, base=base, cap=cap, rng=random.Random(seed))
    assert 0 <= delay <= ceiling


def test_jitter_spreads_a_burst_of_failures() -> None:
    rng = random.Random(7)
    delays = [backoff_seconds(attempt=5, base=2.0, cap=300.0, rng=rng) for _ in range(200)]
    assert len(set(delays)) == len(delays)
    assert min(delays) < 8 < 24 < max(delays) <= 32  # the whole [0, 2 * 2^4] range is used
