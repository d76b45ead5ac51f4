"""`postline purge` as a user runs it: a subprocess, against the test database.

It needs only PostgreSQL: the environment holds DATABASE_URL and no REDIS_URL
(or, in one test, only a `postline dev` data dir that names the database).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg

from postline.cli.devenv import write_dev_env
from tests.integration.test_housekeeping import ids, inbound, message
from tests.support.processes import clean_env, run_postline


async def purge(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_postline, "purge", *args, cwd=cwd, env=clean_env(**env))


async def seed(pool: asyncpg.Pool) -> dict[str, object]:
    """Two inbound messages (40 and 1 days old), two settled messages (100 and 5 days
    since they settled) and one open one, an expired suppression."""
    await pool.execute(
        "INSERT INTO suppressions (channel, recipient, reason, source, expires_at) "
        "VALUES ('sms', '+15550000001', 'manual', 'api', now() - interval '1 hour')"
    )
    return {
        "old inbound": await inbound(pool, days_ago=40),
        "new inbound": await inbound(pool, days_ago=1),
        "old message": await message(pool, "delivered", days_ago=100),
        "new message": await message(pool, "failed", days_ago=5),
        "open message": await message(pool, "retrying", days_ago=100),
    }


async def test_purge_deletes_what_the_retention_allows_and_says_so(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = await seed(pool)
    done = await purge("--messages-older-than", "30", cwd=tmp_path, DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "purged 0 idempotency keys older than 24 hours",
        "purged 1 expired suppressions",
        "purged 1 inbound messages received more than 30 days ago",
        "purged 1 settled messages last changed more than 30 days ago",
    ]
    assert await ids(pool, "inbound_messages") == {rows["new inbound"]}
    assert await ids(pool, "messages") == {rows["new message"], rows["open message"]}
    assert await ids(pool, "suppressions", "recipient") == set()


async def test_a_dry_run_counts_and_deletes_nothing(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = await seed(pool)
    done = await purge(
        "--dry-run", "--messages-older-than", "3", "--inbound-older-than", "0",
        cwd=tmp_path, DATABASE_URL=database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "would purge 2 settled messages last changed more than 3 days ago" in done.stdout
    assert "would purge 1 expired suppressions" in done.stdout
    assert "kept every inbound message (INBOUND_RETENTION_DAYS is 0)" in done.stdout
    assert len(await ids(pool, "messages")) == 3
    assert await ids(pool, "inbound_messages") == {rows["old inbound"], rows["new inbound"]}
    assert len(await ids(pool, "suppressions", "recipient")) == 1


async def test_the_settings_give_the_retention_and_a_dev_data_dir_the_database(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = await seed(pool)
    data_dir = tmp_path / "state"
    data_dir.mkdir()
    write_dev_env(data_dir, {"DATABASE_URL": database_url})
    done = await purge(
        "--data-dir", str(data_dir), cwd=tmp_path,
        MESSAGE_RETENTION_DAYS="4", INBOUND_RETENTION_DAYS="0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "purged 2 settled messages last changed more than 4 days ago" in done.stdout
    assert await ids(pool, "messages") == {rows["open message"]}
    assert len(await ids(pool, "inbound_messages")) == 2

    default = await purge(cwd=tmp_path, DATABASE_URL=database_url)
    assert "kept every settled message (MESSAGE_RETENTION_DAYS is 0)" in default.stdout
    assert "purged 1 inbound messages received more than 30 days ago" in default.stdout
    assert await ids(pool, "inbound_messages") == {rows["new inbound"]}


async def test_without_a_database_it_says_what_is_missing(tmp_path: Path) -> None:
    done = await purge("--data-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert done.returncode == 1
    assert "DATABASE_URL is not set" in done.stderr
