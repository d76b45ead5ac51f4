"""A live worker that cannot write to PostgreSQL for longer than its lease.

Its lease runs out, but its heartbeat in Redis goes on: it is alive, holds
the provider's answers and will write them when PostgreSQL is back. So its
sends are not taken over (no second provider call) until the hard bound,
`HARD_BOUND_LEASES` leases after the lease ran out; past that bound a holder
that lives on but cannot finish loses them, and they go out again (a window
the README lists).
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.settings import Settings
from postline.worker.leases import HARD_BOUND_LEASES
from tests.support.faults import Partition, wait_final
from tests.support.harness import running_api, running_worker, settings_for, wait_for
from tests.support.order import KeyedLoad, accepted

pytestmark = pytest.mark.timeout(90)


LEASE = 3.0  # shorter than Settings allow, to save time; renewal is not what is tested


@contextlib.asynccontextmanager
async def cut_off_worker(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, load: KeyedLoad
) -> AsyncIterator[tuple[Partition, Settings]]:
    """Worker A reaches PostgreSQL through a link, holds every message of `load` with
    its provider calls in flight, then the link is cut. Yields the link and the
    settings of a worker that reaches PostgreSQL directly."""
    parts = urlsplit(database_url)
    link = Partition(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await link.start()
    through_link = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    direct = settings_for(database_url, redis_url, sim.base_url, reconcile_interval_seconds=1)
    # The provider deadline leaves the simulator's latency ample room: a
    # first attempt that timed out on a loaded machine is not what is tested.
    direct = direct.model_copy(
        update={"visibility_timeout_seconds": LEASE, "provider_timeout_seconds": 5}
    )
    cut_off = direct.model_copy(update={"database_url": through_link})
    sim.config.latency_ms = 1500
    try:
        async with (
            running_api(direct) as base,
            httpx.AsyncClient(base_url=base) as api,
            running_worker(cut_off) as a,
        ):
            await load.send(api, 1)

            async def all_held_by_a() -> bool:
                held = await pool.fetchval(
                    "SELECT count(*) FROM messages WHERE status = 'sending' AND held_by = $1",
                    a.name,
                )
                return bool(held == len(load.ids))

            await wait_for(all_held_by_a, timeout=20, what="A to hold every message")
            link.sever()  # A's provider calls are still going on
            try:
                yield link, direct
            finally:
                link.heal()  # whatever the test did, A can write its outcomes and stop
    finally:
        await link.close()


def sent_twice(sim: Any) -> int:
    per_message = collections.Counter(r["body"] for r in sim.state.requests() if accepted(r))
    return sum(n - 1 for n in per_message.values())


async def leases_expired_for(pool: asyncpg.Pool, seconds: float) -> bool:
    """Every `sending` lease ran out at least `seconds` ago (and some are sending)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, bool_and(lease_until < now() - $1::float8 * interval '1 second') "
        "AS expired FROM messages WHERE status = 'sending'",
        seconds,
    )
    return bool(row["n"] and row["expired"])


async def test_a_worker_cut_off_from_postgresql_keeps_its_answered_sends(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """B runs while A's leases are expired for 3 reconciler passes and several
    takeover rounds; A is alive, so B takes nothing. The link heals before the
    hard bound: A writes its outcomes, and no message is sent twice."""
    load = KeyedLoad(8)
    total_attempts = "SELECT sum(attempts) FROM messages WHERE id = ANY($1::uuid[])"
    async with cut_off_worker(database_url, redis_url, sim, pool, load) as (link, direct):
        ids = [uuid.UUID(i) for i in load.ids]
        held_by_a = await pool.fetchval(total_attempts, ids)
        async with running_worker(direct):
            await wait_for(
                lambda: leases_expired_for(pool, 3.0), timeout=20, what="A's leases to expire"
            )
            link.heal()
            await wait_final(pool, load.ids, within=30)
    claimed_again = await pool.fetchval(total_attempts, ids) - held_by_a
    twice = sent_twice(sim)
    print(f"\nA cut off from PostgreSQL mid-send: {len(load.ids)} messages, {twice} sent twice")
    assert twice == 0 and claimed_again == 0


async def test_past_the_hard_bound_a_cut_off_holder_loses_its_sends(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """A stays cut off: B takes A's sends over once their leases ran out
    HARD_BOUND_LEASES leases ago, and the history says they were attempted again."""
    load = KeyedLoad(8)
    async with cut_off_worker(database_url, redis_url, sim, pool, load) as (link, direct):  # noqa: SIM117
        async with running_worker(direct):
            took = await wait_final(pool, load.ids, within=LEASE * (HARD_BOUND_LEASES + 1) + 20)
            link.heal()  # so that A can finish and stop: its late outcomes are fenced off
    again = await pool.fetchval(
        "SELECT count(DISTINCT message_id) FROM message_events WHERE detail LIKE 'attempted again%'"
    )
    print(f"\nA cut off for good: {len(load.ids)} messages taken over in {took:.1f}s")
    assert again == len(load.ids)
    assert took >= LEASE * HARD_BOUND_LEASES  # not before the hard bound
