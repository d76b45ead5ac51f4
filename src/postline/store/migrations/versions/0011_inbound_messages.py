"""Inbound messages, and client callbacks that carry one instead of a message.

`inbound_messages` holds what recipients sent to Postline's numbers; the
unique `provider_message_id` makes Twilio's retries of one webhook one row.
Addresses are E.164 (`whatsapp:` is the channel). `seq` orders the list for
keyset pages.

A `message.received` callback rides the same outbox as the status ones
(same retries, signing and headers): a `callbacks` row now names either a
message or an inbound message, and an inbound one's body is written with
the row, since nothing about it changes later.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE inbound_messages (
            id                  uuid PRIMARY KEY,
            provider_message_id text NOT NULL UNIQUE,
            channel             text NOT NULL CHECK (channel IN ('sms', 'mms', 'whatsapp')),
            from_addr           text NOT NULL,
            to_addr             text NOT NULL,
            body                text NOT NULL,
            media               jsonb NOT NULL DEFAULT '[]',
            keyword             text,
            action              text NOT NULL,
            reply               text,
            received_at         timestamptz NOT NULL DEFAULT now(),
            seq                 bigint GENERATED ALWAYS AS IDENTITY
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX inbound_messages_seq_idx ON inbound_messages (seq DESC)")
    op.execute("CREATE INDEX inbound_messages_from_idx ON inbound_messages (from_addr, seq DESC)")
    op.execute("CREATE INDEX inbound_messages_to_idx ON inbound_messages (to_addr, seq DESC)")
    op.execute("ALTER TABLE callbacks ALTER COLUMN message_id DROP NOT NULL")
    op.execute(
        "ALTER TABLE callbacks ADD COLUMN inbound_id uuid "
        "REFERENCES inbound_messages (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE callbacks ADD CONSTRAINT callbacks_one_subject "
        "CHECK ((message_id IS NULL) <> (inbound_id IS NULL))"
    )
    op.execute("CREATE INDEX callbacks_inbound_idx ON callbacks (inbound_id)")


def downgrade() -> None:
    op.execute("DELETE FROM callbacks WHERE inbound_id IS NOT NULL")
    op.execute("ALTER TABLE callbacks DROP CONSTRAINT callbacks_one_subject")
    op.execute("ALTER TABLE callbacks DROP COLUMN inbound_id")
    op.execute("ALTER TABLE callbacks ALTER COLUMN message_id SET NOT NULL")
    op.execute("DROP TABLE inbound_messages")
