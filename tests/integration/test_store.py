"""Status transitions are fenced in SQL: no lost update, no step backwards."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from postline.domain import addresses
from postline.domain.message import Change, Message
from postline.domain.outcomes import Outcome
from postline.domain.statuses import Status
from postline.store.messages import MessageStore
from postline.store.migrate import alembic_config
from tests.support.messages import new_message
from tests.support.servers import drop_database, migrated_database


def new(ordering_key: str = "+15559876543") -> Message:
    return new_message("+15559876543", ordering_key=ordering_key)


async def history(pool: asyncpg.Pool, message_id: uuid.UUID) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT status, attempt FROM message_events WHERE message_id = $1 ORDER BY id", message_id
    )
    return [(r["status"], r["attempt"]) for r in rows]


async def test_a_message_is_claimed_once(store: MessageStore, pool: asyncpg.Pool) -> None:
    row = new()
    await store.insert([row])
    first = await store.claim([row.id, row.id], holder="w1", lease=30)
    second = await store.claim([row.id], holder="w1", lease=30)
    assert [c.message.attempts for c in first] == [1]
    assert second == []
    assert await history(pool, row.id) == [("pending", 0), ("sending", 1)]


async def test_a_late_outcome_of_an_old_attempt_does_not_land(
    store: MessageStore, pool: asyncpg.Pool
) -> None:
    row = new()
    await store.insert([row])
    await store.claim([row.id], holder="w1", lease=30)
    # The first worker was lost; its lease runs out and another takes the row
    # over (attempt 2) and sends it.
    await pool.execute("UPDATE messages SET lease_until = now() - interval '1 second'")
    again = await store.claim([row.id], holder="w2", lease=30)
    assert again[0].message.attempts == 2 and again[0].previous is Status.SENDING
    landed = await store.complete([Outcome(id=row.id, attempt=2, status=Status.SENT, provider="t")])
    assert landed == {row.id}
    # The lost worker wakes up late: its attempt-1 outcome must change nothing.
    late = await store.complete(
        [Outcome(id=row.id, attempt=1, status=Status.RETRYING, error_code="timeout")]
    )
    assert late == set()
    current = await store.get(row.id)
    assert current is not None and current.status is Status.SENT
    assert await history(pool, row.id) == [
        ("pending", 0), ("sending", 1), ("sending", 2), ("sent", 2)
    ]  # fmt: skip
    detail = await pool.fetchval(
        "SELECT detail FROM message_events WHERE message_id = $1 AND attempt = 2 "
        "AND status = 'sending'",
        row.id,
    )
    assert "attempted again" in detail


async def test_under_pacing_a_claim_takes_a_pending_message_only_with_its_slot(
    store: MessageStore, pool: asyncpg.Pool
) -> None:
    """`paced`: the messages whose slot was taken. A pending one outside it stays;
    a takeover of a lost worker's message needs none (it was paced when first claimed)."""
    slotless, slotted, lost = new("k1"), new("k2"), new("k3")
    await store.insert([slotless, slotted, lost])
    await store.claim([lost.id], holder="gone", lease=30)
    await pool.execute(
        "UPDATE messages SET lease_until = now() - interval '1 second' WHERE id = $1", lost.id
    )
    ids = [slotless.id, slotted.id, lost.id]
    claimed = await store.claim(ids, holder="w1", lease=30, paced=[slotted.id])
    assert {c.message.id: c.previous for c in claimed} == {
        slotted.id: Status.PENDING,
        lost.id: Status.SENDING,
    }
    assert [c.message.id for c in await store.claim(ids, holder="w1", lease=30)] == [slotless.id]


async def test_nothing_moves_a_finished_message_back(
    store: MessageStore, pool: asyncpg.Pool
) -> None:
    row = new()
    await store.insert([row])
    await store.claim([row.id], holder="w1", lease=30)
    await store.complete([Outcome(id=row.id, attempt=1, status=Status.SENT)])
    assert await store.claim([row.id], holder="w2", lease=30) == []
    assert (await store.cancel(row.id))[0] is Change.CONFLICT
    assert (await store.retry_failed(row.id))[0] is Change.CONFLICT
    current = await store.get(row.id)
    assert current is not None and current.status is Status.SENT
    assert len(await history(pool, row.id)) == 3


async def test_events_are_append_only(store: MessageStore, pool: asyncpg.Pool) -> None:
    row = new()
    await store.insert([row])
    try:
        await pool.execute("UPDATE message_events SET status = 'sent'")
    except asyncpg.RaiseError as exc:
        assert "append-only" in str(exc)
    else:
        raise AssertionError("an event was rewritten")


async def migrate(url: str) -> str:
    """`postline migrate` as a user runs it, with a DATABASE_URL and no Redis."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"DATABASE_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "postline", "migrate", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_migrate_applies_once_then_says_up_to_date(database_url: str) -> None:
    server = database_url.rpartition("/")[0] + "/postgres"
    url, name = await migrated_database(server)
    try:
        assert "schema is up to date" in await migrate(url)
        # As if the newest migration had never run: its own downgrade undoes it.
        newest = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        await asyncio.to_thread(command.downgrade, alembic_config(url), "-1")
        assert f"applied: {newest}" in await migrate(url)
        assert "schema is up to date" in await migrate(url)
    finally:
        await drop_database(server, name)


@pytest.mark.parametrize(
    "to",
    [
        "Bob@Example.COM",
        "  bob@example.com ",
        "Bob <Bob@Example.com>",
        "Bob< bob@example.com >",
        '"Smith, Bob" <BOB@example.com>',
        "Zoë <ZOË@Exämple.com>",
        "ÅSA@EXAMPLE.COM",
    ],
)
async def test_the_stored_recipient_form_is_the_one_the_filter_asks_for(
    pool: asyncpg.Pool, to: str
) -> None:
    """`message_recipient` (SQL, indexed) and `addresses.recipient` (the filter) agree."""
    asked = addresses.recipient(to)
    stored = await pool.fetchval("SELECT message_recipient('email', $1)", addresses.email(to))
    assert stored == asked
