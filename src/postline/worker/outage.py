"""Riding out a dependency that misbehaves: back off, log once, resume.

Redis and PostgreSQL go away (restart, failover, a long script, a full
disk) and come back. A worker never exits for that: each loop backs off
(bounded, jittered, so a fleet does not come back in step), logs the
outage once when it starts and once when it ends, and carries on.
"""

from __future__ import annotations

import logging
import random
import time

from redis.exceptions import RedisError

from postline.store.availability import DB_ERRORS

#: What a worker loop survives: every Redis error (connection refused or
#: reset, timeouts, LOADING, READONLY, BUSY, OOM, MASTERDOWN, UNBLOCKED,
#: NOGROUP), every database error, and the OS's own.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, *DB_ERRORS)

REDIS, POSTGRESQL = "redis", "postgresql"


class Outage:
    """Backoff and log-once bookkeeping for one loop.

    `cause` names the dependency whose error started or continued the
    outage. A loop's round can succeed without touching it (no entry needed
    a claim, another worker held the reconciler's lock), so the loop checks
    that `cause` answers again before it calls `ok`; else each such round
    would log a recovery, and the next failure a new outage.
    """

    def __init__(self, what: str, log: logging.Logger, *, first: float = 0.05, cap: float = 2.0):
        self._what = what
        self._log = log
        self._first = first
        self._cap = cap
        self._delay = first
        self._since: float | None = None
        self.failures = 0
        self.cause: str | None = None

    def failed(self, exc: BaseException) -> float:
        """Records a failure; returns how long to wait before trying again."""
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning("%s: dependency unavailable, retrying: %s", self._what, _short(exc))
        self.cause = dependency_of(exc)
        self.failures += 1
        delay = random.uniform(self._delay / 2, self._delay)
        self._delay = min(self._delay * 2, self._cap)
        return delay

    def ok(self) -> None:
        """Records a success; logs the end of an outage if one was going on."""
        if self._since is not None:
            self._log.warning(
                "%s: recovered after %.1fs (%d failed tries)",
                self._what,
                time.monotonic() - self._since,
                self.failures,
            )
        self._since = None
        self._delay = self._first
        self.failures = 0
        self.cause = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None


def dependency_of(exc: BaseException) -> str | None:
    """REDIS or POSTGRESQL for a dependency error, None for anything else (a bug)."""
    if isinstance(exc, RedisError):
        return REDIS
    if isinstance(exc, DB_ERRORS):  # OSError included: the client wraps its own
        return POSTGRESQL
    return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"
