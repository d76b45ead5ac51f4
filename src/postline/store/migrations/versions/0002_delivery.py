"""Idempotency keys, and the reconciler's ordered scan of open messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key          text PRIMARY KEY,
            request_hash bytea NOT NULL,
            message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            created_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)")
    # The reconciler walks open messages in acceptance order, a page at a time,
    # so that a rebuilt FIFO keeps the order the messages were accepted in.
    op.execute(
        "CREATE INDEX messages_open_seq_idx ON messages (seq) "
        "WHERE status IN ('scheduled', 'pending', 'sending', 'retrying')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX messages_open_seq_idx")
    op.execute("DROP TABLE idempotency_keys")
