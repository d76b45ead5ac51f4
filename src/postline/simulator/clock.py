"""Timestamps in the two formats the simulator speaks.

Twilio resources carry RFC 2822 dates (`Thu, 24 Aug 2023 05:01:45 +0000`);
the inspection log uses RFC 3339 like the rest of Postline. Day and month
names are spelled out here rather than with `strftime` so the output does
not depend on the process locale.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc2822_now() -> str:
    """The current UTC time as Twilio writes `date_created`."""
    return _rfc2822(int(time.time()))


# One formatted string per wall-clock second is plenty at thousands of req/s.
@lru_cache(maxsize=2)
def _rfc2822(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def rfc3339(timestamp: float) -> str:
    """A Unix timestamp as RFC 3339 UTC with millisecond precision."""
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
