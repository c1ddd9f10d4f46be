"""The store: directory, mailboxes, messages and blobs, on SQLite or PostgreSQL."""

from pathlib import Path

from postel.clock import Clock
from postel.store.api import (
    DEFAULT_MAILBOXES,
    UID_MAX,
    Account,
    Alias,
    Appended,
    AppendItem,
    BlobRef,
    BlobWriter,
    Changes,
    CopyResult,
    Credentials,
    Delivered,
    Delivery,
    DirectoryEntry,
    DirectoryLookup,
    Domain,
    FlagMode,
    FlagsResult,
    FlagState,
    InvalidFlag,
    InvalidMailboxName,
    Mailbox,
    MailboxRefused,
    MailboxSnapshot,
    MailboxStatus,
    MessageAttributes,
    MoveResult,
    RecoveryReport,
    SenderPolicy,
    SpecialUse,
    Store,
    StoredMessage,
    UidSet,
)
from postel.store.changes import ChangeHub, ChangeRelay, ChangeSubscription
from postel.store.quota_api import (
    STORAGE_UNIT,
    OverQuota,
    QuotaResource,
    QuotaUsage,
    exceeded,
    storage_octets,
    storage_units,
)
from postel.store.sql import SqlStore


def open_store(database_url: str, blob_dir: Path, *, clock: Clock) -> Store:
    """Build the store for ``database_url`` with large blobs under ``blob_dir``.

    ``sqlite:///path/postel.db`` selects SQLite, ``postgresql+psycopg://user@host/db``
    PostgreSQL. Nothing is touched until ``await store.open()``, which migrates the
    schema and runs recovery. Raises StoreError for an unsupported URL.
    Spec: RELIABILITY.md D1, D2.
    """
    return SqlStore(database_url, blob_dir, clock=clock)


__all__ = [
    "DEFAULT_MAILBOXES",
    "STORAGE_UNIT",
    "UID_MAX",
    "Account",
    "Alias",
    "AppendItem",
    "Appended",
    "BlobRef",
    "BlobWriter",
    "ChangeHub",
    "ChangeRelay",
    "ChangeSubscription",
    "Changes",
    "CopyResult",
    "Credentials",
    "Delivered",
    "Delivery",
    "DirectoryEntry",
    "DirectoryLookup",
    "Domain",
    "FlagMode",
    "FlagState",
    "FlagsResult",
    "InvalidFlag",
    "InvalidMailboxName",
    "Mailbox",
    "MailboxRefused",
    "MailboxSnapshot",
    "MailboxStatus",
    "MessageAttributes",
    "MoveResult",
    "OverQuota",
    "QuotaResource",
    "QuotaUsage",
    "RecoveryReport",
    "SenderPolicy",
    "SpecialUse",
    "SqlStore",
    "Store",
    "StoredMessage",
    "UidSet",
    "exceeded",
    "open_store",
    "storage_octets",
    "storage_units",
]
