"""The service under test: servers, simulator, API and workers as processes.

Benchmarks run the same commands a user runs, each in its own process, so
the figures include every HTTP hop and every round trip to PostgreSQL and
Redis. Without DATABASE_URL/REDIS_URL, embedded servers are started in a
temporary folder (durable settings, as in production).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis

from postline.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from postline.runtime import spawn, wait_http
from postline.simulator.config import SIM_ACCOUNT_SID, SIM_AUTH_TOKEN, SIM_SENDGRID_KEY
from postline.store.migrate import upgrade

BENCH_DATABASE = "postline_bench"


@dataclass
class Stack:
    database_url: str
    redis_url: str
    api_url: str
    sim_url: str
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, concurrency: int) -> None:
        self.workers.append(
            spawn(["worker", "--concurrency", str(concurrency)], self.env, self.logs / "worker.log")
        )

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.wait(timeout=60)
        self.workers.clear()


async def _fresh_database(server_url: str) -> str:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    finally:
        await connection.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{BENCH_DATABASE}"


async def _warm_up(stack: Stack) -> None:
    """A first run nobody measures: connections opened, code paths warm."""
    from postline.bench.load import accept

    await accept(stack.api_url, messages=2000, concurrency=64)
    await reset(stack)


async def reset(stack: Stack) -> None:
    """Empties tables and queues between scenarios."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.execute("TRUNCATE messages CASCADE")
    finally:
        await connection.close()
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    client.close()


@contextlib.contextmanager
def running_stack(*, api_workers: int = 1) -> Iterator[Stack]:
    import asyncio

    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp,
    ):
        root = Path(tmp)
        server_db, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
        if not server_db:
            server_db = stack.enter_context(EmbeddedPostgres(root / "pg")).url
        if not redis_url:
            redis_url = stack.enter_context(EmbeddedRedis(root / "redis")).url
        database_url = asyncio.run(_fresh_database(server_db))
        upgrade(database_url)
        sim_port, api_port = free_port(), free_port()
        sim_url, api_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            TWILIO_ACCOUNT_SID=SIM_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=SIM_AUTH_TOKEN,
            TWILIO_BASE_URL=sim_url,
            SENDGRID_API_KEY=SIM_SENDGRID_KEY,
            SENDGRID_BASE_URL=sim_url,
            LOG_LEVEL="WARNING",
        )
        children: list[subprocess.Popen[bytes]] = []
        sim = spawn(["simulator", "--port", str(sim_port)], env, root / "sim.log")
        children.append(sim)
        api = spawn(["api", "--port", str(api_port)], env, root / "api.log")
        children.append(api)
        bench = Stack(database_url, redis_url, api_url, sim_url, env, root)
        try:
            wait_http(f"{sim_url}/_sim/health", timeout=30, proc=sim)
            wait_http(f"{api_url}/health", timeout=30, proc=api)
            asyncio.run(_warm_up(bench))
            yield bench
        finally:
            bench.stop_workers()
            for proc in children:
                proc.terminate()
            for proc in children:
                proc.wait(timeout=30)
