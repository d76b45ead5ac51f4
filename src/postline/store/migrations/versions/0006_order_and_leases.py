"""PostgreSQL decides per-key order; a claim is a lease its holder renews.

`position` is a message's place in its ordering key's queue. It comes from
one sequence, drawn when the message joins the queue: at acceptance for an
immediate send, when it falls due for a scheduled one, when a failed one is
retried by hand (back of the queue). A request answered 2xx has committed
its position, so any message accepted after that answer draws a larger one.

A message may be claimed only while no other open message of its key is
ahead of it (smaller position) and none is being sent. The partial index
below answers that in one index probe per claimed message.

`held_by` / `lease_until` say which worker holds a `sending` message and
until when; the holder renews the lease while its provider call or status
write is pending, and only an expired lease can be taken over.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE messages_position_seq AS bigint")
    op.execute(
        "ALTER TABLE messages ADD COLUMN position bigint, "
        "ADD COLUMN held_by text, ADD COLUMN lease_until timestamptz"
    )
    op.execute("UPDATE messages SET position = seq WHERE status <> 'scheduled'")
    # A row written without one joins the back of its key's queue.
    op.execute(
        "ALTER TABLE messages ALTER COLUMN position SET DEFAULT nextval('messages_position_seq')"
    )
    op.execute(
        "SELECT setval('messages_position_seq', "
        "(SELECT coalesce(max(seq), 0) + 1 FROM messages), false)"
    )
    # Every message that is in its key's queue has a place in it.
    op.execute(
        "ALTER TABLE messages ADD CONSTRAINT messages_position_known "
        "CHECK (position IS NOT NULL OR status IN ('scheduled', 'cancelled'))"
    )
    op.execute(
        "CREATE INDEX messages_key_open_idx ON messages (ordering_key, position) "
        "WHERE status IN ('pending', 'sending', 'retrying')"
    )
    op.execute(
        "CREATE INDEX messages_scheduled_idx ON messages (send_at) WHERE status = 'scheduled'"
    )
    # Claims of one key serialise on an advisory lock, taken in hash order so
    # that two claims over overlapping keys can never deadlock. Each statement
    # of a plpgsql function sees a fresh snapshot, so a claim that waited here
    # sees what the claim before it committed.
    op.execute(
        """
        CREATE FUNCTION postline_lock_keys(ids uuid[]) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            h bigint;
        BEGIN
            FOR h IN
                SELECT DISTINCT hashtextextended(ordering_key, 0) AS h
                FROM messages WHERE id = ANY(ids) ORDER BY h
            LOOP
                PERFORM pg_advisory_xact_lock(h);
            END LOOP;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION postline_lock_keys(uuid[])")
    op.execute("DROP INDEX messages_scheduled_idx")
    op.execute("DROP INDEX messages_key_open_idx")
    op.execute("ALTER TABLE messages DROP CONSTRAINT messages_position_known")
    op.execute(
        "ALTER TABLE messages DROP COLUMN position, DROP COLUMN held_by, DROP COLUMN lease_until"
    )
    op.execute("DROP SEQUENCE messages_position_seq")
