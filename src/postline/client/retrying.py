"""When a call is tried again, and how long the client waits first.

Retried: 503 (nothing was stored), 429, and a send's 409
`idempotency_in_progress` (the client's own earlier try is still being
stored); then connection failures and timeouts. Never another 4xx: it would
fail the same way again.

A timeout may hide a request the API did receive. Sending it again is safe
for reads, and for a send because every try carries the same
Idempotency-Key; a batch, a cancel or a retry has no key, so after a
timeout it is only sent again when the connection never opened.
Waits are exponential with full jitter, so many clients that failed
together do not come back together; a `Retry-After` is honoured up to
`max_wait`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from postline.client.errors import Unreachable, envelope_code

RETRIED_STATUSES = frozenset({429, 503})
IN_PROGRESS = "idempotency_in_progress"
# The connection never opened: the API cannot have seen the request.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Worth another try; a LocalProtocolError or an unsupported URL is not.
RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a call is tried again, and the waits' scale."""

    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (0 for the first)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        return random.uniform(0.0, min(self.max_wait, self.backoff * 2**retry))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Attempts:
    """One call's tries: after each, how long to wait before the next, or stop."""

    def __init__(self, policy: RetryPolicy, *, replayable: bool, keyed: bool) -> None:
        self.policy = policy
        self.replayable = replayable  # sending it twice does no harm
        self.keyed = keyed  # it carries an Idempotency-Key
        self.retried = 0

    def after_answer(self, response: httpx.Response) -> float | None:
        """The wait before trying again, or None: the answer is final."""
        if self.retried >= self.policy.retries or not self._retried(response):
            return None
        return self._next(retry_after(response.headers.get("retry-after")))

    def after_error(self, error: httpx.TransportError) -> float:
        """The wait before trying again; raises `Unreachable` when it must not."""
        worth_it = isinstance(error, RETRIED_ERRORS)
        safe = self.replayable or isinstance(error, NOT_SENT)
        if not (worth_it and safe) or self.retried >= self.policy.retries:
            tries = self.retried + 1
            raise Unreachable(
                f"no answer from the API after {tries} tr{'y' if tries == 1 else 'ies'}: {error!r}"
            ) from error
        return self._next(None)

    def _retried(self, response: httpx.Response) -> bool:
        if response.status_code in RETRIED_STATUSES:
            return True
        return self.keyed and response.status_code == 409 and envelope_code(response) == IN_PROGRESS

    def _next(self, hint: float | None) -> float:
        wait = self.policy.wait(self.retried, hint)
        self.retried += 1
        return wait
