"""A whole Postline as subprocesses, for fault tests that kill parts of it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.support.harness import SIM_KEY, SIM_SID, SIM_TOKEN, free_port
from tests.support.processes import postline, stop, wait_http


@dataclass
class Stack:
    database_url: str
    redis_url: str
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    sim_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    sim: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TWILIO_ACCOUNT_SID": SIM_SID,
            "TWILIO_AUTH_TOKEN": SIM_TOKEN,
            "SENDGRID_API_KEY": SIM_KEY,
            "TWILIO_BASE_URL": self.sim_url,
            "SENDGRID_BASE_URL": self.sim_url,
            "RETRY_BASE_SECONDS": "0.05",
            "VISIBILITY_TIMEOUT_SECONDS": "7",
            "PROVIDER_TIMEOUT_SECONDS": "2",
            "RECONCILE_INTERVAL_SECONDS": "1",
            "LOG_FORMAT": "json",
            "CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",  # test receivers listen on loopback
            **self.extra_env,
        }

    def start_simulator(self, *args: str) -> None:
        log = self.logs / "simulator.log"
        self.sim = postline(["simulator", "--port", str(self.sim_port), *args], self.env, log)
        wait_http(f"{self.sim_url}/_sim/health", self.sim, log)

    def start_api(self) -> None:
        log = self.logs / "api.log"
        self.api = postline(["api", "--port", str(self.api_port)], self.env, log)
        wait_http(f"{self.api_url}/health", self.api, log)

    def start_worker(self, concurrency: int = 64) -> subprocess.Popen[bytes]:
        n = len(self.workers) + 1
        proc = postline(
            ["worker", "--concurrency", str(concurrency)], self.env, self.logs / f"worker{n}.log"
        )
        self.workers.append(proc)
        return proc

    async def worker_name(self, n: int, *, timeout: float = 60) -> str:
        """The name worker `n` (from 1) logs when it starts: its consumer name and held_by."""
        log = self.logs / f"worker{n}.log"
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text() if log.exists() else ""
            found = re.search(r"worker (\S+) started", text)
            if found:
                return found.group(1)
            assert self.workers[n - 1].poll() is None, f"worker {n} exited:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"worker {n} did not start in {timeout}s"
            await asyncio.sleep(0.1)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        """Stops every process, even when one of them had to be killed (which is then raised):
        a failing test must not leave the others running against the shared servers."""
        refused: list[AssertionError] = []
        for proc in [*self.workers, self.api, self.sim]:
            if proc is not None and proc.poll() is None:
                try:
                    stop(proc)
                except AssertionError as exc:
                    refused.append(exc)
        if refused:
            raise refused[0]

    def sim_config(self, **values: Any) -> None:
        httpx.put(f"{self.sim_url}/_sim/config", json=values).raise_for_status()

    def sim_requests(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.sim_url}/_sim/requests", timeout=30)
        answer.raise_for_status()
        requests: list[dict[str, Any]] = answer.json()["requests"]
        return requests


def sms(i: int, **extra: Any) -> dict[str, Any]:
    return {"from": "+15550000000", "to": f"+1555{i:07d}", "type": "sms", "body": f"m{i}", **extra}


async def send_many(
    api_url: str, payloads: list[dict[str, Any]], *, concurrency: int = 16
) -> tuple[list[str], int]:
    """Sends every payload; returns the ids that got a 2xx and the count that did not."""
    accepted: list[str] = []
    refused = 0
    queue = iter(payloads)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal refused
        for payload in queue:
            try:
                answer = await http.post("/api/v1/messages/send", json=payload)
            except httpx.HTTPError:
                refused += 1
                continue
            if answer.status_code in (200, 201, 202):
                accepted.append(answer.json()["id"])
            else:
                refused += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return accepted, refused


async def count_status(database_url: str, ids: list[str], status: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]) AND status = $2",
                ids,
                status,
            )
        )
    finally:
        await connection.close()


async def wait_all(database_url: str, ids: list[str], status: str, *, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        done = await count_status(database_url, ids, status)
        if done == len(ids):
            return
        if loop.time() > deadline:
            raise AssertionError(f"only {done} of {len(ids)} are {status} after {within}s")
        await asyncio.sleep(0.2)
