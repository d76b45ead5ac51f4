"""Housekeeping: indexes so each purge batch reads only its rows, and a tally of
the outcomes it deletes.

Housekeeping (`domain/retention.py`) deletes a batch at a time, oldest
first: settled messages by when they last changed, inbound messages by when
they came. Without an index each batch would read the whole table to find
its thousand rows. The messages' index is partial, on the settled statuses
only (the purge's own condition, so the planner can prove it), so open
messages, the busy rows, are never in it.

Deleting a message cascades to its idempotency key (migration 0002), and
the key's reference had no index: each deleted message would read the
whole idempotency_keys table (a day of keyed sends). Events, callbacks and
parked receipts have theirs already (0001, 0005, 0004).

Built CONCURRENTLY, like 0003: the tables are live and large.

`purged_outcomes` keeps the cluster-wide outcome totals counting: they
count outcome events (`store/stats.py`), and a purged message takes its
events along. The purge adds them here in the statement that deletes them,
and the totals add this table, so no reading is ever lower than an earlier
one (Prometheus would take the drop for a counter reset).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_INDEXES = {
    "messages_settled_updated_idx": "messages (updated_at) "
    "WHERE status IN ('sent', 'delivered', 'undelivered', 'failed', 'cancelled')",
    "inbound_messages_received_idx": "inbound_messages (received_at)",
    "idempotency_keys_message_idx": "idempotency_keys (message_id)",
}


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE purged_outcomes (
            channel text NOT NULL,
            status  text NOT NULL,
            n       bigint NOT NULL,
            PRIMARY KEY (channel, status)
        )
        """
    )
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    with op.get_context().autocommit_block():
        for name, target in _INDEXES.items():
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in _INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("DROP TABLE purged_outcomes")
