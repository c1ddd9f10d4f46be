"""The store: directory, mailboxes, messages and blobs, on SQLite or PostgreSQL."""

from postel.store.api import (
    DEFAULT_MAILBOXES,
    Account,
    Alias,
    BlobRef,
    BlobWriter,
    Credentials,
    Delivered,
    Delivery,
    Domain,
    Mailbox,
    RecoveryReport,
    SpecialUse,
    Store,
    StoredMessage,
)

__all__ = [
    "DEFAULT_MAILBOXES",
    "Account",
    "Alias",
    "BlobRef",
    "BlobWriter",
    "Credentials",
    "Delivered",
    "Delivery",
    "Domain",
    "Mailbox",
    "RecoveryReport",
    "SpecialUse",
    "Store",
    "StoredMessage",
]
