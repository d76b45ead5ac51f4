"""Housekeeping against real PostgreSQL: what goes, what stays, in bounded batches.

Ages are made by moving timestamps into the past with UPDATE, never by waiting.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from postline.domain.channels import Channel
from postline.domain.retention import Kind, Retention
from postline.metrics import WorkerMetrics
from postline.queue.keys import RECONCILE_LOCK
from postline.queue.streams import RedisQueue
from postline.services.housekeeping import Housekeeping
from postline.store.messages import MessageStore
from postline.store.retention import RetentionStore, purge_sql
from postline.store.stats import StatsStore
from postline.worker.reconciler import HOUSEKEEPING_EVERY, Reconciler
from tests.support.harness import message_reaches, running_worker, settings_for
from tests.support.messages import new_message

KEEP_10_DAYS = Retention(message_days=10, inbound_days=10)


@pytest.fixture
def settings(database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any) -> Any:
    return settings_for(database_url, redis_url, sim.base_url, reconcile_interval_seconds=0.2)


def purger(pool: asyncpg.Pool, retention: Retention = KEEP_10_DAYS, **options: Any) -> Housekeeping:
    return Housekeeping(store=RetentionStore(pool), retention=retention, **options)


async def message(
    pool: asyncpg.Pool, status: str, *, days_ago: float, key: str = "+15550001111", **fields: Any
) -> uuid.UUID:
    """A stored message moved to `status`, last changed `days_ago` days ago."""
    m = new_message(to=key, **fields)
    await MessageStore(pool).insert([m])
    await pool.execute("UPDATE messages SET status = $2 WHERE id = $1", m.id, status)
    await pool.execute(
        "UPDATE messages SET updated_at = now() - $2::float8 * interval '1 day' WHERE id = $1",
        m.id,
        days_ago,
    )
    return m.id


async def inbound(pool: asyncpg.Pool, *, days_ago: float) -> uuid.UUID:
    row_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO inbound_messages (id, provider_message_id, channel, from_addr, to_addr, "
        "body, action, received_at) VALUES ($1, $2, 'sms', '+15559876543', '+15551234567', "
        "'hi', 'none', now() - $3::float8 * interval '1 day')",
        row_id,
        f"SM{row_id.hex}",
        days_ago,
    )
    return row_id


async def ids(pool: asyncpg.Pool, table: str, column: str = "id") -> set[Any]:
    return {r[0] for r in await pool.fetch(f"SELECT {column} FROM {table}")}


async def test_inbound_messages_older_than_the_retention_go_newer_stay(pool: asyncpg.Pool) -> None:
    gone = [await inbound(pool, days_ago=d) for d in (400, 10.01)]
    kept = [await inbound(pool, days_ago=d) for d in (9.99, 0)]
    purged = await purger(pool).purge()
    assert purged.counts[Kind.INBOUND] == len(gone)
    assert await ids(pool, "inbound_messages") == set(kept)


async def test_an_inbound_retention_of_zero_keeps_them_all(pool: asyncpg.Pool) -> None:
    kept = await inbound(pool, days_ago=4000)
    purged = await purger(pool, Retention(inbound_days=0)).purge()
    assert Kind.INBOUND not in purged.counts
    assert await ids(pool, "inbound_messages") == {kept}


async def test_expired_suppressions_go_active_and_permanent_stay(pool: asyncpg.Pool) -> None:
    for recipient, expires in [("+15550000001", "now() - interval '1 second'"),
                               ("+15550000002", "now() - interval '300 days'"),
                               ("+15550000003", "now() + interval '1 hour'"),
                               ("+15550000004", "NULL")]:  # fmt: skip
        await pool.execute(
            "INSERT INTO suppressions (channel, recipient, reason, source, expires_at) "
            f"VALUES ('sms', $1, 'manual', 'api', {expires})",
            recipient,
        )
    purged = await purger(pool).purge()
    assert purged.counts[Kind.SUPPRESSIONS] == 2
    assert await ids(pool, "suppressions", "recipient") == {"+15550000003", "+15550000004"}


async def test_settled_messages_past_the_retention_go_with_their_history(
    pool: asyncpg.Pool,
) -> None:
    settled = ("sent", "delivered", "undelivered", "failed", "cancelled")
    old = [
        await message(pool, s, days_ago=11, key=f"+1555000100{i}") for i, s in enumerate(settled)
    ]
    keyed = old[1]
    await pool.execute(
        "INSERT INTO idempotency_keys (key, request_hash, message_id) VALUES ('k1', '\\x00', $1)",
        keyed,
    )
    await pool.execute(
        "INSERT INTO parked_receipts (provider, message_id, status, detail) "
        "VALUES ('twilio', $1, 'delivered', 'early')",
        old[0],
    )
    called = await message(pool, "sent", days_ago=11, callback_url="https://example.com/cb")
    await pool.execute("UPDATE messages SET status = 'delivered' WHERE id = $1", called)
    await pool.execute("UPDATE callbacks SET delivered_at = now() WHERE message_id = $1", called)
    await pool.execute(
        "UPDATE messages SET updated_at = now() - interval '11 days' WHERE id = $1", called
    )
    old.append(called)
    recent = await message(pool, "delivered", days_ago=9)
    open_old = [await message(pool, s, days_ago=30, key=f"+1555000200{i}")
                for i, s in enumerate(("scheduled", "pending", "sending", "retrying"))]  # fmt: skip

    purged = await purger(pool).purge()

    assert purged.counts[Kind.MESSAGES] == len(old)
    assert await ids(pool, "messages") == {recent, *open_old}
    for table in ("message_events", "callbacks", "parked_receipts", "idempotency_keys"):
        left = await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE message_id = ANY($1::uuid[])", old
        )
        assert left == 0, table
    assert await pool.fetchval("SELECT count(*) FROM message_events") == 1 + len(open_old)


async def test_the_outcome_totals_keep_counting_what_was_purged(pool: asyncpg.Pool) -> None:
    """The cluster-wide outcome counters count events: a purge must not make them drop."""
    gone = await message(pool, "delivered", days_ago=11)
    kept = await message(pool, "failed", days_ago=1, type=Channel.EMAIL, to_addr="a@b.example")
    for message_id, statuses in ((gone, ("sending", "retrying", "sending", "sent", "delivered")),
                                 (kept, ("sending", "failed"))):  # fmt: skip
        for status in statuses:
            await pool.execute(
                "INSERT INTO message_events (message_id, status, attempt) VALUES ($1, $2, 1)",
                message_id,
                status,
            )
    stats = StatsStore(pool)
    before = (await stats.outcome_totals()).counts
    assert before[("sms", "retried")] == 1 and before[("email", "failed")] == 1
    assert (await purger(pool).purge()).counts[Kind.MESSAGES] == 1
    assert await ids(pool, "messages") == {kept}
    assert (await stats.outcome_totals()).counts == before


async def test_a_settled_message_whose_callback_is_still_tried_stays(pool: asyncpg.Pool) -> None:
    waiting = await message(pool, "sent", days_ago=0, callback_url="https://example.com/cb")
    await pool.execute("UPDATE messages SET status = 'failed' WHERE id = $1", waiting)
    await pool.execute(
        "UPDATE messages SET updated_at = now() - interval '11 days' WHERE id = $1", waiting
    )
    assert await pool.fetchval("SELECT count(*) FROM callbacks WHERE message_id = $1", waiting)
    old = await inbound(pool, days_ago=40)
    await pool.execute(
        "INSERT INTO callbacks (inbound_id, status, url, body) "
        "VALUES ($1, 'received', 'https://example.com/cb', '\\x7b7d')",
        old,
    )
    purged = await purger(pool).purge()
    assert purged.counts == dict.fromkeys(Kind, 0)
    assert await ids(pool, "messages") == {waiting}
    assert await ids(pool, "inbound_messages") == {old}

    await pool.execute("UPDATE callbacks SET gave_up_at = now()")
    purged = await purger(pool).purge()
    assert purged.counts[Kind.MESSAGES] == 1 and purged.counts[Kind.INBOUND] == 1


async def test_batches_are_bounded_and_the_rest_waits_for_the_next_round(
    pool: asyncpg.Pool,
) -> None:
    for _ in range(25):
        await inbound(pool, days_ago=40)
    store = RetentionStore(pool)
    assert (
        await store.purge(Kind.INBOUND, older_than=KEEP_10_DAYS.ages()[Kind.INBOUND], limit=3) == 3
    )

    bounded = purger(pool, batch=5, rounds=2)
    first = await bounded.purge()
    assert (first.counts[Kind.INBOUND], first.behind) == (10, True)
    assert await bounded.purgeable() == {**dict.fromkeys(Kind, 0), Kind.INBOUND: 12}
    second = await bounded.purge()
    assert (second.counts[Kind.INBOUND], second.behind) == (10, True)
    third = await bounded.purge()
    assert (third.counts[Kind.INBOUND], third.behind) == (2, False)


async def test_the_order_of_an_open_key_holds_after_its_settled_messages_go(
    api: httpx.AsyncClient, settings: Any, pool: asyncpg.Pool, sim: Any
) -> None:
    """A key with a long-settled message and an older open one (which Redis does not
    hold): after the purge, a new send of the key still goes out after the open one."""
    key = "+15559870001"
    settled = await message(pool, "sent", days_ago=30, key=key, body="settled")
    waiting = await message(pool, "pending", days_ago=30, key=key, body="first")
    assert (await purger(pool).purge()).counts[Kind.MESSAGES] == 1
    assert await ids(pool, "messages") == {waiting}

    send = {"from": "+15551234567", "to": key, "type": "sms", "body": "second"}
    later = (await api.post("/api/v1/messages/send", json=send)).json()["id"]
    async with running_worker(settings):
        await message_reaches(api, later, "sent")
        await message_reaches(api, str(waiting), "sent")
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        calls = (await control.get("/_sim/requests", params={"to": key})).json()["requests"]
    assert [c["body"] for c in sorted(calls, key=lambda c: c["seq"])] == ["first", "second"]
    assert (await api.get(f"/api/v1/messages/{settled}")).status_code == 404


async def test_a_reconciler_pass_purges_and_comes_back_while_behind(
    pool: asyncpg.Pool, redis: Any
) -> None:
    for _ in range(7):
        await inbound(pool, days_ago=40)
    await message(pool, "delivered", days_ago=40)
    metrics = WorkerMetrics()
    reconciler = Reconciler(
        store=MessageStore(pool),
        queue=RedisQueue(redis),
        owner="t",
        interval=1,
        housekeeping=purger(pool, metrics=metrics, batch=3, rounds=1),
    )

    async def tick() -> None:
        await redis.delete(RECONCILE_LOCK)
        await reconciler.tick()

    def purged(kind: Kind) -> float:
        return metrics.registry.get_sample_value("postline_purged_total", {"kind": kind}) or 0

    await tick()  # the first pass purges
    assert (purged(Kind.INBOUND), purged(Kind.MESSAGES)) == (3, 1)
    await tick()  # behind: the next pass too
    await tick()
    assert purged(Kind.INBOUND) == 7
    await inbound(pool, days_ago=40)
    for _ in range(HOUSEKEEPING_EVERY - 3):
        await tick()  # caught up: not again until its turn
    assert purged(Kind.INBOUND) == 7
    await tick()
    assert purged(Kind.INBOUND) == 8


async def plan(pool: asyncpg.Pool, kind: Kind, age_seconds: float) -> str:
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(f"EXPLAIN (COSTS OFF) {purge_sql(kind)}", age_seconds, 1000)
        return "\n".join(r[0] for r in rows)


async def test_each_purge_batch_reads_its_rows_through_an_index(pool: asyncpg.Pool) -> None:
    """On tables of some size (statistics gathered), each batch is an index range,
    never a scan of the table."""
    await pool.execute(
        "INSERT INTO messages (id, type, status, from_addr, to_addr, body, ordering_key, "
        "position, updated_at) "
        "SELECT gen_random_uuid(), 'sms', CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'delivered' "
        "END, '+15551234567', '+15559876543', 'x', 'k' || (g % 500), g, "
        "now() - g * interval '1 minute' FROM generate_series(1, 20000) g"
    )
    await pool.execute(
        "INSERT INTO idempotency_keys (key, request_hash, message_id, created_at) "
        "SELECT 'k' || seq, '\\x00', id, updated_at FROM messages"
    )
    await pool.execute(
        "INSERT INTO inbound_messages (id, provider_message_id, channel, from_addr, to_addr, "
        "body, action, received_at) SELECT gen_random_uuid(), 'SM' || g, 'sms', "
        "'+15559876543', '+15551234567', 'hi', 'none', now() - g * interval '1 minute' "
        "FROM generate_series(1, 20000) g"
    )
    await pool.execute("ANALYZE messages, idempotency_keys, inbound_messages")
    assert "messages_settled_updated_idx" in await plan(pool, Kind.MESSAGES, 86400)
    assert "inbound_messages_received_idx" in await plan(pool, Kind.INBOUND, 86400)
    # Deleting a message deletes its idempotency key: the cascade finds it by index.
    cascade = await pool.fetch(
        "EXPLAIN (COSTS OFF) DELETE FROM idempotency_keys WHERE message_id = $1", uuid.uuid4()
    )
    assert "idempotency_keys_message_idx" in "\n".join(r[0] for r in cascade)
