"""A live worker's send is never taken over; a send never outlives its deadline.

A claim is a lease its holder renews while the send is pending; only an
expired lease may be taken over. The provider call has one enforced
deadline, so a provider that never answers cannot hold a message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from postline.queue.streams import RedisQueue
from postline.store.messages import MessageStore
from tests.support.faults import in_process, wait_final
from tests.support.harness import settings_for, wait_for
from tests.support.order import KeyedLoad, accepted

pytestmark = pytest.mark.timeout(90)


async def test_a_slow_send_outliving_its_first_lease_is_renewed_not_taken_over(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """Each provider call takes 4 s, the lease is 3 s long: only its renewal keeps the
    send its holder's. Meanwhile a rival takes every entry idle for 0.5 s (XAUTOCLAIM,
    five times a second) and tries to claim its message: each try must be refused.

    (Settings refuse a lease shorter than the provider deadline plus headroom;
    the test builds that shorter lease on purpose, so that renewal is what is
    tested. Without renewal the rival takes every message over.)
    """
    valid = settings_for(database_url, redis_url, sim.base_url, reconcile_interval_seconds=1)
    settings = valid.model_copy(
        update={"visibility_timeout_seconds": 3.0, "provider_timeout_seconds": 8.0}
    )
    sim.config.latency_ms = 4000
    load = KeyedLoad(16)
    store, stop = MessageStore(pool), asyncio.Event()
    tries: list[tuple[float, int]] = []  # when, how many

    async def rival() -> int:
        taken = 0
        while not stop.is_set():
            entries = await RedisQueue(redis).take_idle("rival", idle_seconds=0.5, limit=100)
            ids = [uuid.UUID(e.message_id) for e in entries if e.message_id]
            if ids:
                tries.append((time.monotonic(), len(ids)))
                taken += len(await store.claim(ids, holder="rival", lease=7))
            await asyncio.sleep(0.2)
        return taken

    async with in_process(settings, workers=2) as service:
        rivalry = asyncio.create_task(rival())
        await load.send(service.api, 1)
        claimed_at = time.monotonic()  # the claims follow the 202s within milliseconds
        took = await wait_final(pool, load.ids, within=30)
        stop.set()
        taken = await rivalry
    per_message = collections.Counter(r["body"] for r in sim.state.requests() if accepted(r))
    claims = await pool.fetch(
        "SELECT count(*) AS n FROM message_events WHERE status = 'sending' GROUP BY message_id"
    )
    print(f"\nslow sends, 2 workers and a rival: {len(load.ids)} sent in {took:.1f}s, "
          f"{sum(n for _, n in tries)} takeover tries, {taken} taken over, "
          f"{sum(per_message.values()) - len(per_message)} sent twice")  # fmt: skip
    # The rival kept trying past the first lease's end (3 s after the claims).
    assert any(at > claimed_at + 3.3 for at, _ in tries)
    assert taken == 0
    assert sorted(per_message.values()) == [1] * len(load.ids)
    assert [c["n"] for c in claims] == [1] * len(load.ids)  # one claim each: one worker each


@contextlib.asynccontextmanager
async def stalling_provider(trickle: bool) -> AsyncIterator[str]:
    """An HTTP server that reads a request and never finishes its answer: it stays
    silent, or it first trickles a byte of headers every 0.3 s for 6 s, so that no
    single read waits long (only a deadline on the whole call cuts that early)."""
    done = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read(65536)
            if trickle:
                writer.write(b"HTTP/1.1 201 Created\r\n")
                for _ in range(20):
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(0.3)
            await done.wait()
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        done.set()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickling"])
async def test_a_provider_that_never_answers_is_given_up_at_the_deadline(
    trickle: bool, database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with stalling_provider(trickle) as url:
        settings = settings_for(database_url, redis_url, url, provider_timeout_seconds=2)
        load = KeyedLoad(1)
        async with in_process(settings, workers=1) as service:
            await load.send(service.api, 1)
            (message_id,) = load.ids

            async def cut() -> list[asyncpg.Record]:
                return list(
                    await pool.fetch(
                        "SELECT status, error_code, at FROM message_events "
                        "WHERE message_id = $1::uuid AND status IN ('sending', 'retrying') "
                        "ORDER BY id",
                        message_id,
                    )
                )

            rows = await wait_for(
                lambda: _when(cut, lambda r: len(r) >= 2), timeout=10, what="the attempt's end"
            )
    sending, ended = rows[0], rows[1]
    held = (ended["at"] - sending["at"]).total_seconds()
    print(f"\nprovider {'trickling' if trickle else 'silent'}: attempt ended {ended['status']} "
          f"({ended['error_code']}) after {held:.2f}s "
          f"(deadline {settings.provider_timeout_seconds:g}s)")  # fmt: skip
    assert (sending["status"], ended["status"], ended["error_code"]) == (
        "sending", "retrying", "timeout",
    )  # fmt: skip
    assert held <= settings.provider_timeout_seconds + 1


async def _when(fetch: Any, ready: Any) -> Any:
    rows = await fetch()
    return rows if ready(rows) else None
