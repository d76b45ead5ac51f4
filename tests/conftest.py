"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.embedded import EmbeddedRedis, free_port
from postline.queue.streams import RedisQueue, connect
from postline.settings import Settings
from postline.simulator.app import RunningSimulator, running_simulator
from postline.simulator.config import SimulatorConfig
from postline.store.messages import MessageStore
from postline.store.pool import create_pool
from tests.support.harness import SIM_KEY, SIM_SID, SIM_TOKEN, running_api, settings_for
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
    await pool.execute("TRUNCATE messages, suppressions, inbound_messages, purged_outcomes CASCADE")
    yield pool
    await pool.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own, which it may stop, kill, flush or reconfigure."""
    server = EmbeddedRedis(tmp_path / "own-redis", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


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


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """The provider simulator, with the credentials the tests' settings use."""
    config = SimulatorConfig(
        twilio_account_sid=SIM_SID, twilio_auth_token=SIM_TOKEN, sendgrid_api_key=SIM_KEY
    )
    async with running_simulator(config) as running:
        yield running


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    sim: RunningSimulator,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> Settings:
    """Settings pointing at the test servers and the simulator.

    Asks for `pool` and `redis` so every test starts from empty tables and
    queues. A module that needs other values overrides this fixture.
    """
    return settings_for(database_url, redis_url, sim.base_url)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real API, served in the test's event loop."""
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


@pytest.fixture
def env(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis
) -> dict[str, str]:
    """Environment for `postline` subprocesses against the test servers (emptied first)."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": SIM_SID,
        "TWILIO_AUTH_TOKEN": SIM_TOKEN,
        "SENDGRID_API_KEY": SIM_KEY,
        "RETRY_BASE_SECONDS": "0.05",
        "LOG_FORMAT": "json",
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",  # test receivers listen on loopback
    }
