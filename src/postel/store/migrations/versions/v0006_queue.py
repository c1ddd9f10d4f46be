"""The durable outbound queue: queued messages and their recipients.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "queue_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue_id", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("reverse_path", sa.String(320), nullable=False),
        sa.Column("envid", sa.String(100), nullable=True),
        sa.Column("ret", sa.String(8), nullable=True),
        sa.Column("body", sa.String(16), nullable=True),
        sa.Column("smtputf8", sa.Boolean(), nullable=False),
        sa.Column("requiretls", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("trace_prefix", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_key"], ["blobs.key"], name="fk_queue_messages_blob_key_blobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_queue_messages"),
        sa.UniqueConstraint("queue_id", name="uq_queue_messages_queue_id"),
    )
    op.create_index("ix_queue_messages_blob_key", "queue_messages", ["blob_key"])
    op.create_table(
        "queue_recipients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("orcpt_type", sa.String(64), nullable=True),
        sa.Column("orcpt", sa.String(500), nullable=True),
        sa.Column("notify", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.DateTime(), nullable=False),
        sa.Column("last_attempt", sa.DateTime(), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("leased_by", sa.String(128), nullable=True),
        sa.Column("lease_expires", sa.DateTime(), nullable=True),
        sa.Column("delay_notified", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["queue_messages.id"],
            name="fk_queue_recipients_message_id_queue_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_queue_recipients"),
    )
    op.create_index("ix_queue_recipients_message_id", "queue_recipients", ["message_id"])
    op.create_index(
        "ix_queue_recipients_state_next_attempt", "queue_recipients", ["state", "next_attempt"]
    )
    op.create_index("ix_queue_recipients_domain_state", "queue_recipients", ["domain", "state"])


def downgrade() -> None:
    op.drop_table("queue_recipients")
    op.drop_table("queue_messages")
