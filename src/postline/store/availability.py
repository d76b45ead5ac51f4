"""Which database errors mean "PostgreSQL is not there right now".

Those are worth retrying (a restart, a failover, a full connection table);
any other `PostgresError` is deterministic: the same statement with the same
data fails again, so retrying it forever would spin. Callers retry the first
kind and fail the one thing that caused the second.
"""

from __future__ import annotations

import asyncio

import asyncpg
from asyncpg import exceptions as pg

#: The server is down, restarting, refusing connections, out of resources,
#: read-only for a moment, or the connection broke.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,
    pg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    pg.InsufficientResourcesError,  # too many connections, disk full
    pg.ReadOnlySQLTransactionError,
    pg.DeadlockDetectedError,
    pg.SerializationError,
    pg.LockNotAvailableError,
    asyncpg.InterfaceError,
    # The driver's own state broke with the connection (seen during a fast
    # shutdown: "cannot switch to state 12"); the next connection is fine.
    pg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)

#: Every error a database call can raise: the unavailable kinds and the rest.
DB_ERRORS: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE, asyncpg.PostgresError)


def unavailable(exc: BaseException) -> bool:
    return isinstance(exc, DB_UNAVAILABLE)


# SQLSTATE classes that blame the values: 22 data exception (NUL in text or
# jsonb, a value out of range; asyncpg also raises 22000 for an argument it
# cannot encode), 23 integrity constraint violation, 54 program limit
# exceeded (a value too large for an index row).
_REFUSED_CLASSES = frozenset({"22", "23", "54"})


def refused_values(exc: BaseException) -> bool:
    """True if PostgreSQL (or the driver) refused a statement's values, not the statement.

    The API answers such a request 422 (its content cannot be stored; trying
    again will not help), and a group commit refused this way is retried
    request by request, so only the request that caused it fails.
    """
    if not isinstance(exc, asyncpg.PostgresError) or unavailable(exc):
        return False
    return str(exc.sqlstate or "")[:2] in _REFUSED_CLASSES
