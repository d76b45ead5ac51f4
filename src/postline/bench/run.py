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
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postline.bench.load import AcceptResult, accept, wait_sent
from postline.bench.stack import Stack, reset, running_stack

ALL_SCENARIOS = ("accept", "drain", "both", "drain-100ms", "both-100ms")


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

    async def _accept(self, progress: Progress, label: str) -> AcceptResult:
        task = progress.add_task(label, total=self.messages)
        result = await accept(
            self.stack.api_url,
            messages=self.messages,
            concurrency=self.concurrency,
            batch=self.batch,
            progress=lambda n: progress.advance(task, n),
        )
        progress.remove_task(task)
        if result.errors:
            raise RuntimeError(f"{result.errors} requests failed during {label}")
        return result

    async def _wait(self, progress: Progress, label: str, timeout: float = 600) -> float:
        task = progress.add_task(label, total=self.messages)
        done = await wait_sent(
            self.stack.database_url,
            self.messages,
            timeout=timeout,
            progress=lambda n: progress.update(task, completed=n),
        )
        progress.remove_task(task)
        return done

    async def scenario(self, name: str, progress: Progress) -> None:
        await reset(self.stack)
        _set_latency(self.stack, 100.0 if name.endswith("100ms") else 0.0)
        if name == "accept" or name.startswith("drain"):
            result = await self._accept(progress, f"{name}: accepting")
            if name == "accept":
                self.figures.add("accepted msg/s", result.rate)
                self.figures.add_latency(result, "accept latency ms")
                return
            self.stack.start_worker(self.worker_concurrency)
            started = time.perf_counter()
            finished = await self._wait(progress, f"{name}: one worker draining")
            self.figures.add(f"{name} msg/s (one worker)", self.messages / (finished - started))
        else:
            self.stack.start_worker(self.worker_concurrency)
            await asyncio.sleep(1.0)  # the worker's start-up is not part of the figure
            started = time.perf_counter()
            result = await self._accept(progress, f"{name}: accepting while delivering")
            finished = await self._wait(progress, f"{name}: delivering")
            self.figures.add(f"{name} end-to-end msg/s", self.messages / (finished - started))
            self.figures.add(f"{name} accepted msg/s", result.rate)
            self.figures.add_latency(result, f"{name} accept latency ms")
        self.stack.stop_workers()


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
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())  # fmt: skip
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
