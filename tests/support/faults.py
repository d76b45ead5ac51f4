"""Faults a test can inflict on servers of its own, and an in-process Postline to suffer them.

Only servers the test started itself are stopped, killed or flushed here:
the shared test Redis and PostgreSQL belong to everyone on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from postline.api.app import create_app
from postline.embedded import EmbeddedRedis
from postline.settings import Settings
from postline.worker.runner import Worker
from tests.support.harness import running_worker, serving, wait_for


def kill_9(server: EmbeddedRedis) -> None:
    """SIGKILL, as a crash: no shutdown, no final fsync."""
    pid = server.pid
    assert pid is not None, "the server is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid is not None:  # polls (and reaps) the child
        assert time.monotonic() < deadline, "the killed server did not exit"
        time.sleep(0.01)


def aof_size(server: EmbeddedRedis) -> int:
    """Bytes of the append-only file Redis has written so far."""
    return (server.data_dir / "appendonly.aof").stat().st_size


def lose_writes_after(server: EmbeddedRedis, size: int) -> int:
    """Cuts the AOF of a dead Redis back to `size` bytes; returns the bytes lost.

    With `appendfsync everysec`, what a crash of the machine loses is the AOF's
    tail that was written but not yet synced. Killing only the process loses
    nothing (the kernel still has the pages), so the test cuts the tail itself.
    """
    assert server.pid is None, "cut the file of a stopped server only"
    path = server.data_dir / "appendonly.aof"
    lost = path.stat().st_size - size
    with path.open("r+b") as f:
        f.truncate(size)
    return lost


@dataclass
class Service:
    """An in-process API and workers; `api` is a client of the API."""

    api: httpx.AsyncClient
    app: FastAPI
    workers: list[Worker] = field(default_factory=list)


@contextlib.asynccontextmanager
async def in_process(
    settings: Settings, *, workers: int = 2, concurrency: int = 64
) -> AsyncIterator[Service]:
    """The API and `workers` workers, served in the test's event loop."""
    async with contextlib.AsyncExitStack() as stack:
        app = create_app(settings)
        base = await stack.enter_async_context(serving(app))
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
        service = Service(api, app)
        for _ in range(workers):
            worker = await stack.enter_async_context(
                running_worker(settings, concurrency=concurrency)
            )
            service.workers.append(worker)
        yield service


async def statuses(pool: asyncpg.Pool, ids: Sequence[str]) -> dict[str, int]:
    """How many of `ids` are in each status."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM messages WHERE id = ANY($1::uuid[]) GROUP BY status",
        list(ids),
    )
    return {row["status"]: row["n"] for row in rows}


async def wait_final(
    pool: asyncpg.Pool, ids: Sequence[str], *, within: float, status: str = "sent"
) -> float:
    """Waits until every one of `ids` is `status`; returns the seconds it took."""
    started = time.monotonic()

    async def done() -> bool:
        return (await statuses(pool, ids)).get(status, 0) == len(ids)

    try:
        await wait_for(done, timeout=within, what=f"{len(ids)} messages to be {status}", every=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; statuses: {await statuses(pool, ids)}") from None
    return time.monotonic() - started


async def script(sim_url: str, scripts: dict[str, list[Any]]) -> None:
    """Scripts the simulator's next answers for each recipient in `scripts`."""
    async with httpx.AsyncClient(base_url=sim_url) as control:
        for to, responses in scripts.items():
            answer = await control.post("/_sim/scripts", json={"to": to, "responses": responses})
            answer.raise_for_status()


async def in_thread(action: Any, *args: Any) -> Any:
    """Runs a blocking server control (start, stop) without stalling the event loop."""
    return await asyncio.to_thread(action, *args)


#: Attempts cut by the provider deadline. The provider may have accepted such
#: an attempt (at-least-once), so each one may explain one duplicate send.
CUT_BY_DEADLINE = (
    "SELECT count(*) FROM message_events WHERE status = 'retrying' AND error_code = 'timeout'"
)


class Partition:
    """A TCP relay to a server that a test can cut (a network partition) and heal.

    Only the clients pointed at the relay lose the server; everyone else keeps it.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.cut = False

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._links |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links -= {writer, up_writer}

    def sever(self) -> None:
        """Drops every link and refuses new ones, as a partition would."""
        self.cut = True
        for link in self._links:
            link.close()

    def heal(self) -> None:
        self.cut = False

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
