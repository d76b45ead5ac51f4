"""GroupCommit with an in-memory flush: batching, the parallel bound, per-batch errors, close.

The flush is held on an event until the test lets it go, so every
interleaving is forced, never waited for: what queues while a flush is held
is exactly what the next batch holds. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from postline.batching import GroupCommit

TIMEOUT = 5.0


class HeldFlush:
    """Records each batch, and holds flush number n until `release(n)` (or `release_all`)."""

    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered: asyncio.Queue[list[str]] = asyncio.Queue()
        self.running = 0
        self.most_running = 0
        self._failures = failures or {}
        self._gates: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self._open = False

    async def __call__(self, items: Sequence[str]) -> None:
        number = len(self.batches)
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.entered.put_nowait(list(items))
        try:
            if not self._open:
                await self._gates[number].wait()
            for item in items:
                if item in self._failures:
                    raise self._failures[item]
        finally:
            self.running -= 1

    def release(self, number: int) -> None:
        self._gates[number].set()

    def release_all(self) -> None:
        self._open = True
        for gate in self._gates.values():
            gate.set()

    async def next_batch(self) -> list[str]:
        async with asyncio.timeout(TIMEOUT):
            return await self.entered.get()


@asynccontextmanager
async def committing(
    flush: HeldFlush, *, max_batch: int, parallel: int
) -> AsyncIterator[GroupCommit[str]]:
    commit: GroupCommit[str] = GroupCommit(flush, max_batch=max_batch, parallel=parallel)
    commit.start()
    try:
        yield commit
    finally:
        flush.release_all()
        async with asyncio.timeout(TIMEOUT):
            await commit.close()


async def settle() -> None:
    """A few passes of the event loop: every task made before runs to its next await.

    Tasks run in the order they became ready, so a submit task created
    before this call has queued its item by the time it returns.
    """
    for _ in range(5):
        await asyncio.sleep(0)


def submitting(commit: GroupCommit[str], items: str) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(commit.submit(item)) for item in items]


async def bounded(awaitable: Awaitable[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await awaitable


async def test_a_lone_submit_is_flushed_at_once_on_its_own() -> None:
    flush = HeldFlush()
    flush.release_all()
    async with committing(flush, max_batch=10, parallel=2) as commit:
        await bounded(commit.submit("a"))
        await bounded(commit.submit("b"))
    assert flush.batches == [["a"], ["b"]]


async def test_what_queues_during_a_flush_goes_out_in_batches_of_at_most_max_batch() -> None:
    flush = HeldFlush()
    async with committing(flush, max_batch=3, parallel=1) as commit:
        first = submitting(commit, "0")
        assert await flush.next_batch() == ["0"]
        rest = submitting(commit, "123456789")
        await settle()
        assert flush.batches == [["0"]], "a second flush started while the only slot was held"
        flush.release_all()
        assert await bounded(asyncio.gather(*first, *rest)) == [None] * 10
    assert flush.batches == [["0"], ["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]]


async def test_no_more_than_parallel_flushes_run_at_once() -> None:
    flush = HeldFlush()
    async with committing(flush, max_batch=1, parallel=2) as commit:
        tasks = submitting(commit, "abcde")
        assert [await flush.next_batch(), await flush.next_batch()] == [["a"], ["b"]]
        await settle()
        assert flush.entered.empty() and flush.running == 2
        flush.release(0)
        assert await flush.next_batch() == ["c"]  # a slot came free, one more flush started
        await settle()
        assert flush.entered.empty() and flush.running == 2
        assert tasks[0].done() and not any(t.done() for t in tasks[1:])
        flush.release_all()
        await bounded(asyncio.gather(*tasks))
    assert flush.most_running == 2
    assert flush.batches == [["a"], ["b"], ["c"], ["d"], ["e"]]


async def test_a_failed_flush_fails_exactly_the_submitters_of_its_batch() -> None:
    boom = ConnectionResetError("the database went away")
    flush = HeldFlush(failures={"c": boom})
    async with committing(flush, max_batch=2, parallel=1) as commit:
        tasks = submitting(commit, "a")
        assert await flush.next_batch() == ["a"]
        tasks += submitting(commit, "bcde")
        await settle()
        flush.release_all()
        results = await bounded(asyncio.gather(*tasks, return_exceptions=True))
        assert flush.batches == [["a"], ["b", "c"], ["d", "e"]]
        assert results[0] is None and results[3:] == [None, None]
        assert results[1] is boom and results[2] is boom
        await bounded(commit.submit("f"))  # a failed flush does not stop the next ones
    assert flush.batches[-1] == ["f"]


async def test_a_submitter_that_gives_up_leaves_its_neighbours_alone() -> None:
    flush = HeldFlush()
    async with committing(flush, max_batch=10, parallel=1) as commit:
        tasks = submitting(commit, "a")
        await flush.next_batch()
        tasks += submitting(commit, "bcd")
        await settle()
        tasks[2].cancel()
        flush.release_all()
        results = await bounded(asyncio.gather(*tasks, return_exceptions=True))
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "CancelledError",
                                                   "NoneType"]  # fmt: skip
    assert flush.batches == [["a"], ["b", "c", "d"]]  # queued before it gave up: still written


async def test_close_returns_once_everything_submitted_is_flushed() -> None:
    flush = HeldFlush()
    commit: GroupCommit[str] = GroupCommit(flush, max_batch=2, parallel=2)
    commit.start()
    tasks = submitting(commit, "a")
    await flush.next_batch()
    tasks += submitting(commit, "bcdefg")
    await settle()
    closing = asyncio.create_task(commit.close())
    await settle()
    assert not closing.done(), "close returned while flushes were held"
    flush.release_all()
    await bounded(closing)
    assert all(t.done() and t.result() is None for t in tasks)
    assert sorted(item for batch in flush.batches for item in batch) == list("abcdefg")
    assert all(len(batch) <= 2 for batch in flush.batches)


async def test_drain_waits_for_flushes_and_leaves_the_commit_running() -> None:
    flush = HeldFlush()
    async with committing(flush, max_batch=5, parallel=1) as commit:
        tasks = submitting(commit, "ab")
        await flush.next_batch()
        draining = asyncio.create_task(commit.drain())
        await settle()
        assert not draining.done()
        flush.release_all()
        await bounded(draining)
        assert all(t.done() for t in tasks)
        await bounded(commit.submit("c"))
    assert flush.batches == [["a", "b"], ["c"]]
