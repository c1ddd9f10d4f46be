"""The store: directory, mailboxes, messages and blobs, on SQLite or PostgreSQL.

``SqlStore`` (and with it SQLAlchemy and the database drivers) is imported on first
use, so that a process that only needs the store's types (a port-25 worker,
postel.server.worker_store) does not load them.
"""

from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from postel.store.sql import SqlStore


def open_store(database_url: str, blob_dir: Path, *, clock: Clock) -> Store:
    """Build the store for ``database_url`` with large blobs under ``blob_dir``.

    ``sqlite:///path/postel.db`` selects SQLite, ``postgresql+psycopg://user@host/db``
    PostgreSQL. Nothing is touched until ``await store.open()``, which migrates the
    schema and runs recovery. Raises StoreError for an unsupported URL.
    Spec: RELIABILITY.md D1, D2.
    """
    from postel.store.sql import SqlStore

    return SqlStore(database_url, blob_dir, clock=clock)


def __getattr__(name: str) -> object:
    """``SqlStore``, imported on first use (PEP 562)."""
    if name == "SqlStore":
        from postel.store.sql import SqlStore

        return SqlStore
    raise AttributeError(name)


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
