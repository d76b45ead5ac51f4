"""Embedded PostgreSQL and Redis against the real bundled binaries.

Runs as whatever user pytest runs as; as root this exercises the switch to the
unprivileged service user.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from postline.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServer,
    EmbeddedServerError,
    free_port,
)
from postline.embedded.privileges import SERVICE_USER

TIMEOUT = 20.0
Servers = list[EmbeddedServer]


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes working in `data_dir`: a postmaster, its backends, a redis-server."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == data_dir:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def assert_gone(pid: int | None, data_dir: Path) -> None:
    assert pid is not None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert server_processes(data_dir.resolve()) == []


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A private directory for data dirs, outside pytest's basetemp.

    As root, the servers run as the service user, which needs o+x on every
    parent directory; each new pytest session resets /tmp/pytest-of-root to
    0700, which would break servers of a concurrently running session.
    """
    root = Path(tempfile.mkdtemp(prefix="postline-embedded-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cleanup() -> Iterator[Servers]:
    """Servers appended here are stopped even when the test fails halfway."""
    servers: Servers = []
    yield servers
    for server in servers:
        server.stop()


async def fetch_notes(url: str) -> list[str]:
    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    try:
        return [row["body"] for row in await conn.fetch("SELECT body FROM notes ORDER BY id")]
    finally:
        await conn.close()


async def add_note(url: str, body: str) -> None:
    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes (body) VALUES ($1)", body)
    finally:
        await conn.close()


async def test_postgres_keeps_data_across_restart(data_root: Path, cleanup: Servers) -> None:
    pg = EmbeddedPostgres(data_root / "pg")
    cleanup.append(pg)
    url = pg.start()
    assert url == f"postgresql://postgres@127.0.0.1:{pg.port}/postline"
    assert pg.url == url
    await add_note(url, "hello")
    pid = pg.pid
    pg.stop()
    assert pg.pid is None
    assert_gone(pid, data_root / "pg")
    pg.stop()  # idempotent

    url = pg.start()
    assert await fetch_notes(url) == ["hello"]
    assert (data_root / "pg" / "postgres.log").read_text().strip()


def test_redis_stream_survives_restart(data_root: Path, cleanup: Servers) -> None:
    rd = EmbeddedRedis(data_root / "redis")
    cleanup.append(rd)
    url = rd.start()
    assert url == f"redis://127.0.0.1:{rd.port}/0"
    with redis.Redis.from_url(url) as client:
        entry_id = client.xadd("postline:test", {"body": "queued"})
    pid = rd.pid
    rd.stop()
    assert_gone(pid, data_root / "redis")
    assert (data_root / "redis" / "appendonly.aof").stat().st_size > 0

    with redis.Redis.from_url(rd.start()) as client:
        assert client.xrange("postline:test") == [(entry_id, {b"body": b"queued"})]


def test_concurrent_instances_get_different_ports(data_root: Path, cleanup: Servers) -> None:
    servers = [
        EmbeddedPostgres(data_root / "pg1", fast=True),
        EmbeddedPostgres(data_root / "pg2", fast=True),
        EmbeddedRedis(data_root / "rd1"),
        EmbeddedRedis(data_root / "rd2"),
    ]
    cleanup.extend(servers)
    urls = [server.start() for server in servers]
    assert len({server.port for server in servers}) == 4
    assert len(set(urls)) == 4


async def test_postgres_starts_after_postmaster_was_killed(
    data_root: Path, cleanup: Servers
) -> None:
    data_dir = data_root / "pg"
    crashed = EmbeddedPostgres(data_dir)
    cleanup.append(crashed)
    url = crashed.start()
    await add_note(url, "committed before the crash")
    # A backend that cannot exit yet (stopped) keeps the old shared memory
    # attached, as slow backends of a SIGKILLed postmaster do.
    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
    backend.suspend()
    pid = crashed.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: crashed.pid is None, what="the postmaster to die")
        assert (data_dir / "postmaster.pid").exists()  # stale: its process is gone

        pg = EmbeddedPostgres(data_dir)
        cleanup.append(pg)
        assert await fetch_notes(pg.start()) == ["committed before the crash"]
        assert pg.pid != pid
        assert not backend.is_running()
    finally:
        conn.terminate()
        if backend.is_running():
            backend.kill()


def test_stale_pid_file_naming_an_unrelated_process_is_removed(
    data_root: Path, cleanup: Servers
) -> None:
    pg = EmbeddedPostgres(data_root / "pg", fast=True)
    cleanup.append(pg)
    pg.start()
    pg.stop()
    # The pid of a killed postmaster, since reused by another program of the
    # same user (postgres itself treats other users' pids as stale).
    user = SERVICE_USER if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "60"], user=user) as unrelated:
        try:
            (data_root / "pg" / "postmaster.pid").write_text(f"{unrelated.pid}\n")
            pg.start()
            assert unrelated.poll() is None  # left alone
        finally:
            unrelated.kill()


