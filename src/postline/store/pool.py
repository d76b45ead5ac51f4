"""asyncpg connection pool with JSON codecs."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(url: str, *, size: int = 10, lazy: bool = False) -> asyncpg.Pool:
    """A pool sized for one process; statements are prepared once per connection.

    `lazy` opens no connection up front, so the API can start (and answer 503)
    while PostgreSQL is down, and recover by itself when it is back.
    """
    pool = await asyncpg.create_pool(
        url,
        min_size=0 if lazy else 1,
        max_size=size,
        init=_init,
        command_timeout=30,
        # Fail fast when the server is gone, so the API can answer 503 at once.
        timeout=5,
    )
    assert pool is not None
    return pool
