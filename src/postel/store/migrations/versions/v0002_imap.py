"""IMAP: subscriptions (names that need not exist) and expunged UIDs with their MODSEQ.

Existing subscriptions are copied from ``mailboxes.subscribed``, which stays as a mirror
of the subscriptions table for existing mailboxes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_subscriptions_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name="pk_subscriptions"),
    )
    op.execute(
        "INSERT INTO subscriptions (account_id, name) "
        "SELECT account_id, name FROM mailboxes WHERE subscribed"
    )
    op.create_table(
        "expunged",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_expunged_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "uid", name="pk_expunged"),
    )
    op.create_index("ix_expunged_mailbox_id_modseq", "expunged", ["mailbox_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_expunged_mailbox_id_modseq", table_name="expunged")
    op.drop_table("expunged")
    op.drop_table("subscriptions")
