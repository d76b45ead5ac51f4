"""Retry schedule: exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import random


def backoff_seconds(
    *,
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the attempt after `attempt` (1-based).

    Full jitter (uniform in [0, base * 2^(attempt-1)], capped) spreads a burst
    of failures so they do not come back in step; a provider's Retry-After is
    a floor, never shortened by the jitter.
    """
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
