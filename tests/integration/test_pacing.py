"""Pacing across three workers: a long code goes at exactly 1 message/s
while another sender runs at full speed, and per-key order holds.

Rates are read from the simulator's own log of provider calls (when each
request arrived), not from Postline's tables.
"""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg
import pytest

from postline.settings import Settings
from tests.support.faults import in_process, script, wait_final
from tests.support.harness import settings_for, wait_for
from tests.support.order import CallRecorder, KeyedLoad, judge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

LONG_CODE = "+15551230001"  # 1/s, the long-code default
FAST = "+15557770001"  # configured as a short code: 100/s


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool) -> Settings:
    return settings_for(
        database_url, redis_url, sim.base_url,
        pacing_enabled=True, pacing_senders={FAST: "short_code"},
    )  # fmt: skip


async def paced_senders(api: Any) -> dict[str, dict[str, Any]]:
    answer = await api.get("/api/v1/stats")
    answer.raise_for_status()
    return {row["sender"]: row for row in answer.json()["pacing"]["senders"]}


#: The short code's pace and the long code's (README, "Pacing"). At its own
#: pace the short code's 300 calls take 3 s; begun with the long code's first
#: call they are over before its fifth (the long code calls at 0, 1, 2, 3 s).
#: One slot more is allowed for the batches still being accepted then.
SHORT_CODE_RATE, LONG_CODE_RATE = 100, 1
MOST_PACED_CALLS = int(300 / SHORT_CODE_RATE * LONG_CODE_RATE) + 2


def not_held_behind(fast: list[float], paced: list[float]) -> None:
    """The fast sender kept its own pace beside the paced one: measured on the
    long code's schedule (its provider calls, one a slot), the fast sender's
    calls were over within the slots their own pace needs.

    Held behind the long code (waiting for its slots, or for the slowest entry
    of a batch) or slowed to any pace but its own, they would spread over
    more of that schedule.
    """
    meanwhile = sum(1 for t in paced if t <= fast[-1])
    assert meanwhile <= MOST_PACED_CALLS, (
        f"the long code made {meanwhile} calls, one a slot, by the fast sender's last "
        f"of {len(fast)}; at its own pace, at most {MOST_PACED_CALLS}"
    )


async def test_a_long_code_goes_at_one_per_second_while_another_sender_runs_at_full_speed(
    settings: Settings, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    calls = CallRecorder(sim.state)
    slow = KeyedLoad(6, prefix="L", first_number=100, sender=LONG_CODE)
    fast = KeyedLoad(30, prefix="F", first_number=200, sender=FAST)
    async with in_process(settings, workers=3) as service:
        await slow.send_batches(service.api, 10)
        await slow.send(service.api, 1, keys=["L0"])  # 61: sixty intervals
        await fast.send_batches(service.api, 10)  # 300, behind the long code's in the streams
        took = await wait_final(pool, fast.ids, within=20)
        # The stats show the long code's backlog: each key's head waits its slot.
        waiting = await paced_senders(service.api)
        assert waiting[LONG_CODE]["class"] == "long_code"
        assert 3 <= waiting[LONG_CODE]["waiting"] <= 6
        assert 2 < waiting[LONG_CODE]["wait_seconds"] <= 7

        def long_code_calls() -> list[float]:
            return sorted(c.received for c in calls.calls if c.key.startswith("L"))

        async def all_long_code_calls() -> bool:
            return len(long_code_calls()) >= 61

        await wait_for(all_long_code_calls, timeout=80, what="61 long-code calls", every=0.2)
        await wait_final(pool, slow.ids, within=10)
    times = long_code_calls()
    rate = 60 / (times[60] - times[0])
    assert 0.95 <= rate <= 1.05, f"the long code went at {rate:.3f}/s"
    # Exactly paced, not bursty: no 10-second window holds more than 11 calls.
    assert max(sum(1 for t in times if s <= t < s + 10) for s in times) <= 11
    fast_calls = sorted(c.received for c in calls.calls if c.key.startswith("F"))
    assert len(fast_calls) == 300
    not_held_behind(fast_calls, times)
    report = judge(calls.calls, {**slow.accepted, **fast.accepted})
    assert (report.overtakes, report.duplicates, report.missing) == (0, 0, []), report.line()
    print(
        f"long code: {rate:.4f}/s over {times[60] - times[0]:.2f}s; fast sender: 300 in {took:.2f}s"
    )


async def test_a_429_holds_the_account_for_its_retry_after_and_costs_no_attempt(
    settings: Settings, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    """Four 429s in a row with MAX_ATTEMPTS 3: the message is sent all the
    same, and while the account is held its other senders' messages wait too."""
    calls = CallRecorder(sim.state)
    throttled = KeyedLoad(1, prefix="T", first_number=300, sender=FAST)
    other = KeyedLoad(1, prefix="O", first_number=400, sender="+15557770002")
    await script(sim.base_url, {throttled.to["T0"]: [{"status": 429, "retry_after": 1}] * 4})
    async with in_process(settings, workers=2) as service:
        await throttled.send(service.api, 1)
        first_429 = await wait_for(
            lambda: _first_call(calls, "T"), timeout=5, what="the first 429", every=0.01
        )
        await other.send(service.api, 1)
        await wait_final(pool, [*throttled.ids, *other.ids], within=15)
    row = await pool.fetchrow("SELECT attempts, attempts_base FROM messages WHERE id = $1::uuid",
                              throttled.ids[0])  # fmt: skip
    assert (row["attempts"], row["attempts_base"]) == (5, 4)  # four given back
    sent = [c.received for c in calls.calls if c.key == "T0"]
    assert len(sent) == 5 and all(b - a >= 0.95 for a, b in itertools.pairwise(sent))
    [other_call] = [c.received for c in calls.calls if c.key == "O0"]
    assert other_call >= first_429 + 0.95  # the same Twilio account was held


async def _first_call(calls: CallRecorder, prefix: str) -> float | None:
    found = [c.received for c in calls.calls if c.key.startswith(prefix)]
    return min(found) if found else None
