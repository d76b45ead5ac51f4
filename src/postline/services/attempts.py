"""One delivery attempt of a claimed message, shared by the worker and sync mode."""

from __future__ import annotations

import asyncio
import time

from postline.domain.message import Message
from postline.domain.outcomes import Outcome, RetryPolicy, judge_failure
from postline.domain.routes import health_of
from postline.domain.statuses import Status
from postline.domain.suppression import SUPPRESSED_CODE, suppressed_message
from postline.errors import ProviderError, TransientProviderError
from postline.services.routing import Router
from postline.settings import Settings


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry schedule the settings ask for (MAX_ATTEMPTS, RETRY_*_SECONDS)."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        free_throttles=settings.pacing_enabled,
        throttle_seconds=settings.pacing_throttle_seconds,
    )


async def attempt(
    message: Message,
    *,
    routes: Router,
    policy: RetryPolicy,
    deadline: float,
    suppressed_by: str | None = None,
) -> tuple[Outcome, float]:
    """Sends `message` once; returns the outcome to store and the provider latency.

    `deadline` bounds the whole provider call (connect, write, read) in
    seconds, whatever the HTTP client's own timeouts do; a call cut by it
    is a transient failure (the provider may have accepted: at-least-once).
    A message whose claim found its recipient suppressed (`suppressed_by`,
    the reason) fails at once, without a provider call. The attempt goes
    through the one route `routes` picks, and reports back how it went.
    """
    if suppressed_by is not None:
        return suppressed(message, suppressed_by), 0.0
    taken = await routes.pick(message)
    provider, route = taken.route.provider, taken.route.name
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            result = await provider.send(message)
    except TimeoutError:
        error: ProviderError = TransientProviderError(
            provider=provider.name, code="timeout", message=f"no answer within {deadline:g}s"
        )
    except ProviderError as exc:
        error = exc
    else:
        routes.report(taken, health_of(None))
        sent = Outcome(
            id=message.id,
            attempt=message.attempts,
            status=Status.SENT,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
            route=route,
        )
        return sent, time.perf_counter() - started
    routes.report(taken, health_of(error))
    failed = _failed(message, provider.name, route, error, policy)
    return failed, time.perf_counter() - started


def suppressed(message: Message, reason: str) -> Outcome:
    """The outcome of a send to a suppressed recipient: failed, for good."""
    return Outcome(
        id=message.id,
        attempt=message.attempts,
        status=Status.FAILED,
        error_code=SUPPRESSED_CODE,
        error_message=suppressed_message(reason),
        detail="not sent: the recipient is suppressed",
    )


def _failed(
    message: Message, provider: str, route: str, error: ProviderError, policy: RetryPolicy
) -> Outcome:
    verdict = judge_failure(
        error,
        attempt=message.attempts,
        budget_used=message.attempts - message.attempts_base,
        policy=policy,
    )
    return Outcome(
        id=message.id,
        attempt=message.attempts,
        status=verdict.status,
        provider=provider,
        route=route,
        error_code=error.code,
        error_message=error.message,
        next_attempt_at=verdict.next_attempt_at,
        detail=verdict.detail,
        hold_seconds=verdict.hold_seconds,
    )
