"""A claim that committed, but whose answer never reached the worker.

The interleaving, forced here: the worker's claim transaction commits in
PostgreSQL (the message is now `sending`, leased to this worker), then the
connection breaks before the answer arrives (PostgreSQL fast shutdown does
this). The worker is alive and heartbeating, so no other worker may take the
lease before the hard bound, and the worker itself does not know it holds
the message: without a remedy the key waits `HARD_BOUND_LEASES` leases after
the lease runs out. The worker remembers the ids of a claim that failed and
gives their leases up at its next heartbeat, so the message goes once its
lease runs out, like a dead worker's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.domain.message import Claimed
from postline.store.messages import MessageStore
from postline.worker.leases import HARD_BOUND_LEASES
from tests.support.faults import wait_final
from tests.support.harness import running_api, running_worker, settings_for

pytestmark = pytest.mark.timeout(90)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "lost answer"}


async def test_a_claim_whose_answer_was_lost_is_sent_before_the_hard_bound(
    database_url: str,
    redis_url: str,
    sim: Any,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, reconcile_interval_seconds=1)
    lease = settings.visibility_timeout_seconds
    original = MessageStore.claim
    lost: list[uuid.UUID] = []

    async def claim_then_lose_the_answer(
        self: MessageStore, ids: Sequence[uuid.UUID], **kwargs: Any
    ) -> list[Claimed]:
        claimed = await original(self, ids, **kwargs)  # committed
        if claimed and not lost:
            lost.extend(c.message.id for c in claimed)
            raise ConnectionResetError("the connection broke before the claim's answer came")
        return claimed

    monkeypatch.setattr(MessageStore, "claim", claim_then_lose_the_answer)
    async with (
        running_api(settings) as base,
        httpx.AsyncClient(base_url=base) as api,
        running_worker(settings),
    ):
        message_id = (await api.post("/api/v1/messages/send", json=SMS)).json()["id"]
        took = await wait_final(pool, [message_id], within=lease * (HARD_BOUND_LEASES + 3))
    attempts = await pool.fetchval(
        "SELECT attempts FROM messages WHERE id = $1", uuid.UUID(message_id)
    )
    print(f"\nclaim answer lost: sent after {took:.1f}s (lease {lease:g}s), attempt {attempts}")
    assert lost == [uuid.UUID(message_id)]
    assert attempts == 2  # the lost claim was attempt 1; nothing reached the provider then
    # A lease, the reconciler's grace and a pass or two; not the hard bound.
    assert took < lease * 3 < lease * (1 + HARD_BOUND_LEASES)
