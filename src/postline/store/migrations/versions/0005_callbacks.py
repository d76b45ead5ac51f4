"""Client callbacks: an outbox filled by a trigger on every callback-worthy status.

The trigger sits on the status column itself, so every path that moves a
message (worker, cancel, receipts, manual retry) records its callback in the
same transaction as the change: no path can forget one, and none is lost.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE callbacks (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            status          text NOT NULL,
            url             text NOT NULL,
            -- the body is fixed at the first attempt, so every retry is byte-identical
            body            bytea,
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error      text,
            delivered_at    timestamptz,
            gave_up_at      timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX callbacks_due_idx ON callbacks (next_attempt_at) "
        "WHERE delivered_at IS NULL AND gave_up_at IS NULL"
    )
    op.execute("CREATE INDEX callbacks_message_idx ON callbacks (message_id)")
    op.execute(
        """
        CREATE FUNCTION messages_enqueue_callback() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.callback_url IS NOT NULL
               AND NEW.status IS DISTINCT FROM OLD.status
               AND NEW.status IN ('sent', 'delivered', 'undelivered', 'failed', 'cancelled') THEN
                INSERT INTO callbacks (message_id, status, url)
                VALUES (NEW.id, NEW.status, NEW.callback_url);
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER messages_callback AFTER UPDATE OF status ON messages "
        "FOR EACH ROW EXECUTE FUNCTION messages_enqueue_callback()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER messages_callback ON messages")
    op.execute("DROP FUNCTION messages_enqueue_callback()")
    op.execute("DROP TABLE callbacks")
