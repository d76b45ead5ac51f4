"""The route of each attempt: which provider account sent a message (README, Provider failover).

`messages.route` is the route of the latest attempt (of a sent message, the
one that sent it); `message_events.route` is the route of the attempt an
event ends. Both are NULL for rows written before routes existed and for
events that end no attempt. Adding nullable columns rewrites nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ADD COLUMN route text")
    op.execute("ALTER TABLE message_events ADD COLUMN route text")


def downgrade() -> None:
    op.execute("ALTER TABLE message_events DROP COLUMN route")
    op.execute("ALTER TABLE messages DROP COLUMN route")
