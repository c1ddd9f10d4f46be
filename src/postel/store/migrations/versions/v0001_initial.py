"""Initial schema: counters, domains, accounts, aliases, mailboxes, blobs, messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.bulk_insert(
        sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "uidvalidity", "value": 0}],
    )
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_domains"),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("address_key", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("scram_salt", sa.LargeBinary(), nullable=False),
        sa.Column("scram_iterations", sa.Integer(), nullable=False),
        sa.Column("scram_stored_key", sa.LargeBinary(), nullable=False),
        sa.Column("scram_server_key", sa.LargeBinary(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name="fk_accounts_domain_id_domains"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("address_key", name="uq_accounts_address_key"),
    )
    op.create_index("ix_accounts_domain_id", "accounts", ["domain_id"])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(320), nullable=False),
        sa.Column("source_key", sa.String(320), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name="fk_aliases_domain_id_domains",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_aliases"),
        sa.UniqueConstraint("source_key", name="uq_aliases_source_key"),
    )
    op.create_index("ix_aliases_domain_id", "aliases", ["domain_id"])
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("special_use", sa.String(16), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_mailboxes_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mailboxes"),
        sa.UniqueConstraint("account_id", "name", name="uq_mailboxes_account_id_name"),
    )
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_blobs"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("internal_date", sa.DateTime(timezone=False), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("trace_prefix", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("queue_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_messages_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["blob_key"], ["blobs.key"], name="fk_messages_blob_key_blobs"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("mailbox_id", "uid", name="uq_messages_mailbox_id_uid"),
    )
    op.create_index("ix_messages_blob_key", "messages", ["blob_key"])
    op.create_index("ix_messages_mailbox_id_modseq", "messages", ["mailbox_id", "modseq"])
    op.create_index(
        "uq_messages_mailbox_id_queue_id",
        "messages",
        ["mailbox_id", "queue_id"],
        unique=True,
        sqlite_where=sa.text("queue_id IS NOT NULL"),
        postgresql_where=sa.text("queue_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("blobs")
    op.drop_table("mailboxes")
    op.drop_table("aliases")
    op.drop_table("accounts")
    op.drop_table("domains")
    op.drop_table("counters")
