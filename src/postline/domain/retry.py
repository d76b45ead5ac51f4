"""Retry schedule: exponential backoff with full jitter, honouring Retry-After.

The delay is total: whatever the attempt number and whatever a provider put
in Retry-After (infinite, NaN, negative, years), it is a finite number in
[0, cap], so the time of the next attempt can always be computed and stored.
"""

from __future__ import annotations

import math
import random

# 2**62 times any sane base is past every cap; a larger exponent would only
# overflow the float arithmetic.
MAX_EXPONENT = 62


def exponential_seconds(attempt: int, *, base: float, cap: float) -> float:
    """`base` doubled for each attempt after the first (1-based), at most `cap`."""
    exponent = min(max(attempt - 1, 0), MAX_EXPONENT)
    return float(min(cap, base * 2.0**exponent))


def backoff_seconds(
    *,
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the attempt after `attempt` (1-based); within [0, cap] for finite `cap`.

    Full jitter (uniform in [0, base * 2^(attempt-1)], capped) spreads a burst
    of failures so they do not come back in step; a provider's Retry-After is
    a floor, never shortened by the jitter, but never past `cap` either: a
    provider asking for an hour must not park a message beyond the
    configured longest wait (RETRY_MAX_SECONDS).
    """
    ceiling = exponential_seconds(attempt, base=base, cap=cap)
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None and not math.isnan(retry_after):
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), cap)
