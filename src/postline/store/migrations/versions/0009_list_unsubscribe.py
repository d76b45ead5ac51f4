"""An email may ask for one-click unsubscribe headers (RFC 8058).

`list_unsubscribe` is the send field: the SendGrid adapter adds a signed
`List-Unsubscribe` link and `List-Unsubscribe-Post` (domain/unsubscribe.py).
A constant default, so adding the column rewrites nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ADD COLUMN list_unsubscribe boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN list_unsubscribe")
