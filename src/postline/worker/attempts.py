"""One delivery attempt of a claimed message, shared by the worker and sync mode."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from postline.domain.channels import Channel
from postline.domain.outcomes import RetryPolicy, judge_failure
from postline.domain.statuses import Status
from postline.errors import ProviderError
from postline.providers.base import Provider
from postline.store.messages import Outcome


async def attempt(
    row: Mapping[str, Any],
    *,
    providers: Mapping[Channel, Provider],
    policy: RetryPolicy,
) -> tuple[Outcome, float]:
    """Sends `row` once; returns the outcome to store and the provider latency."""
    provider = providers[Channel(row["type"])]
    started = time.perf_counter()
    try:
        result = await provider.send(row)
    except ProviderError as error:
        elapsed = time.perf_counter() - started
        verdict = judge_failure(
            error,
            attempt=row["attempts"],
            budget_used=row["attempts"] - row["attempts_base"],
            policy=policy,
        )
        return (
            Outcome(
                id=row["id"],
                attempt=row["attempts"],
                status=verdict.status.value,
                provider=provider.name,
                error_code=error.code,
                error_message=error.message,
                next_attempt_at=verdict.next_attempt_at,
                detail=verdict.detail,
            ),
            elapsed,
        )
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