async def test_postgres_left_running_on_same_dir_is_replaced(
    data_root: Path, cleanup: Servers
) -> None:
    data_dir = data_root / "pg"
    orphan = EmbeddedPostgres(data_dir, fast=True)
    cleanup.append(orphan)
    await add_note(orphan.start(), "from the first launcher")
    orphan_pid = orphan.pid

    pg = EmbeddedPostgres(data_dir, fast=True)
    cleanup.append(pg)
    url = pg.start()
    assert orphan.pid is None  # stopped, not shared
    assert not psutil.pid_exists(orphan_pid or 0)
    orphan.stop()  # the old handle must not touch the new server
    assert await fetch_notes(url) == ["from the first launcher"]


def test_redis_left_running_on_same_dir_is_replaced(data_root: Path, cleanup: Servers) -> None:
    orphan = EmbeddedRedis(data_root / "redis")
    cleanup.append(orphan)
    with redis.Redis.from_url(orphan.start()) as client:
        client.xadd("postline:test", {"n": "1"})

    rd = EmbeddedRedis(data_root / "redis")
    cleanup.append(rd)
    url = rd.start()
    assert orphan.pid is None
    orphan.stop()  # the old handle must not touch the new server
    with redis.Redis.from_url(url) as client:
        assert client.xlen("postline:test") == 1


LAUNCHER = """
import json, sys
from pathlib import Path
from postline.embedded import EmbeddedPostgres, EmbeddedRedis
root = Path(sys.argv[1])
pg = EmbeddedPostgres(root / "pg", fast=True)
rd = EmbeddedRedis(root / "redis")
pg.start()
rd.start()
(root / "pids.tmp").write_text(json.dumps([pg.pid, rd.pid]))
(root / "pids.tmp").rename(root / "pids.json")
sys.stdin.read()  # until killed
"""


def test_servers_stop_when_launcher_is_killed(data_root: Path) -> None:
    pids_file = data_root / "pids.json"
    argv = [sys.executable, "-c", LAUNCHER, str(data_root)]
    with subprocess.Popen(argv, stdin=subprocess.PIPE) as launcher:
        try:
            wait_until(
                lambda: pids_file.exists() or launcher.poll() is not None, what="the launcher"
            )
            assert launcher.poll() is None, "launcher failed to start the servers"
            pids = json.loads(pids_file.read_text())
            assert all(psutil.pid_exists(pid) for pid in pids)
        finally:
            launcher.kill()  # SIGKILL: no finally block, no stop() in the launcher
    try:
        wait_until(
            lambda: not any(psutil.pid_exists(pid) for pid in pids), what="the servers to stop"
        )
    finally:  # do not leak servers when the assertion fails
        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
    # They shut down in order (SIGINT / SIGTERM from the parent-death signal), not by SIGKILL.
    assert not (data_root / "pg" / "postmaster.pid").exists()
    assert not (data_root / "redis" / "redis.pid").exists()


def test_long_data_dir_gets_short_socket_dir(data_root: Path, cleanup: Servers) -> None:
    data_dir = data_root / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(data_dir, fast=True)
    cleanup.append(pg)
    pg.start()
    short_dirs = Path("/tmp").glob("postline-pg-*/.s.PGSQL.*")  # noqa: S108 - where they go
    sockets = [p for p in short_dirs if p.is_socket()]
    socket_dir = next(p.parent for p in sockets if p.name == f".s.PGSQL.{pg.port}")
    pg.stop()
    assert not socket_dir.exists()


def test_taken_port_is_reported_with_server_log(data_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rd = EmbeddedRedis(data_root / "redis", port=port)
        with pytest.raises(EmbeddedServerError, match="Address already in use"):
            rd.start()
    assert rd.pid is None


def test_not_started_server_has_no_url(data_root: Path) -> None:
    rd = EmbeddedRedis(data_root / "redis")
    rd.stop()
    with pytest.raises(EmbeddedServerError, match="not started"):
        _ = rd.url
    with pytest.raises(EmbeddedServerError, match="not started"):
        _ = rd.port
    assert rd.pid is None


def test_unsafe_database_name_is_refused(data_root: Path) -> None:
    with pytest.raises(ValueError, match="database name"):
        EmbeddedPostgres(data_root, database="x'; DROP")


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
