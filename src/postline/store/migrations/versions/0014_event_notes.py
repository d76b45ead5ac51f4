"""Notes in a message's history apart from its outcomes.

A SendGrid `deferred` receipt on a sent message is a note in its history
(`store/receipts.py`), written as an event with the message's status,
`sent`. Counted with the outcomes it made every such note one send more in
the throughput, the dashboard's series and the cluster-wide totals. The
counts now leave out `note` events. Rows written before this column existed
are left as they were (events are append-only): the cluster totals never
fall, and the windows they could inflate are minutes long. Adding a column
with a constant default rewrites nothing.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE message_events ADD COLUMN note boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE message_events DROP COLUMN note")
