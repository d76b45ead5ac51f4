"""Suppressions: recipients that must not be sent to (domain/suppression.py).

One row per (channel, recipient, sender); `sender` is '' for every sender.
`recipient` and `sender` are in `message_recipient` form, so a claim finds a
message's suppression with one primary-key probe per sender form ('' and
its own). `seq` orders the list for keyset pages.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE suppressions (
            channel     text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'email')),
            recipient   text NOT NULL,
            sender      text NOT NULL DEFAULT '',
            reason      text NOT NULL,
            source      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz,
            seq         bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (channel, recipient, sender)
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX suppressions_seq_idx ON suppressions (seq DESC)")
    op.execute("CREATE INDEX suppressions_expires_idx ON suppressions (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE suppressions")
