"""What an attempt's result means for the message: sent, retry later, or failed."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from postline.domain.pacing import hold_seconds, rate_limited
from postline.domain.retry import backoff_seconds
from postline.domain.statuses import Status
from postline.errors import PermanentProviderError, ProviderError, TransientProviderError


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, to be written by the store's `complete`."""

    id: uuid.UUID
    attempt: int
    status: Status  # sent | retrying | failed
    provider: str | None = None
    provider_message_id: str | None = None
    #: the route (provider account) the attempt went through, `domain/routes.py`
    route: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    detail: str | None = None
    #: the provider said "too fast" under pacing: its account is held this
    #: many seconds, and the attempt is not counted against the budget
    hold_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    #: pacing is on: a 429 holds the account and costs no attempt
    free_throttles: bool = False
    #: how long a 429 without Retry-After holds the account
    throttle_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    next_attempt_at: datetime | None = None
    detail: str | None = None
    hold_seconds: float | None = None  # as `Outcome.hold_seconds`


def judge_failure(
    error: ProviderError,
    *,
    attempt: int,
    budget_used: int,
    policy: RetryPolicy,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Verdict:
    """Decides retry or fail for a failed attempt.

    `budget_used` counts the attempts made since the last fresh budget (a
    manual retry resets it), `attempt` is the lifetime attempt number.
    """
    if isinstance(error, PermanentProviderError):
        return Verdict(Status.FAILED, detail="permanent provider error")
    assert isinstance(error, TransientProviderError)
    if policy.free_throttles and rate_limited(error):
        # Pacing slows the account instead (README, "Pacing"): a provider
        # that says "too fast" has not refused the message.
        hold = hold_seconds(error, default=policy.throttle_seconds, cap=policy.max_seconds)
        moment = (now or datetime.now(UTC)) + timedelta(seconds=hold)
        detail = f"the provider asked to slow down; again in {hold:.2f}s, not counted as an attempt"
        return Verdict(Status.RETRYING, next_attempt_at=moment, detail=detail, hold_seconds=hold)
    if budget_used >= policy.max_attempts:
        return Verdict(Status.FAILED, detail=f"gave up after {budget_used} attempts")
    delay = backoff_seconds(
        attempt=budget_used,
        base=policy.base_seconds,
        cap=policy.max_seconds,
        retry_after=error.retry_after,
        rng=rng,
    )
    moment = (now or datetime.now(UTC)) + timedelta(seconds=delay)
    return Verdict(Status.RETRYING, next_attempt_at=moment, detail=f"retry in {delay:.2f}s")
