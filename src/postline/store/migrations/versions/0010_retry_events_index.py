"""Index for the dashboard's activity: retries of the last minutes.

`GET /api/v1/stats/activity` counts, per time bucket, the attempts that
ended `sent`, `failed` and `retrying`. Migration 0003 indexes the first two
by time; a `retrying` event (a transient provider error: 5xx, 429, timeout)
had no index by time, so counting the errors of the last ten minutes would
read the whole events table. This partial index holds only those events,
so the count reads just the window. Built CONCURRENTLY: the workers keep
writing events while it builds.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_events_retrying_at_idx "
            "ON message_events (at) WHERE status = 'retrying'"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS message_events_retrying_at_idx")
