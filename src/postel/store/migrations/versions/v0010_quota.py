"""Per-account quotas: STORAGE (octets) and MESSAGE limits on accounts, NULL for none,
and the covering index over which usage is computed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("storage_limit", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("message_limit", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_mailbox_id_size", "messages", ["mailbox_id", "size"])


def downgrade() -> None:
    op.drop_index("ix_messages_mailbox_id_size", table_name="messages")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("message_limit")
        batch.drop_column("storage_limit")
