"""Unavailable (503) versus refused values (422): store.availability and the API's handler."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from postline.api.errors import from_database
from postline.store import availability
from tests.support.harness import free_port

E = asyncpg.exceptions


@pytest.mark.parametrize(
    "exc",
    [E.UntranslatableCharacterError("\\u0000"), E.CharacterNotInRepertoireError("x"),
     E.DataError("invalid input for query argument $11"), E.NumericValueOutOfRangeError("x"),
     E.UniqueViolationError("x"), E.CheckViolationError("x"), E.ProgramLimitExceededError("x")],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_errors_that_blame_the_values(exc: Exception) -> None:
    assert availability.refused_values(exc)
    assert not availability.unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [E.ConnectionDoesNotExistError("x"), E.AdminShutdownError("x"), E.CannotConnectNowError("x"),
     E.TooManyConnectionsError("x"), E.DiskFullError("x"), asyncpg.InterfaceError("x"),
     ConnectionRefusedError(), TimeoutError()],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_errors_that_mean_unavailable(exc: Exception) -> None:
    assert availability.unavailable(exc)
    assert not availability.refused_values(exc)


@pytest.mark.parametrize(
    "exc",
    [E.UndefinedTableError("x"), E.SyntaxOrAccessError("x"), ValueError("x")],
    ids=lambda e: type(e).__name__,
)
def test_bugs_are_neither(exc: Exception) -> None:
    assert not availability.unavailable(exc)
    assert not availability.refused_values(exc)


async def test_a_refused_connect_is_recognised_as_the_database() -> None:
    with pytest.raises(OSError) as caught:
        await asyncpg.connect(f"postgresql://x@127.0.0.1:{free_port()}/x", timeout=5)
    assert from_database(caught.value)


async def test_a_socket_error_from_elsewhere_is_not_blamed_on_the_database() -> None:
    with pytest.raises(OSError) as caught:
        await asyncio.open_connection("127.0.0.1", free_port())
    assert not from_database(caught.value)
