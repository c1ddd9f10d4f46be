"""METADATA: server and mailbox entries, per account. Spec: RFC 5464 §3.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "metadata_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_metadata_entries_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_metadata_entries_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_metadata_entries"),
    )
    op.create_index("ix_metadata_entries_account_id", "metadata_entries", ["account_id"])
    op.create_index("ix_metadata_entries_mailbox_id", "metadata_entries", ["mailbox_id"])


def downgrade() -> None:
    op.drop_index("ix_metadata_entries_mailbox_id", table_name="metadata_entries")
    op.drop_index("ix_metadata_entries_account_id", table_name="metadata_entries")
    op.drop_table("metadata_entries")
