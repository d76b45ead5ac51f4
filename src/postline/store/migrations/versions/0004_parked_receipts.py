"""Delivery receipts that arrived before the send was recorded.

A provider can report on a message before the worker has written `sent`
(and, for Twilio, before the message's SID is even stored). Such a receipt
is kept here, durably, and applied once the message is `sent`; see
`postline/store/receipts.py`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE parked_receipts (
            id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            provider            text NOT NULL,
            -- Known when the provider echoes Postline's id or the SID was already stored.
            message_id          uuid REFERENCES messages (id) ON DELETE CASCADE,
            provider_message_id text,
            status              text NOT NULL
                CHECK (status IN ('delivered', 'undelivered', 'failed')),
            error_code          text,
            error_message       text,
            detail              text NOT NULL,
            received_at         timestamptz NOT NULL DEFAULT now(),
            CHECK (message_id IS NOT NULL OR provider_message_id IS NOT NULL)
        )
        """
    )
    # Deleting a message cascades here; without the index that is a scan per row.
    op.execute(
        "CREATE INDEX parked_receipts_message_idx ON parked_receipts (message_id) "
        "WHERE message_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE parked_receipts")
