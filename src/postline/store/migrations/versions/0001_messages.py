"""Messages and their append-only event history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE messages (
            id                  uuid PRIMARY KEY,
            -- acceptance order: per-key FIFO order and keyset paging both follow it
            seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            type                text NOT NULL
                CHECK (type IN ('sms', 'mms', 'whatsapp', 'email')),
            status              text NOT NULL
                CHECK (status IN ('scheduled', 'pending', 'sending', 'retrying', 'sent',
                                  'delivered', 'undelivered', 'failed', 'cancelled')),
            from_addr           text NOT NULL,
            to_addr             text NOT NULL,
            body                text,
            subject             text,
            html                text,
            attachments         jsonb NOT NULL DEFAULT '[]',
            ordering_key        text NOT NULL,
            send_at             timestamptz,
            metadata            jsonb NOT NULL DEFAULT '{}',
            callback_url        text,
            attempts            integer NOT NULL DEFAULT 0,
            -- attempts a retry budget is counted from: POST /retry gives a fresh budget
            attempts_base       integer NOT NULL DEFAULT 0,
            error_code          text,
            error_message       text,
            provider            text,
            provider_message_id text,
            next_attempt_at     timestamptz,
            idempotency_key     text,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            sent_at             timestamptz,
            delivered_at        timestamptz
        )
        """
    )
    # The reconciler's scan: open messages by age, and nothing else.
    op.execute(
        "CREATE INDEX messages_open_idx ON messages (status, updated_at) "
        "WHERE status IN ('scheduled', 'pending', 'sending', 'retrying')"
    )
    # List filters, all newest first by seq (keyset paging).
    op.execute("CREATE INDEX messages_status_seq_idx ON messages (status, seq DESC)")
    op.execute("CREATE INDEX messages_type_seq_idx ON messages (type, seq DESC)")
    op.execute("CREATE INDEX messages_to_seq_idx ON messages (to_addr, seq DESC)")
    op.execute("CREATE INDEX messages_key_seq_idx ON messages (ordering_key, seq)")
    # Receipts find their message by the provider's id.
    op.execute(
        "CREATE INDEX messages_provider_id_idx ON messages (provider_message_id) "
        "WHERE provider_message_id IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE message_events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            status      text NOT NULL,
            attempt     integer NOT NULL,
            error_code  text,
            error_message text,
            detail      text,
            at          timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )
    op.execute("CREATE INDEX message_events_message_idx ON message_events (message_id, id)")
    # Events are history: refuse edits so no code path can rewrite it.
    op.execute(
        """
        CREATE FUNCTION message_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'message_events is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER message_events_no_update BEFORE UPDATE ON message_events "
        "FOR EACH ROW EXECUTE FUNCTION message_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE message_events")
    op.execute("DROP FUNCTION message_events_append_only()")
    op.execute("DROP TABLE messages")
