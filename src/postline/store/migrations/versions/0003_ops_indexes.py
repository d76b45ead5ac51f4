"""Index for the operations views: sends and failures of the last minute.

`/api/v1/stats` reports throughput over the last 60 s by counting the
`sent` and `failed` events in that window. The index is partial (only those
two statuses, about one entry per message) and on the append-only events
table, so unlike an index on `messages.sent_at` it gets no new entry on every
later update of the message row. `(at, status)` lets the count be an
index-only scan of just the window.

Built CONCURRENTLY so that adding it to a large, live table does not block
the workers' event writes while it builds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_events_outcome_at_idx "
            "ON message_events (at, status) WHERE status IN ('sent', 'failed')"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS message_events_outcome_at_idx")
