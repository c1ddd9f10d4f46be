"""DMARC aggregate reporting: evaluations to report, reports received and sent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dmarc_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("period_begin", sa.BigInteger(), nullable=False),
        sa.Column("policy_domain", sa.String(255), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=False),
        sa.Column("header_from", sa.String(255), nullable=False),
        sa.Column("envelope_from", sa.String(255), nullable=True),
        sa.Column("envelope_to", sa.String(255), nullable=True),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("dkim_aligned", sa.Boolean(), nullable=False),
        sa.Column("spf_aligned", sa.Boolean(), nullable=False),
        sa.Column("auth_results", sa.Text(), nullable=False),
        sa.Column("override", sa.String(32), nullable=True),
        sa.Column("override_comment", sa.String(1024), nullable=True),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dmarc_evaluations"),
        sa.UniqueConstraint("key", name="uq_dmarc_evaluations_key"),
    )
    op.create_index(
        "ix_dmarc_evaluations_reported_period_begin",
        "dmarc_evaluations",
        ["reported", "period_begin"],
    )
    op.create_table(
        "dmarc_reports_received",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_name", sa.String(1024), nullable=False),
        sa.Column("report_id", sa.String(1024), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("policy_domain", sa.String(255), nullable=False),
        sa.Column("begin", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("passing", sa.BigInteger(), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dmarc_reports_received"),
        sa.UniqueConstraint(
            "org_name", "report_id", name="uq_dmarc_reports_received_org_name_report_id"
        ),
    )
    op.create_index(
        "ix_dmarc_reports_received_received_at", "dmarc_reports_received", ["received_at"]
    )
    op.create_table(
        "dmarc_reports_sent",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(1024), nullable=False),
        sa.Column("policy_domain", sa.String(255), nullable=False),
        sa.Column("rua", sa.String(1024), nullable=False),
        sa.Column("begin", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dmarc_reports_sent"),
    )
    op.create_index("ix_dmarc_reports_sent_sent_at", "dmarc_reports_sent", ["sent_at"])


def downgrade() -> None:
    op.drop_table("dmarc_reports_sent")
    op.drop_table("dmarc_reports_received")
    op.drop_table("dmarc_evaluations")
