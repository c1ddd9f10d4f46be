"""The store's tables, in SQLAlchemy Core, for SQLite and PostgreSQL alike.

The Alembic revisions in ``postel/store/migrations/versions`` create exactly this
schema; a test compares the migrated database with this metadata.

Spec: ARCHITECTURE.md principle 3 (one durability point per message).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ADDRESS_MAX = 320
"""Longest address stored: 64-octet local part, "@", 255-octet domain. Spec: RFC 5321 §4.5.3.1."""
DOMAIN_MAX = 255
"""Longest domain name. Spec: RFC 5321 §4.5.3.1.2."""
MAILBOX_NAME_MAX = 1024
"""Longest mailbox name stored, in octets of UTF-8 (local policy)."""
QUEUE_ID_MAX = 64
"""Longest queue id stored (ids.new_queue_id makes 10-20 symbols)."""
BLOB_KEY_LEN = 64
"""Hex SHA-256."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime, stored as a naive UTC timestamp on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
"""Named monotonic counters (``uidvalidity``)."""

domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(DOMAIN_MAX), nullable=False, unique=True),
    Column("created", UtcDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("address", String(ADDRESS_MAX), nullable=False),
    Column("address_key", String(ADDRESS_MAX), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("scram_salt", LargeBinary, nullable=False),
    Column("scram_iterations", Integer, nullable=False),
    Column("scram_stored_key", LargeBinary, nullable=False),
    Column("scram_server_key", LargeBinary, nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created", UtcDateTime, nullable=False),
    Column("sender_policy", String(16), nullable=False, server_default="own"),
    Column("storage_limit", BigInteger, nullable=True),
    Column("message_limit", BigInteger, nullable=True),
)
"""``storage_limit`` (octets, the sum of RFC822.SIZE) and ``message_limit`` (messages)
are the account's quota over all its mailboxes; NULL is no limit. Usage is computed
from ``messages`` (store/quota_ops.py). Spec: RFC 9208 §5."""

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "domain_id",
        Integer,
        ForeignKey("domains.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("source", String(ADDRESS_MAX), nullable=False),
    Column("source_key", String(ADDRESS_MAX), nullable=False, unique=True),
    Column("targets", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
)
"""``targets`` is a JSON array of addresses."""

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(MAILBOX_NAME_MAX), nullable=False),
    Column("special_use", String(16), nullable=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),
    Column("subscribed", Boolean, nullable=False),
    Column("recent_uid", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("account_id", "name"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("key", String(BLOB_KEY_LEN), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=True),
)
"""``data`` NULL means the bytes live in a file named by ``key`` under the blob dir.
Rows that no message references are removed by start-up recovery and by the running
sweep (``recovery.delete_unreferenced``)."""

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "mailbox_id",
        Integer,
        ForeignKey("mailboxes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("flags", Text, nullable=False),
    Column("internal_date", UtcDateTime, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("blob_key", String(BLOB_KEY_LEN), ForeignKey("blobs.key"), nullable=False, index=True),
    Column("trace_prefix", LargeBinary, nullable=False),
    Column("summary", Text, nullable=False),
    Column("queue_id", String(QUEUE_ID_MAX), nullable=True),
    Column("crlf_size", BigInteger, nullable=True),
    Column("save_date", UtcDateTime, nullable=True),
    UniqueConstraint("mailbox_id", "uid"),
)
"""``flags`` is the space-separated, sorted set of IMAP flags (atoms contain no space,
RFC 9051 §9 ``flag``). ``crlf_size`` is the size with every line ended by CRLF (what
POP3 counts and sends, RFC 1939 §11) when it differs from ``size``: only messages
APPENDed with bare CR or LF, or without a final line end; NULL otherwise. ``save_date``
is when the message was put into this mailbox (delivery, APPEND, COPY, MOVE; RFC 8514
§2); rows older than migration 0012 have their internal date."""

Index(
    "uq_messages_mailbox_id_queue_id",
    messages.c.mailbox_id,
    messages.c.queue_id,
    unique=True,
    sqlite_where=messages.c.queue_id.is_not(None),
    postgresql_where=messages.c.queue_id.is_not(None),
)
Index("ix_messages_mailbox_id_modseq", messages.c.mailbox_id, messages.c.modseq)
Index("ix_messages_mailbox_id_size", messages.c.mailbox_id, messages.c.size)
"""Covers the quota usage of a mailbox (``SUM(size)``, ``COUNT(*)``) without reading the
table rows (store/quota_ops.py)."""

subscriptions = Table(
    "subscriptions",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(MAILBOX_NAME_MAX), primary_key=True),
)
"""Subscribed mailbox names, which need not exist and outlive DELETE. Spec: RFC 9051
§6.3.7. ``mailboxes.subscribed`` mirrors it for the mailboxes that exist."""

expunged = Table(
    "expunged",
    metadata,
    Column(
        "mailbox_id",
        Integer,
        ForeignKey("mailboxes.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
)
"""UIDs removed from a mailbox and the MODSEQ of their removal, for sessions catching up
(``changes_since``) and QRESYNC VANISHED. Spec: RFC 7162 §3.2.5, §3.2.10."""

Index("ix_expunged_mailbox_id_modseq", expunged.c.mailbox_id, expunged.c.modseq)

maildrop_locks = Table(
    "maildrop_locks",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("holder", String(128), nullable=False),
    Column("expires", UtcDateTime, nullable=False),
)
"""One POP3 session's exclusive hold on an account's maildrop, with a lease so that a
crashed node's lock ends by itself (RFC 1939 §8)."""

ENVID_STORED_MAX = 100
"""Longest ENVID stored, in characters. Spec: RFC 3461 §4.4."""
ORCPT_STORED_MAX = 500
"""Longest ORCPT address stored, in characters. Spec: RFC 3461 §4.2."""

queue_messages = Table(
    "queue_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue_id", String(QUEUE_ID_MAX), nullable=False, unique=True),
    Column("blob_key", String(BLOB_KEY_LEN), ForeignKey("blobs.key"), nullable=False, index=True),
    Column("reverse_path", String(ADDRESS_MAX), nullable=False),
    Column("envid", String(ENVID_STORED_MAX), nullable=True),
    Column("ret", String(8), nullable=True),
    Column("body", String(16), nullable=True),
    Column("smtputf8", Boolean, nullable=False),
    Column("requiretls", Boolean, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("trace_prefix", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
)
"""One queued SMTP transaction for remote recipients. ``blob_key`` keeps the blob from
start-up collection while the message is queued. ``reverse_path`` is ``""`` for the null
sender; ``envid``, ``ret`` and ``body`` are the MAIL parameters (RFC 3461 §4.3-4.4,
RFC 6152), NULL when absent."""

queue_recipients = Table(
    "queue_recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "message_id",
        Integer,
        ForeignKey("queue_messages.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("address", String(ADDRESS_MAX), nullable=False),
    Column("domain", String(DOMAIN_MAX), nullable=False),
    Column("orcpt_type", String(64), nullable=True),
    Column("orcpt", String(ORCPT_STORED_MAX), nullable=True),
    Column("notify", String(32), nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", UtcDateTime, nullable=False),
    Column("last_attempt", UtcDateTime, nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("leased_by", String(128), nullable=True),
    Column("lease_expires", UtcDateTime, nullable=True),
    Column("delay_notified", Boolean, nullable=False),
)
"""One recipient of a queued message. ``domain`` is the destination (lower-case A-label).
``notify`` is the comma-separated NOTIFY set (``NEVER``; NULL when the client gave none,
RFC 3461 §4.1). A leased recipient has ``leased_by`` and ``lease_expires`` and its
``next_attempt`` equals ``lease_expires``, so one index finds every due recipient,
expired leases included."""

Index(
    "ix_queue_recipients_state_next_attempt",
    queue_recipients.c.state,
    queue_recipients.c.next_attempt,
)
Index("ix_queue_recipients_domain_state", queue_recipients.c.domain, queue_recipients.c.state)

DMARC_TEXT_MAX = 1024
"""Longest free text stored for DMARC reporting (override comments, report ids)."""

dmarc_evaluations = Table(
    "dmarc_evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(BLOB_KEY_LEN), nullable=False, unique=True),
    Column("period_begin", BigInteger, nullable=False),
    Column("policy_domain", String(DOMAIN_MAX), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("header_from", String(DOMAIN_MAX), nullable=False),
    Column("envelope_from", String(DOMAIN_MAX), nullable=True),
    Column("envelope_to", String(DOMAIN_MAX), nullable=True),
    Column("disposition", String(16), nullable=False),
    Column("dkim_aligned", Boolean, nullable=False),
    Column("spf_aligned", Boolean, nullable=False),
    Column("auth_results", Text, nullable=False),
    Column("override", String(32), nullable=True),
    Column("override_comment", String(DMARC_TEXT_MAX), nullable=True),
    Column("policy", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("reported", Boolean, nullable=False),
)
"""DMARC evaluations of received mail, one row per distinct aggregate-report record
(``key``: SHA-256 of the identifying columns) and reporting period, with its message
``count``. ``auth_results`` and ``policy`` are JSON texts owned by dmarc_ops.
Spec: RFC 9990 §2.1."""

Index(
    "ix_dmarc_evaluations_reported_period_begin",
    dmarc_evaluations.c.reported,
    dmarc_evaluations.c.period_begin,
)

dmarc_reports_received = Table(
    "dmarc_reports_received",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_name", String(DMARC_TEXT_MAX), nullable=False),
    Column("report_id", String(DMARC_TEXT_MAX), nullable=False),
    Column("email", String(ADDRESS_MAX), nullable=False),
    Column("policy_domain", String(DOMAIN_MAX), nullable=False),
    Column("begin", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("records", Integer, nullable=False),
    Column("messages", BigInteger, nullable=False),
    Column("passing", BigInteger, nullable=False),
    Column("raw_size", Integer, nullable=False),
    Column("recipient", String(ADDRESS_MAX), nullable=False),
    Column("received_at", UtcDateTime, nullable=False, index=True),
    UniqueConstraint("org_name", "report_id"),
)
"""Aggregate reports received for our domains, summarised (``passing``: messages with
an aligned pass). One row per (org_name, report_id): duplicates are dropped.
Spec: RFC 9990 §2.5.2 (Handling of Duplicates)."""

dmarc_reports_sent = Table(
    "dmarc_reports_sent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", String(DMARC_TEXT_MAX), nullable=False),
    Column("policy_domain", String(DOMAIN_MAX), nullable=False),
    Column("rua", String(DMARC_TEXT_MAX), nullable=False),
    Column("begin", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("records", Integer, nullable=False),
    Column("messages", BigInteger, nullable=False),
    Column("sent_at", UtcDateTime, nullable=False, index=True),
)
"""Aggregate reports this installation sent, one row per reporting URI."""

fulltext_docs = Table(
    "fulltext_docs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "blob_key",
        String(BLOB_KEY_LEN),
        ForeignKey("blobs.key", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("version", Integer, nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("subject", Text, nullable=True),
    Column("from_field", Text, nullable=True),
    Column("to_field", Text, nullable=True),
    Column("cc", Text, nullable=True),
    Column("bcc", Text, nullable=True),
    Column("header", Text, nullable=True),
    Column("body", Text, nullable=True),
)
"""The full-text document of one blob (store/fulltext.py): casefolded header fields,
header and body text; NULL text when ``complete`` is false (not extracted). Removed
with its blob. The trigram index over it is backend-specific and outside this metadata:
on SQLite the FTS5 table ``fulltext_fts`` (external content, rowid = ``id``, kept by
triggers), on PostgreSQL GIN ``gin_trgm_ops`` indexes ``ix_fulltext_docs_*_trgm``."""

fulltext_messages = Table(
    "fulltext_messages",
    metadata,
    Column(
        "message_id",
        Integer,
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("version", Integer, nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("subject", Text, nullable=True),
    Column("from_field", Text, nullable=True),
    Column("to_field", Text, nullable=True),
    Column("cc", Text, nullable=True),
    Column("bcc", Text, nullable=True),
    Column("header", Text, nullable=True),
)
"""One indexed message: its trace prefix's casefolded header text (empty for APPEND);
``complete`` false when the message must be scanned. Removed with its message."""

# -- URLAUTH (RFC 4467) ------------------------------------------------------------------

urlauth_keys = Table(
    "urlauth_keys",
    metadata,
    Column(
        "mailbox_id",
        Integer,
        ForeignKey("mailboxes.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("access_key", LargeBinary, nullable=False),
)
"""The URLAUTH mailbox access key of one mailbox (secret, 32 random octets), created
by the first GENURLAUTH and removed by RESETKEY or with its mailbox. Spec: RFC 4467
§3 (mailbox access key), §6.2 (RESETKEY)."""

# -- METADATA (RFC 5464) -----------------------------------------------------------------

metadata_entries = Table(
    "metadata_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "mailbox_id",
        Integer,
        ForeignKey("mailboxes.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
)
"""One METADATA entry: ``name`` lower-cased (``/private/...`` or ``/shared/...``),
``value`` its octets; ``mailbox_id`` NULL for a server entry. Entries follow their
mailbox through RENAME (same id) and go with it on DELETE (cascade). Writers lock the
account row, so names stay unique per (account, mailbox). Spec: RFC 5464 §3, §4.3."""
