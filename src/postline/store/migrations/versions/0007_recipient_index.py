"""The list filter `to` finds a recipient however its address was written.

An email recipient is stored as the client sent it (`Bob <Bob@Example.com>`
or `bob@example.com`), and mail systems treat addresses without regard to
case, so the filter compares the bare address, lower-cased.
`message_recipient` gives that form (phone numbers are stored bare E.164
already) and the index on it keeps the filter one index range per page.
Its address pattern is `domain.addresses.email`'s: an accepted display
name holds no `<` or `>`, so the address is what stands between the last
pair. Only ASCII letters are folded (the "C" collation), so the result
does not depend on the database's locale.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        CREATE FUNCTION message_recipient(kind text, addr text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            SELECT CASE WHEN kind = 'email'
                THEN lower(coalesce(btrim(substring(addr FROM '<([^<>]+)>\s*$')), btrim(addr))
                           COLLATE "C")
                ELSE addr END
        $$
        """
    )
    op.execute(
        "CREATE INDEX messages_recipient_seq_idx "
        "ON messages (message_recipient(type, to_addr), seq DESC)"
    )
    op.execute("DROP INDEX messages_to_seq_idx")


def downgrade() -> None:
    op.execute("CREATE INDEX messages_to_seq_idx ON messages (to_addr, seq DESC)")
    op.execute("DROP INDEX messages_recipient_seq_idx")
    op.execute("DROP FUNCTION message_recipient(text, text)")
