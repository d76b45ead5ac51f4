"""A `postline worker` process rides out whatever Redis and PostgreSQL do, and never exits.

Each test runs the real processes against servers of its own, misbehaves
them, and then checks: every acknowledged message was sent (in its key's
order), the worker is the very process it started with, and its log names
each outage once and its end once per loop, not once per retry.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
import redis.asyncio as aioredis

from postline.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from postline.store.migrate import upgrade
from tests.support.harness import wait_for
from tests.support.order import KeyedLoad, calls_from_requests, judge
from tests.support.processes import descendants, start_dev, stop_dev, wait_http
from tests.support.stack import Stack, count_status, sms, wait_all

pytestmark = pytest.mark.timeout(240)

#: RECONCILE_INTERVAL + VISIBILITY_TIMEOUT + 30 s of the stack's settings.
BOUND = 1 + 7 + 30
SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}


def outages(log: Path) -> dict[str, list[int]]:
    """Per worker loop: [outages logged, recoveries logged]."""
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for line in log.read_text().splitlines():
        try:
            event = str(json.loads(line).get("event", ""))
        except ValueError:
            event = line
        loop = event.split(":", 1)[0]
        if ": dependency unavailable" in event:
            counts[loop][0] += 1
        elif ": recovered after" in event:
            counts[loop][1] += 1
    return dict(counts)


async def deliver(stack: Stack, load: KeyedLoad, healed: float, what: str) -> None:
    """Every acknowledged message is sent within the bound, in its key's order."""
    await wait_all(stack.database_url, load.ids, "sent", within=BOUND)
    report = judge(calls_from_requests(stack.sim_requests()), load.accepted)
    print(f"\n{what}: {len(load.ids)} acknowledged, all sent {time.monotonic() - healed:.1f}s "
          f"after the fault ended; {report.line()}")  # fmt: skip
    assert report.overtakes == 0 and report.missing == []


def same_worker(stack: Stack, pid: int) -> None:
    (worker,) = stack.workers
    assert worker.poll() is None, f"the worker exited with {worker.returncode}"
    assert worker.pid == pid


async def started(stack: Stack) -> int:
    """Waits until the stack's one worker says it started; returns its pid."""
    (worker,) = stack.workers
    log = stack.logs / "worker1.log"
    deadline = time.monotonic() + 60
    while "started, concurrency" not in (log.read_text() if log.exists() else ""):
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the worker did not start within 60s"
        await asyncio.sleep(0.1)
    return worker.pid


