"""Sync mode is paced by the workers' buckets, not per process.

The API in sync mode takes its inline attempt's slot from the same Redis
buckets the workers use: a message whose sender or account has no slot free
is not attempted inline but waits in the delay set for exactly its slot,
and the workers send it then. Real API, real workers where a test says so,
the simulator; when calls arrived is the simulator's own log, slots, holds
and concurrency slots are read from the keys the pacer writes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from postline.domain.channels import Channel
from postline.domain.pacing import Pace, SenderClass
from postline.domain.statuses import Status
from postline.metrics import WorkerMetrics
from postline.providers.registry import http_session, twilio_account
from postline.queue.keys import PACE_WAITING, RETRY_QUEUE, pace_account, pace_inflight, stream_of
from postline.queue.pacing import EARLY_MS, Ask, RedisPacer
from postline.queue.streams import RedisQueue
from postline.services.accepting import InlineSender
from postline.services.attempts import retry_policy
from postline.services.completion import Completer
from postline.services.pacing import build_pacing
from postline.services.routing import build_router
from postline.settings import Settings
from postline.simulator import RunningSimulator
from postline.store.messages import MessageStore
from tests.support.faults import in_process, script, wait_final
from tests.support.harness import SIM_SID, running_api, running_worker, settings_for, wait_for
from tests.support.messages import new_message
from tests.support.order import CallRecorder, KeyedLoad

pytestmark = pytest.mark.timeout(60)

PACED = "+15551230001"  # 2/s: one slot every INTERVAL seconds
INTERVAL = 0.5
FAST, OTHER = "+15557770001", "+15557770002"  # short codes: their own rate never binds here
ACCOUNT = twilio_account(SIM_SID)
#: How far the simulator's clock and Redis's may disagree (one machine, one clock).
SLACK = 0.005


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: Any, pool: Any, redis: Any) -> Settings:
    """Sync mode and pacing; `pool` and `redis` start each test empty."""
    return settings_for(
        database_url, redis_url, sim.base_url,
        sync_message_processing=True, pacing_enabled=True,
        pacing_senders={PACED: 2, FAST: "short_code", OTHER: "short_code"},
    )  # fmt: skip


async def send_each(api: httpx.AsyncClient, load: KeyedLoad) -> list[dict[str, Any]]:
    """One message to each key of `load`, one request right after the other;
    their answers, each a 201 (sync mode)."""
    answers = []
    for key in load.keys:
        answer = await api.post("/api/v1/messages/send", json=load.payload(key))
        assert answer.status_code == 201, answer.text
        answers.append(answer.json())
    return answers


async def reserved_slots(redis: aioredis.Redis) -> dict[str, float]:
    """The slot each waiting message reserved (unix seconds, Redis's clock), by id."""
    members = await redis.zrange(PACE_WAITING, 0, -1, withscores=True)
    return {member.rpartition("|")[2]: score / 1000 for member, score in members}


async def delayed(redis: aioredis.Redis) -> dict[str, float]:
    """When each message in the delay set falls due (unix seconds), by id."""
    members = await redis.zrange(RETRY_QUEUE, 0, -1, withscores=True)
    return {member.split("|")[1]: score for member, score in members}


async def redis_now(redis: aioredis.Redis) -> float:
    seconds, micros = await redis.time()
    return seconds + micros / 1_000_000


async def test_sync_sends_beyond_a_senders_pace_wait_for_their_slots_in_the_delay_set(
    settings: Settings, sim: RunningSimulator, redis: aioredis.Redis
) -> None:
    """No worker runs: the API sends the first inline, and the others only
    wait, each in the delay set until exactly its slot; the API never sends
    them itself, not even once their slots have come."""
    calls = CallRecorder(sim.state)
    load = KeyedLoad(4, prefix="S", first_number=100, sender=PACED)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answers = await send_each(api, load)
        assert [a["status"] for a in answers] == ["sent", "pending", "pending", "pending"]
        assert [c.key for c in calls.calls] == ["S0"]
        waiting = [a["id"] for a in answers[1:]]
        slots, due = await reserved_slots(redis), await delayed(redis)
        assert set(slots) == set(due) == set(waiting)
        for message_id in waiting:  # the delay set holds each for exactly its wait
            assert abs(due[message_id] - slots[message_id]) <= 0.02
        times = [slots[i] for i in waiting]
        assert all(abs(b - a - INTERVAL) <= 0.002 for a, b in itertools.pairwise(times))
        # The inline send took the slot before the first: it went at once.
        assert INTERVAL - 0.25 <= times[0] - calls.calls[0].received <= INTERVAL + SLACK

        async def slots_passed() -> bool:
            return await redis_now(redis) > times[-1] + 0.2

        await wait_for(slots_passed, timeout=5, what="every reserved slot to pass")
        for message_id in waiting:
            stored = (await api.get(f"/api/v1/messages/{message_id}")).json()
            assert stored["status"] == "pending"
    assert [c.key for c in calls.calls] == ["S0"]


async def test_with_a_worker_the_waiting_sync_sends_go_out_at_the_senders_pace(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    calls = CallRecorder(sim.state)
    load = KeyedLoad(6, prefix="W", first_number=200, sender=PACED)
    async with in_process(settings, workers=1) as service:
        answers = await send_each(service.api, load)
        slots = await reserved_slots(redis)
        await wait_final(pool, [a["id"] for a in answers], within=15)
    assert [a["status"] for a in answers] == ["sent"] + ["pending"] * 5
    arrived = {c.key: c.received for c in calls.calls}
    assert len(calls.calls) == len(arrived) == 6  # one call each
    times = [arrived[key] for key in load.keys]
    paced = [slots[a["id"]] for a in answers[1:]]
    # One slot per interval, the first an interval after the inline send's own.
    assert all(abs(b - a - INTERVAL) <= 0.002 for a, b in itertools.pairwise(paced))
    assert paced[0] - INTERVAL - SLACK <= times[0] <= paced[0] - INTERVAL + 0.25
    for at, slot in zip(times[1:], paced, strict=True):
        # Never before its slot; soon after it (the delay set is read every 0.2 s).
        assert slot - EARLY_MS / 1000 - SLACK <= at <= slot + 1, f"{at - slot:+.3f}s"
    assert 5 * INTERVAL - 0.3 <= times[-1] - times[0] <= 5 * INTERVAL + 1


async def test_a_429_in_sync_mode_holds_the_account_and_costs_no_attempt(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    calls = CallRecorder(sim.state)
    throttled = KeyedLoad(1, prefix="T", first_number=300, sender=FAST)
    other = KeyedLoad(1, prefix="O", first_number=400, sender=OTHER)
    await script(sim.base_url, {throttled.to["T0"]: [{"status": 429, "retry_after": 2}]})
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        [first] = await send_each(api, throttled)
        assert first["status"] == "retrying"
        seconds, micros = await redis.time()
        held = float(await redis.get(pace_account(ACCOUNT)) or 0) - (seconds * 1000 + micros / 1000)
        assert 1000 < held <= 2000
        # Another sender of the same account: held too, so no inline attempt.
        [held_back] = await send_each(api, other)
        assert held_back["status"] == "pending"
        assert [c.key for c in calls.calls] == ["T0"]
        async with running_worker(settings):
            await wait_final(pool, [first["id"], held_back["id"]], within=15)
    row = await pool.fetchrow(
        "SELECT attempts, attempts_base FROM messages WHERE id = $1::uuid", first["id"]
    )
    assert (row["attempts"], row["attempts_base"]) == (2, 1)  # the throttled one given back
    refused, sent = (c for c in calls.calls if c.key == "T0")
    assert (refused.ok, sent.ok) == (False, True)
    [other_call] = (c for c in calls.calls if c.key == "O0")
    for later in (sent, other_call):  # nothing of the account went before the hold ended
        assert later.received >= refused.answered + 2 - 0.05


async def test_an_inline_sends_concurrency_slot_is_given_back_when_its_call_is_over(
    settings: Settings, sim: RunningSimulator, redis: aioredis.Redis
) -> None:
    sim.config.latency_ms = 300  # long enough to see the slot taken during the call
    load = KeyedLoad(1, prefix="C", first_number=500, sender=FAST)
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        sending = asyncio.create_task(send_each(api, load))

        async def slot_taken() -> list[str]:
            return list(await redis.zrange(pace_inflight(ACCOUNT), 0, -1))

        [slot] = await wait_for(slot_taken, timeout=5, what="the inline send's slot", every=0.01)
        [answer] = await sending
        assert answer["status"] == "sent"
        assert slot.startswith("api-") and slot.endswith(f"|{answer['id']}")

        async def given_back() -> bool:
            return await redis.zcard(pace_inflight(ACCOUNT)) == 0

        # Well within the slot's lease (provider timeout + headroom, 7 s), which
        # would free a slot nobody gave back.
        await wait_for(given_back, timeout=1, what="the slot to be given back")


class ClaimedElsewhere(MessageStore):
    """Another process claims every message between its pacing and its claim."""

    async def claim(self, ids: Sequence[Any], **_: Any) -> list[Any]:
        return []


async def test_a_slot_taken_for_a_message_the_claim_refuses_is_given_back(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    store = ClaimedElsewhere(pool)
    queue = RedisQueue(redis)
    await queue.ensure_groups()
    async with http_session(settings, connections=1) as session:
        router = build_router(settings, session=session, redis=redis)
        pacing = build_pacing(settings, redis, store, router)
        inline = InlineSender(
            store=store, routes=router, policy=retry_policy(settings),
            completer=Completer(store=store, queue=queue, metrics=WorkerMetrics()),
            queue=queue, visibility_timeout=7, provider_timeout=2, pacing=pacing,
        )  # fmt: skip
        inline.start()
        try:
            message = new_message(from_addr=PACED)
            await store.insert([message])
            answered = await inline.send(message)
        finally:
            await inline.close()
            await router.close()
    assert answered.status is Status.PENDING
    assert await redis.xlen(stream_of(Channel.SMS)) == 1  # queued for the workers
    assert await redis.zcard(pace_inflight(ACCOUNT)) == 0
    # The sender's slot was refunded: the next message of the sender goes at once.
    pace = Pace(PACED, SenderClass.LONG_CODE, INTERVAL * 1000, ACCOUNT, 0.0, 0)
    assert await RedisPacer(redis, lease_seconds=7).take([Ask("next", pace)], holder="t") == [0]
