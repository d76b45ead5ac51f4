"""The PostgreSQL and Redis the tests run against.

With DATABASE_URL and REDIS_URL set, the tests use those servers (a fresh
database is created on the PostgreSQL server; the Redis database given is
flushed between tests). Without them, embedded servers are started in a
temporary folder, as on a fresh machine.

`make test` runs the tests in two processes (pytest-xdist). Each has servers
of its own: embedded ones, or on the given Redis the database after the one
given for the second process (`redis://.../3` → 3 and 4), since each flushes
its own between tests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from postline.store.migrate import upgrade


@dataclass(frozen=True)
class Servers:
    database_url: str
    redis_url: str
    embedded: bool


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    given_db, given_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if given_db and given_redis:
            yield Servers(given_db, redis_database_of_process(given_redis), embedded=False)
            return
        from postline.embedded import EmbeddedPostgres, EmbeddedRedis

        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="postline-test-")))
        pg = stack.enter_context(EmbeddedPostgres(root / "pg", fast=True))
        rd = stack.enter_context(EmbeddedRedis(root / "redis"))
        yield Servers(given_db or pg.url, given_redis or rd.url, embedded=True)


def redis_database_of_process(url: str) -> str:
    """The given Redis URL with the database of this test process: the given one
    in the first (or only) process, the next ones in the others."""
    process = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    if process == 0:
        return url
    parts = urlsplit(url)
    given = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{given + process}"))


def new_database_name() -> str:
    return f"postline_test_{uuid.uuid4().hex[:8]}"


async def migrated_database(server_url: str) -> tuple[str, str]:
    """Creates a fresh database on the server and migrates it; returns (url, name)."""
    import asyncio

    name = new_database_name()
    await create_database(server_url, name)
    url = _with_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    return url, name
