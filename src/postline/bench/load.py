"""The load generator: C concurrent clients sending N messages over keep-alive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
import orjson


@dataclass(frozen=True)
class AcceptResult:
    sent: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def payload(i: int) -> bytes:
    # Distinct recipients: per-key ordering would otherwise serialise the run.
    return orjson.dumps(
        {"from": "+15550000000", "to": f"+1555{i:07d}", "type": "sms", "body": f"Booking {i} paid"}
    )


async def accept(
    api_url: str,
    *,
    messages: int,
    concurrency: int,
    batch: int = 0,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> AcceptResult:
    """Sends `messages` (one per request, or `batch` per request) at `concurrency`.

    Without `rate`, each client sends its next request as soon as the last is
    answered (the most the API can take). With `rate`, request n is due at
    start + n / rate (an offered load), and its latency counts from when it
    was due, not from when a client got round to it, so a stall shows in the
    percentiles instead of hiding in fewer requests (coordinated omission).
    """
    per_request = max(batch, 1)
    requests = (messages + per_request - 1) // per_request
    counter = iter(range(requests))
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    url = f"{api_url}/api/v1/messages/" + ("batch" if batch else "send")

    def body(n: int) -> bytes:
        if not batch:
            return payload(n)
        items = [orjson.loads(payload(n * batch + k)) for k in range(batch)]
        return orjson.dumps({"messages": items})

    begin = time.perf_counter()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for n in counter:
            data = body(n)
            started = time.perf_counter()
            if rate:
                due = begin + n / rate
                if due > started:
                    await asyncio.sleep(due - started)
                started = due
            async with session.post(url, data=data, headers=headers) as answer:
                await answer.read()
                ok = answer.status in (200, 201, 202)
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors += 1
            if progress:
                progress(per_request)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        begin = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - begin
    return AcceptResult(requests * per_request - errors * per_request, errors, seconds, latencies)


async def count_sent(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'"))
    finally:
        await connection.close()


async def wait_sent(
    database_url: str,
    target: int,
    *,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Waits until `target` messages are sent; returns the monotonic time it happened."""
    connection = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            done = int(
                await connection.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'")
            )
            if progress:
                progress(done)
            if done >= target:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {target} sent after {timeout:.0f}s")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
