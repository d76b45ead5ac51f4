"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from postline.queue.streams import RedisQueue, connect
from postline.store.messages import MessageStore
from postline.store.pool import create_pool
from tests.support.servers import Servers, drop_database, migrated_database, servers


@pytest.fixture(scope="session")
def test_servers() -> Iterator[Servers]:
    with servers() as found:
        yield found


@pytest.fixture(scope="session")
async def database_url(test_servers: Servers) -> AsyncIterator[str]:
    url, name = await migrated_database(test_servers.database_url)
    yield url
    await drop_database(test_servers.database_url, name)


@pytest.fixture(scope="session")
def redis_url(test_servers: Servers) -> str:
    return test_servers.redis_url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, size=10)
    await pool.execute("TRUNCATE messages CASCADE")
    yield pool
    await pool.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def store(pool: asyncpg.Pool) -> MessageStore:
    return MessageStore(pool)


@pytest.fixture
async def queue(redis: aioredis.Redis) -> RedisQueue:
    q = RedisQueue(redis)
    await q.ensure_groups()
    return q
