"""Group commit: many concurrent callers, one round trip.

Each caller hands in an item and awaits its own future; a background task
takes everything that queued up while the previous flush ran and writes it
in one go. Under light load a flush holds one item (no added latency); under
heavy load batches grow by themselves, which is what keeps the accept path
and the worker's status writes at a constant few round trips per batch
instead of per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
Flush = Callable[[Sequence[T]], Awaitable[None]]


class GroupCommit(Generic[T]):
    """Batches `submit` calls into `flush(items)` calls, at most `parallel` at once."""

    def __init__(self, flush: Flush[T], *, max_batch: int = 500, parallel: int = 2) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(parallel)
        self._items: list[tuple[T, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="group-commit")

    async def submit(self, item: T) -> None:
        """Returns once `item` is flushed; raises what its flush raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append((item, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._items:
                await self._slots.acquire()
                batch = self._items[: self._max_batch]
                del self._items[: self._max_batch]
                task = asyncio.create_task(self._flush_batch(batch))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._flush([item for item, _ in batch])
        except Exception as exc:  # every waiter learns what went wrong
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Waits until everything submitted so far is flushed."""
        while self._items or self._flushes:
            if self._flushes:
                await asyncio.wait(set(self._flushes))
            else:
                await asyncio.sleep(0)

    async def close(self) -> None:
        await self.drain()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
