"""Recent activity as fixed series: the pure half of the dashboard's live view.

The store counts outcome events per time bucket (`bucket` = floor(epoch
seconds / width)). This module lays them out as `points` counts per series,
oldest first, ending with the last *complete* bucket: the bucket in
progress is left out, or every reading would end on a dip that is only the
bucket not being over yet. A rate "now" is that last complete bucket's
count over its width, not an average of the last minute, so a change in
flow shows within one bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: Event statuses counted, and the name each series has.
OUTCOMES: dict[str, str] = {"sent": "sent", "failed": "failed", "retrying": "retried"}

Series = dict[str, list[int]]


@dataclass(frozen=True, slots=True)
class Window:
    """`points` buckets of `width` seconds, the last one ending where `now`'s bucket starts."""

    width: int
    points: int
    now: float

    @property
    def current(self) -> int:
        """The bucket in progress (not shown)."""
        return math.floor(self.now / self.width)

    @property
    def first(self) -> int:
        return self.current - self.points

    @property
    def start(self) -> float:
        """Epoch seconds where the first bucket starts: what the store reads from."""
        return float(self.first * self.width)


@dataclass(frozen=True, slots=True)
class Count:
    """Outcome events of one bucket, under one key (a channel, a provider, ...)."""

    bucket: int
    key: str
    status: str
    count: int


def empty(points: int) -> Series:
    return {name: [0] * points for name in OUTCOMES.values()}


def lay_out(counts: Iterable[Count], window: Window, keys: Iterable[str]) -> dict[str, Series]:
    """Series per key, every key of `keys` present; counts outside the window are dropped."""
    laid: dict[str, Series] = {key: empty(window.points) for key in keys}
    for c in counts:
        index = c.bucket - window.first
        name = OUTCOMES.get(c.status)
        if name is None or not 0 <= index < window.points:
            continue
        laid.setdefault(c.key, empty(window.points))[name][index] += c.count
    return laid


def rates_now(series: Series, width: int) -> dict[str, float]:
    """Per second over the last complete bucket, per outcome (`sent_per_second`, ...)."""
    return {
        f"{name}_per_second": round(counts[-1] / width, 3) if counts else 0.0
        for name, counts in series.items()
    }


def error_ratio(attempts: int, errors: int) -> float | None:
    """Share of attempts that ended in an error; None when there was no attempt."""
    return round(errors / attempts, 4) if attempts else None
