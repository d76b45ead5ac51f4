"""Scenarios, repetitions and the final table.

Each figure is the median of `runs` repetitions, shown with its range. The
scenarios are the three end-to-end figures the README promises: accepting
alone, one worker draining a backlog, and accept + delivery at once, the last
two also against a provider that takes 100 ms per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postline.bench.load import AcceptResult, accept, count_sent, wait_sent
from postline.bench.stack import Stack, reset, running_stack
from postline.queue.keys import HEARTBEAT_PREFIX

ALL_SCENARIOS = ("accept", "accept-2000", "drain", "both", "drain-100ms", "both-100ms")
OFFERED_RATE = 2000.0


@dataclass
class Figures:
    rates: dict[str, list[float]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.rates.setdefault(name, []).append(value)

    def add_latency(self, result: AcceptResult, prefix: str) -> None:
        for p in (50, 95, 99):
            self.latency.setdefault(f"{prefix} p{p}", []).append(result.percentile(p) * 1000)


def _set_latency(stack: Stack, ms: float) -> None:
    httpx.put(f"{stack.sim_url}/_sim/config", json={"latency_ms": ms}).raise_for_status()


class Bench:
    def __init__(
        self, stack: Stack, *, messages: int, concurrency: int, batch: int, worker_concurrency: int
    ) -> None:
        self.stack = stack
        self.messages = messages
        self.concurrency = concurrency
        self.batch = batch
        self.worker_concurrency = worker_concurrency
        self.figures = Figures()

    async def _accept(
        self, progress: Progress, label: str, rate: float | None = None
    ) -> AcceptResult:
        task = progress.add_task(label, total=self.messages)
        result = await accept(
            self.stack.api_url,
            messages=self.messages,
            concurrency=self.concurrency,
            batch=self.batch,
            rate=rate,
            progress=lambda n: progress.advance(task, n),
        )
        progress.remove_task(task)
        if result.errors:
            raise RuntimeError(f"{result.errors} requests failed during {label}")
        return result

    async def _wait(
        self, progress: Progress, label: str, timeout: float = 600, target: int | None = None
    ) -> float:
        task = progress.add_task(label, total=target or self.messages)
        done = await wait_sent(
            self.stack.database_url,
            target or self.messages,
            timeout=timeout,
            progress=lambda n: progress.update(task, completed=n),
        )
        progress.remove_task(task)
        return done

    async def scenario(self, name: str, progress: Progress) -> None:
        await reset(self.stack)
        _set_latency(self.stack, 100.0 if name.endswith("100ms") else 0.0)
        if name == "accept":
            result = await self._accept(progress, "accepting, as fast as it goes")
            self.figures.add("accepted msg/s", result.rate)
            self.figures.add_latency(result, "accept latency ms")
        elif name == "accept-2000":
            result = await self._accept(progress, "accepting at 2,000 msg/s", OFFERED_RATE)
            self.figures.add("accepted msg/s at 2,000 offered", result.rate)
            self.figures.add_latency(result, "accept latency ms at 2,000/s")
        elif name.startswith("drain"):
            await self._accept(progress, f"{name}: building a backlog")
            self.stack.start_worker(self.worker_concurrency)
            # Timed from the first send, so the worker's start-up is not counted.
            first = await self._wait(progress, f"{name}: worker starting", target=1)
            done_at_first = await count_sent(self.stack.database_url)
            finished = await self._wait(progress, f"{name}: one worker draining")
            rate = (self.messages - done_at_first) / (finished - first)
            self.figures.add(f"{name} msg/s (one worker)", rate)
        else:
            self.stack.start_worker(self.worker_concurrency)
            await self._wait_worker_ready()
            started = time.perf_counter()
            result = await self._accept(progress, f"{name}: accepting while delivering")
            finished = await self._wait(progress, f"{name}: delivering")
            self.figures.add(f"{name} end-to-end msg/s", self.messages / (finished - started))
            self.figures.add(f"{name} accepted msg/s", result.rate)
            self.figures.add_latency(result, f"{name} accept latency ms")
        self.stack.stop_workers()

    async def _wait_worker_ready(self, timeout: float = 30) -> None:
        """Until the worker's first heartbeat: its start-up is not part of the figure."""
        client = aioredis.Redis.from_url(self.stack.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while not await client.keys(HEARTBEAT_PREFIX + "*"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker did not start")
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()


def _row(values: list[float]) -> tuple[str, str]:
    median = statistics.median(values)
    return f"{median:,.1f}", f"{min(values):,.1f} to {max(values):,.1f}"


def report(figures: Figures, console: Console, title: str) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("range", justify="right")
    for name, values in [*figures.rates.items(), *figures.latency.items()]:
        table.add_row(name, *_row(values))
    console.print(table)


def run(
    *,
    messages: int,
    concurrency: int,
    batch: int,
    runs: int,
    scenarios: tuple[str, ...],
    worker_concurrency: int,
    echo: Callable[[str], None] | None = None,
) -> Figures:
    console = Console()
    with running_stack() as stack:
        bench = Bench(
            stack,
            messages=messages,
            concurrency=concurrency,
            batch=batch,
            worker_concurrency=worker_concurrency,
        )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            for i in range(runs):
                for name in scenarios:
                    asyncio.run(bench.scenario(name, progress))
                console.print(f"run {i + 1}/{runs} done")
    size = f"batches of {batch}" if batch else "one message per request"
    report(
        bench.figures,
        console,
        f"{messages:,} messages, {concurrency} clients, {size}, median of {runs}",
    )
    return bench.figures
