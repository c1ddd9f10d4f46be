"""SAVEDATE: when each message was put into its mailbox; existing rows get their
internal date. Spec: RFC 8514 §2.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("save_date", sa.DateTime(timezone=False), nullable=True))
    op.execute("UPDATE messages SET save_date = internal_date")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("save_date")
