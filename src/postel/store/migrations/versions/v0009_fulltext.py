"""Full-text index for SEARCH: documents per blob and per message, and trigram indexes
over both (SQLite: FTS5 tables with the trigram tokenizer, kept by triggers; PostgreSQL:
pg_trgm GIN indexes).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_HEADER = ("subject", "from_field", "to_field", "cc", "bcc", "header")
_DOC = (*_HEADER, "body")


def _text_columns(names: tuple[str, ...]) -> list[sa.Column[str]]:
    return [sa.Column(name, sa.Text(), nullable=True) for name in names]


def upgrade() -> None:
    op.create_table(
        "fulltext_docs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        *_text_columns(_DOC),
        sa.ForeignKeyConstraint(
            ["blob_key"],
            ["blobs.key"],
            name="fk_fulltext_docs_blob_key_blobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fulltext_docs"),
        sa.UniqueConstraint("blob_key", name="uq_fulltext_docs_blob_key"),
    )
    op.create_table(
        "fulltext_messages",
        sa.Column("message_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        *_text_columns(_HEADER),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_fulltext_messages_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_fulltext_messages"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_indexes()
    else:
        _sqlite_fts()


def _postgresql_indexes() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for table, names in (("fulltext_docs", _DOC), ("fulltext_messages", _HEADER)):
        for name in names:
            op.execute(
                f"CREATE INDEX ix_{table}_{name}_trgm ON {table} USING gin ({name} gin_trgm_ops)"
            )


def _sqlite_fts() -> None:
    for fts, table, rowid, names in (
        ("fulltext_fts", "fulltext_docs", "id", _DOC),
        ("fulltext_prefix_fts", "fulltext_messages", "message_id", _HEADER),
    ):
        cols = ", ".join(names)
        new = ", ".join(f"new.{c}" for c in names)
        old = ", ".join(f"old.{c}" for c in names)
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', "
            f"content_rowid='{rowid}', tokenize='trigram case_sensitive 1')"
        )
        remove = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.{rowid}, {old});"
        add = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.{rowid}, {new});"
        op.execute(f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN {add} END")
        op.execute(f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN {remove} END")
        op.execute(f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN {remove} {add} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in ("fulltext_docs", "fulltext_messages"):
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
        op.execute("DROP TABLE IF EXISTS fulltext_fts")
        op.execute("DROP TABLE IF EXISTS fulltext_prefix_fts")
    op.drop_table("fulltext_messages")
    op.drop_table("fulltext_docs")
