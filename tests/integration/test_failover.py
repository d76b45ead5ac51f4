"""Provider failover: the primary Twilio account fails mid-load, the backup one takes over.

Real API, two real workers, the simulator with two Twilio accounts. What the
provider saw is read from the simulator's own log (which account, which
body, in which order), never from Postline's tables: per-key order, nothing
missing, no duplicate, and which route carried what.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

from postline.domain.routes import TWILIO, TWILIO_BACKUP
from postline.providers.signatures import TWILIO_SIGNATURE_HEADER, twilio_signature
from postline.settings import Settings
from postline.simulator import RunningSimulator
from tests.integration.test_simulator import SimulatorTwilioHttpClient
from tests.support.faults import in_process, wait_final
from tests.support.harness import (
    BACKUP_SID,
    BACKUP_TOKEN,
    SIM_SID,
    SIM_TOKEN,
    running_api,
    settings_for,
    two_account_simulator,
    wait_for,
)
from tests.support.order import CallRecorder, KeyedLoad, judge, overlaps

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with two_account_simulator() as running:
        yield running


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: aioredis.Redis
) -> Settings:
    """Both accounts, and circuits quick enough to open, probe and close within seconds."""
    return settings_for(
        database_url,
        redis_url,
        sim.base_url,
        twilio_backup_account_sid=BACKUP_SID,
        twilio_backup_auth_token=BACKUP_TOKEN,
        route_window_seconds=2,
        route_min_requests=10,
        route_error_threshold=0.5,
        route_open_seconds=1,
        route_probes=2,
        route_ramp_seconds=1,
        reconcile_interval_seconds=1,
    )


def account_calls(sim: RunningSimulator, *, since: int = 0) -> list[dict[str, Any]]:
    """Twilio calls the simulator logged after `since` (its seq), oldest first."""
    return sim.state.requests(provider="twilio", since_seq=since)


def accepted_on(calls: list[dict[str, Any]], account: str) -> int:
    return sum(1 for c in calls if c["account_sid"] == account and c["accepted"])


async def route_state(api: httpx.AsyncClient, route: str) -> str:
    answer = await api.get("/api/v1/stats")
    answer.raise_for_status()
    return str(answer.json()["routes"][route]["state"])


async def test_the_primary_fails_mid_load_and_the_backup_carries_everything_in_order(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool
) -> None:
    load, calls = KeyedLoad(40), CallRecorder(sim.state)
    async with in_process(settings, workers=2) as service:
        api = service.api
        await load.send(api, 2)
        await wait_final(pool, load.ids, within=20)
        before = account_calls(sim)
        assert accepted_on(before, SIM_SID) == len(load.ids)  # healthy: all on the primary
        mark = before[-1]["seq"]

        sending = asyncio.create_task(load.send(api, 6))

        async def under_way() -> bool:
            return len(account_calls(sim, since=mark)) >= 40

        await wait_for(under_way, timeout=20, what="the load to be under way")
        sim.config.account_faults = {SIM_SID: {"status": 503}}
        fault = sim.state.requests()[-1]["seq"]
        await sending
        await wait_final(pool, load.ids, within=30)

        async def opened() -> bool:
            return await route_state(api, TWILIO) != "closed"

        await wait_for(opened, timeout=5, what="the primary's circuit to open")
        scrape = (await api.get("/metrics")).text
        assert 'postline_route_circuit{route="twilio",state="closed"} 0.0' in scrape
        assert 'postline_route_circuit{route="twilio_backup",state="closed"} 1.0' in scrape
        via_backup = await pool.fetchval(
            "SELECT id FROM messages WHERE route = $1 AND attempts > 1 LIMIT 1", TWILIO_BACKUP
        )
        shown = (await api.get(f"/api/v1/messages/{via_backup}")).json()
        assert shown["route"] == TWILIO_BACKUP and shown["provider"] == "twilio"
        history = (await api.get(f"/api/v1/messages/{via_backup}/events")).json()
        assert [e["route"] for e in history if e["status"] in ("retrying", "sent")] == [
            TWILIO,
            TWILIO_BACKUP,
        ]
        after = account_calls(sim, since=fault)
        on_primary = sum(1 for c in after if c["account_sid"] == SIM_SID)
        assert accepted_on(after, SIM_SID) == 0
        assert accepted_on(after, BACKUP_SID) > 0
        # Once open, only probes reach the failing account: most calls go to the backup.
        assert on_primary < len(after) / 2, (on_primary, len(after))

        # Recovery: the account answers again, probes close the circuit and
        # the traffic drifts back to it.
        sim.config.account_faults = {}
        healed = sim.state.requests()[-1]["seq"]

        async def back_on_primary() -> bool:
            round_start = sim.state.requests()[-1]["seq"]
            await load.send(api, 1)
            await wait_final(pool, load.ids, within=20)
            latest = account_calls(sim, since=round_start)
            return await route_state(api, TWILIO) == "closed" and accepted_on(
                latest, SIM_SID
            ) == len(latest)

        await wait_for(back_on_primary, timeout=20, what="traffic back on the primary", every=0)
        assert accepted_on(account_calls(sim, since=healed), SIM_SID) > 0

    report = judge(calls.calls, load.accepted)
    print(f"\nfailover: {report.line()}, {on_primary} calls to the failing account after the fault")
    assert report.missing == [] and report.overtakes == 0
    assert report.duplicates == 0  # a 503 accepts nothing: no attempt was in flight twice
    assert overlaps(calls.calls) == 0
    routes = dict(await pool.fetch("SELECT route, count(*) FROM messages GROUP BY route"))
    assert routes.keys() == {TWILIO, TWILIO_BACKUP}, routes
    events = await pool.fetchval(
        "SELECT count(*) FROM message_events WHERE status = 'sent' AND route = $1", TWILIO_BACKUP
    )
    assert events == routes[TWILIO_BACKUP]


async def test_a_hanging_primary_fails_over_by_its_timeouts(
    settings: Settings, sim: RunningSimulator, pool: asyncpg.Pool
) -> None:
    """A hang is worse than a 503: each call costs the provider deadline, and its outcome
    is unknown. The circuit counts the timeouts and the backup takes over."""
    fast = settings.model_copy(update={"provider_timeout_seconds": 0.5, "route_min_requests": 5})
    sim.config.account_faults = {SIM_SID: {"hang_ms": 5000}}
    load, calls = KeyedLoad(20, first_number=500), CallRecorder(sim.state)
    async with in_process(fast, workers=2) as service:
        await load.send(service.api, 3)
        await wait_final(pool, load.ids, within=30)
    report = judge(calls.calls, load.accepted)
    assert report.missing == [] and report.overtakes == 0
    # A hung call is never answered, so the primary accepted nothing twice.
    assert report.duplicates == 0
    sent_via = dict(await pool.fetch("SELECT route, count(*) FROM messages GROUP BY route"))
    assert sent_via == {TWILIO_BACKUP: len(load.ids)}


async def test_receipts_of_the_backup_account_are_checked_with_its_own_token(
    settings: Settings,
) -> None:
    path = "/api/v1/webhooks/twilio/status"
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        url = base + path

        async def post(account: str, token: str) -> int:
            form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered",
                    "AccountSid": account}  # fmt: skip
            signature = twilio_signature(token, url, form)
            answer = await api.post(path, data=form, headers={TWILIO_SIGNATURE_HEADER: signature})
            return answer.status_code

        assert await post(BACKUP_SID, BACKUP_TOKEN) == 200
        assert await post(SIM_SID, SIM_TOKEN) == 200
        assert await post(BACKUP_SID, SIM_TOKEN) == 403  # the other account's token
        assert await post(SIM_SID, BACKUP_TOKEN) == 403


async def test_the_twilio_library_sends_through_each_account_and_faults_hit_one_only(
    sim: RunningSimulator,
) -> None:
    """Twilio's own library drives the simulator's second account, with its own token."""

    def client(sid: str, token: str) -> TwilioClient:
        return TwilioClient(sid, token, http_client=SimulatorTwilioHttpClient(sim.base_url))

    backup, primary = client(BACKUP_SID, BACKUP_TOKEN), client(SIM_SID, SIM_TOKEN)
    wrong = client(BACKUP_SID, SIM_TOKEN)

    def send(twilio: TwilioClient) -> Any:
        return twilio.messages.create(to="+15559876543", from_="+15550001111", body="Hi")

    message = await asyncio.to_thread(send, backup)
    assert message.account_sid == BACKUP_SID and message.status == "queued"
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(send, wrong)
    assert refused.value.status == 401

    sim.config.account_faults = {SIM_SID: {"status": 503}}
    with pytest.raises(TwilioRestException) as down:
        await asyncio.to_thread(send, primary)
    assert down.value.status == 503
    assert (await asyncio.to_thread(send, backup)).account_sid == BACKUP_SID
    for twilio in (backup, primary, wrong):
        session = twilio.http_client.session  # type: ignore[attr-defined]
        if session is not None:
            session.close()
    accounts = [(r["account_sid"], r["status"]) for r in sim.state.requests(provider="twilio")]
    assert accounts == [(BACKUP_SID, 201), (BACKUP_SID, 401), (SIM_SID, 503), (BACKUP_SID, 201)]