async def logged_since(log: Path, before: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
    """Outages and recoveries each loop logged since `before`, once every loop that logged
    an outage has had a round to log its end (a loop runs every 2 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        logged = {
            loop: (down - before.get(loop, [0, 0])[0], up - before.get(loop, [0, 0])[1])
            for loop, (down, up) in outages(log).items()
        }
        logged = {loop: counts for loop, counts in logged.items() if counts != (0, 0)}
        if all(down <= up for down, up in logged.values()) or time.monotonic() > deadline:
            return logged
        await asyncio.sleep(0.1)


async def spell(
    name: str, stack: Stack, load: KeyedLoad, start: Callable[[], Awaitable[Any]],
    end: Callable[[], Awaitable[Any]], *, meets: str,
) -> None:  # fmt: skip
    """Sends, starts the fault, sends through it for 3 s, ends it, checks delivery.

    Also checks that the worker logged the fault (some loop met the error
    `meets`) and that no loop logged it more than once, or its end more than once.
    """
    log = stack.logs / "worker1.log"
    before = outages(log)
    seen = len(log.read_text())
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        await load.send(api, 2)  # in flight (slow provider) when the fault starts
        fault = asyncio.create_task(start())
        for _ in range(3):  # stored and answered 202 while Redis refuses the pushes
            await asyncio.gather(load.send(api, 1), asyncio.sleep(1))
        await end()
        await fault
        healed = time.monotonic()
        await load.send(api, 1)
    assert load.refused == 0
    await deliver(stack, load, healed, name)
    logged = await logged_since(log, before)
    print(f"{name}: outages and recoveries logged per loop: {logged}")
    assert logged, f"the worker never met the {name} fault"
    assert meets in log.read_text()[seen:], f"no loop met {meets} during the {name} fault"
    assert all(counts == (1, 1) for counts in logged.values()), logged


async def test_a_worker_rides_out_busy_readonly_masterdown_oom_a_hang_and_flushall(
    database_url: str, own_redis: EmbeddedRedis, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    stack = Stack(database_url, own_redis.url, tmp_path)
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        stack.start_simulator("--latency-ms", "100")
        stack.start_api()
        stack.start_worker()
        pid = await started(stack)
        load = KeyedLoad(10)
        await client.config_set("lua-time-limit", 100)

        def busy_script() -> Any:  # BUSY for everyone else while it runs
            with redis.Redis.from_url(own_redis.url, socket_timeout=30) as blocking:
                return blocking.eval(BUSY_LOOP, 0, 3.5)

        await spell(
            "BUSY", stack, load, lambda: asyncio.to_thread(busy_script), _nothing, meets="BUSY"
        )
        same_worker(stack, pid)
        # A replica of a master that is not there: READONLY to writes, UNBLOCKED to blocked
        # readers; it keeps its data until it syncs, which it never does. Then again, but
        # not allowed to serve stale data: MASTERDOWN to reads too.
        for name, meets in (("READONLY", "ReadOnlyError"), ("MASTERDOWN", "MasterDownError")):
            stale = "yes" if name == "READONLY" else "no"
            await client.config_set("replica-serve-stale-data", stale)
            await spell(
                name, stack, load,
                lambda: client.replicaof("127.0.0.1", free_port()),
                lambda: client.replicaof("NO", "ONE"), meets=meets,
            )  # fmt: skip
            same_worker(stack, pid)
        # Memory full (noeviction): OOM to every write that could grow it.
        await spell(
            "OOM", stack, load,
            lambda: client.config_set("maxmemory", 1),
            lambda: client.config_set("maxmemory", 0), meets="OutOfMemoryError",
        )  # fmt: skip
        same_worker(stack, pid)

        # A Redis that hangs (SIGSTOP) longer than the clients' 5 s socket timeout.
        async def hang_redis() -> None:
            assert own_redis.pid is not None
            os.kill(own_redis.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(7)
            finally:
                os.kill(own_redis.pid, signal.SIGCONT)

        await spell("hung Redis", stack, load, hang_redis, _nothing, meets="TimeoutError")
        same_worker(stack, pid)
        # FLUSHALL while the worker waits in XREADGROUP: NOGROUP, and everything lost.
        await spell("FLUSHALL", stack, load, client.flushall, _nothing, meets="NOGROUP")
        same_worker(stack, pid)
    finally:
        await client.aclose()
        stack.stop_all()


OUTAGE_SECONDS = 60


async def ride_out(
    name: str, stack: Stack, stop: Callable[[], Any], start: Callable[[], Any]
) -> tuple[KeyedLoad, int]:
    """One dependency down for a minute under a running stack; returns the load and
    how many sends the API refused (503) meanwhile."""
    stack.start_simulator("--latency-ms", "200")
    stack.start_api()
    stack.start_worker()
    pid = await started(stack)
    load = KeyedLoad(10)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        await load.send(api, 2)  # in flight (slow provider) when the server stops
        await asyncio.to_thread(stop)
        down = time.monotonic()
        for _ in range(3):
            await asyncio.gather(load.send(api, 1), asyncio.sleep(1))
        refused = load.refused
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - down))  # the outage itself
        await asyncio.to_thread(start)
        healed = time.monotonic()
        while (await api.get("/health")).status_code != 200:
            assert time.monotonic() - healed < 30, "the API did not recover within 30s"
            await asyncio.sleep(0.1)
        await load.send(api, 2)
    await deliver(stack, load, healed, f"{name} for {OUTAGE_SECONDS}s")
    same_worker(stack, pid)
    logged = await logged_since(stack.logs / "worker1.log", {})
    print(f"{name}: outages and recoveries logged per loop: {logged}")
    assert logged, f"the worker never met the outage ({name})"
    # One line for the outage and one for its end, per loop; not one per retry. A
    # pooled connection opened before a restart may fail once more just after it,
    # which reads as a second, short outage: at most two, each with its end.
    assert all(down == up and 1 <= down <= 2 for down, up in logged.values()), logged
    return load, refused


async def dev_rides_out(folder: Path) -> None:
    """`postline dev` on a PostgreSQL and a Redis of its own that both stop for the minute:
    it keeps running with the very same children, and then delivers again."""
    pg = EmbeddedPostgres(folder / "pg", port=free_port(), fast=True)
    own_redis = EmbeddedRedis(folder / "redis", port=free_port())
    urls = {
        "DATABASE_URL": await asyncio.to_thread(pg.start),
        "REDIS_URL": await asyncio.to_thread(own_redis.start),
    }
    api_port = free_port()
    dev = start_dev(folder, api_port, free_port(), urls=urls)
    family: list[Any] = []
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{api_port}/health", dev,
                                folder / "dev.log", 90)  # fmt: skip
        family = descendants(dev)

        async def started() -> bool:
            # dev's own start check (it prints its banner after it) must have seen the
            # API healthy before the outage: the API answering first is not enough.
            return "More workers:" in (folder / "dev.log").read_text(errors="replace")

        await wait_for(started, timeout=30, what="postline dev to finish starting")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as api:
            ids = [(await api.post("/api/v1/messages/send", json=SMS)).json()["id"]]
            await asyncio.gather(asyncio.to_thread(pg.stop), asyncio.to_thread(own_redis.stop))
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself
            await asyncio.gather(asyncio.to_thread(pg.start), asyncio.to_thread(own_redis.start))
            healed = time.monotonic()
            while (await api.get("/health")).status_code != 200:
                assert time.monotonic() - healed < 30, "dev's API did not recover within 30s"
                await asyncio.sleep(0.1)
            ids.append((await api.post("/api/v1/messages/send", json=SMS)).json()["id"])

            async def delivered() -> bool:
                answers = [await api.get(f"/api/v1/messages/{i}") for i in ids]
                return all(a.json()["status"] in ("sent", "delivered") for a in answers)

            await wait_for(delivered, timeout=BOUND, what="dev to send what it acknowledged")
        assert dev.poll() is None, f"postline dev exited with {dev.returncode}"
        assert sorted(p.pid for p in descendants(dev)) == sorted(p.pid for p in family)
        print("\npostline dev: ran through a minute without both servers, same children")
    finally:
        if dev.poll() is None:
            stop_dev(dev, family)
        pg.stop()
        own_redis.stop()


async def test_a_worker_rides_out_a_minute_without_redis_and_a_minute_without_postgres(
    database_url: str, redis_url: str, own_redis: EmbeddedRedis, pool: asyncpg.Pool,
    redis: aioredis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    """Two stacks side by side, to spend the minute once: one loses its Redis, the other
    its PostgreSQL. Sends accepted while Redis is down are answered 202 and go out;
    while PostgreSQL is down the API answers 503 and nothing is acknowledged. Beside
    them, a `postline dev` loses both of its servers for the same minute."""
    own_pg = EmbeddedPostgres(tmp_path / "own-pg", port=free_port(), fast=True)
    pg_url = own_pg.start()
    await asyncio.to_thread(upgrade, pg_url)
    (tmp_path / "redis-down").mkdir()
    (tmp_path / "postgres-down").mkdir()
    (tmp_path / "dev").mkdir()
    no_redis = Stack(database_url, own_redis.url, tmp_path / "redis-down")
    no_postgres = Stack(pg_url, redis_url, tmp_path / "postgres-down")
    try:
        (_, refused_without_redis), (_, refused_without_postgres), _ = await asyncio.gather(
            ride_out("Redis stopped", no_redis, own_redis.stop, own_redis.start),
            ride_out("PostgreSQL stopped", no_postgres, own_pg.stop, own_pg.start),
            dev_rides_out(tmp_path / "dev"),
        )
    finally:
        no_redis.stop_all()
        no_postgres.stop_all()
        own_pg.stop()
    assert refused_without_redis == 0
    assert refused_without_postgres == 30  # three rounds of ten, all answered 503


async def _nothing() -> None:
    return None


BUSY_LOOP = """
local function now() local t = redis.call('TIME') return t[1] + t[2] / 1000000 end
local start = now()
while now() - start < tonumber(ARGV[1]) do end
return 1
"""


#: How long the worker must stay up after the first signal to show it is stuck
#: on its outcome writes. The sends were answered before that signal, so a
#: first-signal stop that gave the writes up ends about 0.1 s after it here
#: (a second after it when made to give up after a second); one that waits
#: for PostgreSQL does not end while PostgreSQL is down.
STUCK_FOR = 5.0
#: The second signal gives the writes up at once; closing the pools, the HTTP
#: session and the Redis client is all that is left.
STOPS_WITHIN = 5.0


async def test_a_second_signal_stops_a_worker_that_waits_to_write_its_outcomes(
    redis_url: str, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """The first SIGTERM finishes the sends in flight and writes their outcomes,
    waiting for PostgreSQL if it is down (unwritten, they would be sent again);
    a second one gives that up, so an operator is never left with kill -9."""
    own_pg = EmbeddedPostgres(tmp_path / "own-pg", port=free_port(), fast=True)
    pg_url = own_pg.start()
    await asyncio.to_thread(upgrade, pg_url)
    stack = Stack(pg_url, redis_url, tmp_path)
    try:
        stack.start_simulator("--latency-ms", "1500")
        stack.start_api()
        worker = stack.start_worker()
        await started(stack)
        async with httpx.AsyncClient(base_url=stack.api_url) as api:
            ids = [(await api.post("/api/v1/messages/send", json=sms(i))).json()["id"]
                   for i in range(3)]  # fmt: skip

        async def all_sending() -> bool:
            return await count_status(pg_url, ids, "sending") == len(ids)

        await wait_for(all_sending, timeout=20, what="the sends to be in flight")
        own_pg.stop()  # the provider answers after this: the outcomes cannot be written
        log = stack.logs / "worker1.log"
        await wait_for(
            _logged(log, "retrying until it succeeds"), timeout=20, what="a failed outcome write"
        )
        worker.send_signal(signal.SIGTERM)
        await wait_for(
            _logged(log, "finishing"), timeout=10, what="the first signal to start the shutdown"
        )
        code = await asyncio.to_thread(_exit_within, worker, STUCK_FOR)
        assert code is None, f"exited ({code}) on the first signal, its outcomes unwritten"
        assert not re.search(r"worker \S+ stopped", log.read_text())

        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(_exit_within, worker, STOPS_WITHIN)
        if code is None:
            worker.kill()  # so that the clean-up does not replace the failure below
        assert code is not None, f"still running {STOPS_WITHIN}s after the second signal"
        assert "second signal" in log.read_text()
    finally:
        stack.stop_all()
        own_pg.stop()


def _exit_within(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The process's exit code if it ends within `seconds`, else None (still running)."""
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def _logged(log: Path, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return text in await asyncio.to_thread(log.read_text)

    return check
