"""Runs the real API, worker and simulator inside the test's event loop.

Everything speaks real HTTP over loopback and real PostgreSQL/Redis; only
the processes are folded into one, so integration tests start in
milliseconds. The acceptance tier runs the same parts as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from postline.api.app import create_app
from postline.metrics import WorkerMetrics
from postline.settings import Settings
from postline.simulator import RunningSimulator, SimulatorConfig, running_simulator
from postline.worker.process import built_worker
from postline.worker.runner import Worker

SIM_SID = "AC" + "1" * 32
SIM_TOKEN = "test-token"
SIM_KEY = "SG.test-key"
#: A second Twilio account, the backup route of failover tests.
BACKUP_SID = "AC" + "2" * 32
BACKUP_TOKEN = "backup-test-token"


def settings_for(database_url: str, redis_url: str, sim_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "twilio_account_sid": SIM_SID,
        "twilio_auth_token": SIM_TOKEN,
        "twilio_base_url": sim_url,
        "sendgrid_api_key": SIM_KEY,
        "sendgrid_base_url": sim_url,
        "retry_base_seconds": 0.05,
        "visibility_timeout_seconds": 7,
        "provider_timeout_seconds": 2,
        # Test receivers listen on loopback; tests of the refusal turn this off.
        "callback_allow_private_networks": True,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def receipting_simulator() -> AsyncIterator[RunningSimulator]:
    """The simulator with the tests' credentials, sending delivery receipts 20 ms after a send."""
    config = SimulatorConfig(
        twilio_account_sid=SIM_SID,
        twilio_auth_token=SIM_TOKEN,
        sendgrid_api_key=SIM_KEY,
        callback_delay_ms=20,
    )
    async with running_simulator(config) as running:
        yield running


@contextlib.asynccontextmanager
async def two_account_simulator() -> AsyncIterator[RunningSimulator]:
    """The simulator with the tests' credentials and a backup Twilio account."""
    config = SimulatorConfig(
        twilio_account_sid=SIM_SID,
        twilio_auth_token=SIM_TOKEN,
        twilio_accounts={BACKUP_SID: BACKUP_TOKEN},
        sendgrid_api_key=SIM_KEY,
    )
    async with running_simulator(config) as running:
        yield running


def receipt_settings(database_url: str, redis_url: str, sim: RunningSimulator) -> Settings:
    """`settings_for` that also checks the signatures of `sim`'s SendGrid receipts."""
    return settings_for(
        database_url, redis_url, sim.base_url, sendgrid_webhook_public_key=sim.receipts.public_key()
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as base:
        yield base


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serves a built app (whose parts a test may reach into); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _started(server, task), timeout=20, what="the API to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise RuntimeError("the API stopped during start-up")
    return server.started


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, *, concurrency: int = 64) -> AsyncIterator[Worker]:
    async with built_worker(settings, concurrency=concurrency, metrics=WorkerMetrics()) as worker:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await task


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, every: float = 0.02
) -> Any:
    """Polls `check` until it returns something truthy; fails after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def message_reaches(
    api: httpx.AsyncClient, message_id: str, *want: str, timeout: float = 15
) -> dict[str, Any]:
    """The message as `GET` shows it, once its status is one of `want`."""

    async def reached() -> dict[str, Any] | None:
        message: dict[str, Any] = (await api.get(f"/api/v1/messages/{message_id}")).json()
        return message if message["status"] in want else None

    found: dict[str, Any] = await wait_for(reached, timeout=timeout, what=f"{message_id} -> {want}")
    return found
