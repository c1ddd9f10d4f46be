"""URLAUTH mailbox access keys: one secret per mailbox, owned by its account.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "urlauth_keys",
        sa.Column("mailbox_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("access_key", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_urlauth_keys_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_urlauth_keys_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name="pk_urlauth_keys"),
    )
    op.create_index("ix_urlauth_keys_account_id", "urlauth_keys", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_urlauth_keys_account_id", table_name="urlauth_keys")
    op.drop_table("urlauth_keys")
