"""The simulator's ambiguous-outcome faults over real HTTP, and its durable call log.

Each mode is switched on through `PUT /_sim/config`, as a fault campaign
does, and checked from both sides: what the client saw, and what the call
log says the provider did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from postline.chaos.records import read_lines
from postline.simulator import RunningSimulator, SimulatorConfig, running_simulator

SENDER = "+15550001111"
TWILIO_PATH = "/2010-04-01/Accounts/AC0/Messages.json"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    config = SimulatorConfig(seed=7)
    async with running_simulator(config, request_log=tmp_path / "calls.jsonl") as running:
        yield running


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sim.base_url) as session:
        yield session


async def configure(http: aiohttp.ClientSession, **knobs: Any) -> None:
    async with http.put("/_sim/config", json=knobs) as resp:
        assert resp.status == 200, await resp.text()


async def send_sms(http: aiohttp.ClientSession, body: str, timeout: float = 5.0) -> int | str:
    """The status answered, or the name of the client-side error."""
    form = {"To": "+15559876543", "From": SENDER, "Body": body}
    try:
        async with http.post(
            TWILIO_PATH, data=form, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    return list(read_lines(tmp_path / "calls.jsonl"))


async def test_every_call_is_a_durable_line_with_its_times_and_outcome(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    before = time.time()
    assert await send_sms(http, "one") == 201
    await configure(http, error_rate=1.0)
    assert await send_sms(http, "two") == 500

    first, second = calls(tmp_path)

    assert (first["body"], first["status"], first["outcome"], first["accepted"]) == (
        "one", 201, "accepted", True
    )  # fmt: skip
    assert first["provider_message_id"].startswith("SM")
    # Which account and sender: a campaign tells failover and pacing from them.
    assert (first["account_sid"], first["from"]) == ("AC0", SENDER)
    assert before <= first["received_at"] <= first["ended_at"] <= second["received_at"]
    assert (second["status"], second["outcome"], second["accepted"]) == (500, "refused", False)


async def test_a_hang_a_client_gives_up_on_is_logged_client_gone_and_not_accepted(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await configure(http, hang_rate=1.0, hang_ms=3000)

    started = time.time()
    assert await send_sms(http, "held", timeout=0.3) == "TimeoutError"
    await asyncio.sleep(0.2)  # the server notices the closed connection

    (call,) = calls(tmp_path)
    assert (call["outcome"], call["accepted"], call["status"], call["hung"]) == (
        "client_gone", False, None, True
    )  # fmt: skip
    assert call["body"] == "held"
    assert 0.25 < call["ended_at"] - started < 1.0
    # The inspection log keeps only decided calls, each with an integer status.
    async with http.get("/_sim/requests") as resp:
        assert (await resp.json())["requests"] == []
    async with http.get("/_sim/stats") as resp:
        assert (await resp.json())["abandoned"] == 1


async def test_a_hang_a_client_waits_out_is_answered_normally(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await configure(http, hang_rate=1.0, hang_ms=400)

    started = time.monotonic()
    assert await send_sms(http, "patient") == 201

    assert time.monotonic() - started >= 0.4
    (call,) = calls(tmp_path)
    assert (call["outcome"], call["hung"]) == ("accepted", True)
    assert call["ended_at"] - call["received_at"] >= 0.4


async def test_a_reset_accepts_the_message_and_the_client_sees_no_answer(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await configure(http, reset_rate=1.0)

    assert await send_sms(http, "dropped") == "ServerDisconnectedError"

    (call,) = calls(tmp_path)
    assert (call["outcome"], call["accepted"], call["answered"]) == ("reset", True, False)
    assert call["status"] == 201  # decided, never sent
    assert call["provider_message_id"].startswith("SM")


async def test_a_500_after_acceptance_is_logged_as_accepted(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await configure(http, accepted_error_rate=1.0)

    assert await send_sms(http, "gateway") == 500
    mail = {
        "personalizations": [{"to": [{"email": "ana@example.com"}]}],
        "from": {"email": "noreply@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "mail body"}],
    }
    async with http.post("/v3/mail/send", json=mail) as resp:
        assert resp.status == 500
        assert "X-Message-Id" not in resp.headers

    sms, email = calls(tmp_path)
    assert (sms["outcome"], sms["accepted"], sms["status"]) == ("accepted_error", True, 500)
    assert (email["outcome"], email["accepted"], email["text"]) == (
        "accepted_error", True, "mail body"
    )  # fmt: skip


async def test_sendgrid_reset_and_turning_a_mode_off_at_run_time(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    mail = {
        "personalizations": [{"to": [{"email": "bob@example.com"}]}],
        "from": {"email": "noreply@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "hello"}],
    }
    await configure(http, reset_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post("/v3/mail/send", json=mail):
            pass
    await configure(http, reset_rate=0.0)
    async with http.post("/v3/mail/send", json=mail) as resp:
        assert resp.status == 202

    outcomes = [(c["provider"], c["outcome"]) for c in calls(tmp_path)]
    assert outcomes == [("sendgrid", "reset"), ("sendgrid", "accepted")]


async def test_the_inspection_log_shows_the_same_outcomes(
    http: aiohttp.ClientSession,
) -> None:
    await configure(http, reset_rate=1.0)
    await send_sms(http, "x")
    async with http.get("/_sim/requests") as resp:
        (record,) = (await resp.json())["requests"]

    assert (record["outcome"], record["accepted"], record["status"]) == ("reset", True, 201)
    assert record["ended_at"].endswith("Z")
