"""Under pacing a worker claims no message without its slot.

The interleaving (one worker, pacing on, one long-code sender S at 1/s):
1. A, then B, of key k, and C of key k2, all from S, are accepted; A is
   held by another worker (sending), so B waits behind it.
2. The worker reads B and C; pacing asks which of them a claim would take:
   C only (B is behind A), and takes C's slot.
3. Here A completes: B is now its key's first open message.
4. The claim: C with its slot; B must not go with it, slotless. It waits
   for its turn (the reconciler queues it again), a slot after C's.

Step 3 is forced by wrapping the store's `senders` read, which pacing
makes in step 2, with A's completion. What is judged is what reached the
provider: S's calls one slot apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest

from postline.settings import Settings
from postline.store.leases import LeaseStore
from tests.support.faults import wait_final
from tests.support.harness import running_api, running_worker, settings_for
from tests.support.order import CallRecorder

pytestmark = pytest.mark.timeout(60)

SENDER = "+15551230001"  # a long code: 1 message a second
SLOT_SECONDS = 1.0
EARLY = 0.05  # a slot may open this much early (the pacer's allowance, and clocks)


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> Settings:
    return settings_for(
        database_url, redis_url, sim.base_url,
        pacing_enabled=True, reconcile_interval_seconds=0.5,
    )  # fmt: skip


async def send(api: httpx.AsyncClient, key: str, body: str) -> uuid.UUID:
    answer = await api.post(
        "/api/v1/messages/send",
        json={"type": "sms", "from": SENDER, "to": "+15559870001", "body": body,
              "ordering_key": key},
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    return uuid.UUID(answer.json()["id"])


async def test_a_message_that_became_its_keys_first_after_pacing_waits_for_its_slot(
    settings: Settings, sim: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = CallRecorder(sim.state)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        a = await send(api, "k", "k:A")
        b = await send(api, "k", "k:B")
        c = await send(api, "k2", "k2:C")
        # Step 1: A is another worker's, live and leased.
        await pool.execute(
            "UPDATE messages SET status = 'sending', attempts = 1, held_by = 'elsewhere', "
            "lease_until = now() + interval '1 minute' WHERE id = $1",
            a,
        )
        read_senders = LeaseStore.senders
        completed: list[uuid.UUID] = []

        async def senders_then_a_completes(self: LeaseStore, ids: Sequence[uuid.UUID]) -> Any:
            found = await read_senders(self, ids)  # step 2
            if b in ids and not completed:
                assert b not in {s.id for s in found}, "B was its key's first already"
                await pool.execute(  # step 3
                    "UPDATE messages SET status = 'sent', held_by = NULL, lease_until = NULL "
                    "WHERE id = $1",
                    a,
                )
                completed.append(a)
            return found

        monkeypatch.setattr(LeaseStore, "senders", senders_then_a_completes)
        async with running_worker(settings):
            await wait_final(pool, [str(b), str(c)], within=20)  # step 4, and B's turn
    assert completed == [a], "the interleaving was not forced"
    times = {call.tag: call.received for call in calls.calls if call.ok}
    assert set(times) == {"k:B", "k2:C"}, times
    gap = abs(times["k:B"] - times["k2:C"])
    assert gap >= SLOT_SECONDS - EARLY, (
        f"B and C, both from {SENDER}, reached the provider {gap:.3f}s apart: "
        f"B went without a slot of its own"
    )
