"""The campaign's client: open-loop sends over many ordering keys, and the client log.

Invariant: arrivals follow a seeded Poisson process at `rate` per second,
each assigned to a random key, whatever the answers; but the sends of one
key are issued one after the other, each only once the previous one of that
key was answered (or gave up), so acceptance order per key is well defined.
Keys proceed concurrently; the first `paced_keys` of them send from
`PACED_SENDER`, the others from `SENDER`. An arrival still waiting when the
load's time is up is skipped, never sent. Every send is one line of the
client log, and only a 2xx answer counts as an acknowledgement.

Bounded: at most `rate * duration` arrivals, each send at most `timeout`
seconds, nothing issued after `duration`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from postline.chaos.records import ClientRecord, message_body, write_line

SEND_PATH = "/api/v1/messages/send"
SENDER = "+15550000000"
#: The sender of the first `LoadSpec.paced_keys` keys (a pacing campaign paces it).
PACED_SENDER = "+15550000001"


@dataclass(frozen=True)
class LoadSpec:
    api_url: str
    rate: float
    keys: int
    duration: float
    seed: int
    token: str
    timeout: float = 5.0
    paced_keys: int = 0


@dataclass
class LoadResult:
    requests: int = 0
    acknowledged: int = 0
    skipped: int = 0


def key_name(index: int) -> str:
    return f"k{index:03d}"


def payload(spec: LoadSpec, index: int, n: int) -> dict[str, Any]:
    key = key_name(index)
    return {
        "from": PACED_SENDER if index < spec.paced_keys else SENDER,
        "to": f"+1555{index + 1000000:07d}",
        "type": "sms",
        "body": message_body(spec.token, key, n),
        "ordering_key": key,
    }


def arrivals(spec: LoadSpec) -> Iterator[tuple[float, int, int]]:
    """(offset in seconds, key index, n within the key): the seeded arrival schedule."""
    rng = random.Random(f"load-{spec.seed}")
    sequence = [0] * spec.keys
    offset = 0.0
    while True:
        offset += rng.expovariate(spec.rate)
        if offset >= spec.duration:
            return
        index = rng.randrange(spec.keys)
        sequence[index] += 1
        yield offset, index, sequence[index]


class Load:
    """One run of the load; `run()` blocks until it is over (call it from a thread)."""

    def __init__(self, spec: LoadSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.result = LoadResult()

    def run(self, t0: float) -> LoadResult:
        """Arrivals are offsets from monotonic `t0`, the campaign's common start."""
        asyncio.run(self._run(t0))
        return self.result

    async def _run(self, t0: float) -> None:
        spec = self.spec
        queues: list[asyncio.Queue[int | None]] = [asyncio.Queue() for _ in range(spec.keys)]
        timeout = aiohttp.ClientTimeout(total=spec.timeout)
        connector = aiohttp.TCPConnector(limit=spec.keys + 8)
        with self.log_path.open("ab") as log:
            async with aiohttp.ClientSession(
                base_url=spec.api_url, timeout=timeout, connector=connector
            ) as http:
                senders = [
                    asyncio.create_task(self._sender(http, log, i, queue, t0))
                    for i, queue in enumerate(queues)
                ]
                await self._arrivals(queues, t0)
                await asyncio.gather(*senders)

    async def _arrivals(self, queues: list[asyncio.Queue[int | None]], t0: float) -> None:
        for offset, index, n in arrivals(self.spec):
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            queues[index].put_nowait(n)
        for queue in queues:
            queue.put_nowait(None)

    async def _sender(
        self,
        http: aiohttp.ClientSession,
        log: Any,
        index: int,
        queue: asyncio.Queue[int | None],
        t0: float,
    ) -> None:
        while (n := await queue.get()) is not None:
            if time.monotonic() - t0 >= self.spec.duration:
                self.result.skipped += 1
                continue
            record = await self._send(http, index, n)
            write_line(log, record)
            self.result.requests += 1
            self.result.acknowledged += record.acknowledged

    async def _send(self, http: aiohttp.ClientSession, index: int, n: int) -> ClientRecord:
        status: int | None = None
        message_id: str | None = None
        error: str | None = None
        sent = time.time()
        try:
            async with http.post(SEND_PATH, json=payload(self.spec, index, n)) as answer:
                body = await answer.read()
                status = answer.status
            if 200 <= status < 300:
                message_id = orjson.loads(body).get("id")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            error = type(exc).__name__
        return ClientRecord(key_name(index), n, sent, time.time(), status, message_id, error)
