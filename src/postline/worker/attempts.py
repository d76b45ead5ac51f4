"""One delivery attempt of a claimed message, shared by the worker and sync mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from postline.domain.channels import Channel
from postline.domain.outcomes import RetryPolicy, judge_failure
from postline.domain.statuses import Status
from postline.errors import ProviderError, TransientProviderError
from postline.providers.base import Provider
from postline.store.messages import Outcome


async def attempt(
    row: Mapping[str, Any],
    *,
    providers: Mapping[Channel, Provider],
    policy: RetryPolicy,
    deadline: float,
) -> tuple[Outcome, float]:
    """Sends `row` once; returns the outcome to store and the provider latency.

    `deadline` bounds the whole provider call (connect, write, read) in
    seconds, whatever the HTTP client's own timeouts do; a call cut by it
    is a transient failure (the provider may have accepted: at-least-once).
    """
    provider = providers[Channel(row["type"])]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            result = await provider.send(row)
    except TimeoutError:
        error: ProviderError = TransientProviderError(
            provider=provider.name, code="timeout", message=f"no answer within {deadline:g}s"
        )
        return _failed(row, provider.name, error, policy, time.perf_counter() - started)
    except ProviderError as error:
        return _failed(row, provider.name, error, policy, time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    return (
        Outcome(
            id=row["id"],
            attempt=row["attempts"],
            status=Status.SENT.value,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
        ),
        elapsed,
    )


def _failed(
    row: Mapping[str, Any], provider: str, error: ProviderError, policy: RetryPolicy, elapsed: float
) -> tuple[Outcome, float]:
    verdict = judge_failure(
        error,
        attempt=row["attempts"],
        budget_used=row["attempts"] - row["attempts_base"],
        policy=policy,
    )
    outcome = Outcome(
        id=row["id"],
        attempt=row["attempts"],
        status=verdict.status.value,
        provider=provider,
        error_code=error.code,
        error_message=error.message,
        next_attempt_at=verdict.next_attempt_at,
        detail=verdict.detail,
    )
    return outcome, elapsed
