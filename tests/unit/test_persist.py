"""An outcome write is retried through outages, and a few times through the unexpected."""

from __future__ import annotations

import asyncpg
import pytest

from postline.services.completion import persist
from postline.store.availability import DB_UNAVAILABLE


async def test_an_outage_is_ridden_out_until_the_write_lands() -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionRefusedError("PostgreSQL is restarting")
        return "landed"

    assert await persist("status write", write, DB_UNAVAILABLE) == "landed"
    assert calls == 4


async def test_a_broken_driver_state_is_an_outage_too() -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.exceptions.InternalClientError("cannot switch to state 12")
        return "landed"

    assert await persist("status write", write, DB_UNAVAILABLE) == "landed"


async def test_an_unexpected_error_is_tried_a_few_times_then_raised() -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await persist("status write", write, DB_UNAVAILABLE, other_tries=3)
    assert calls == 3
