"""The store's public shapes: values and the Store protocol every backend implements.

The store is the only package that speaks SQL or touches blob bytes. Two backends
implement one contract (tests/store/ runs the same suite on both): SQLite (embedded
default, WAL, synchronous=FULL) and PostgreSQL (synchronous_commit=on).

Spec: RELIABILITY.md D1 (durable acknowledgement), ARCHITECTURE.md principle 3.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from postel.ids import AccountId, DomainId, MailboxId, QueueId


class SpecialUse(enum.StrEnum):
    """Special-use mailbox attributes. Spec: RFC 6154 §2."""

    ALL = "\\All"
    ARCHIVE = "\\Archive"
    DRAFTS = "\\Drafts"
    FLAGGED = "\\Flagged"
    JUNK = "\\Junk"
    SENT = "\\Sent"
    TRASH = "\\Trash"


DEFAULT_MAILBOXES: tuple[tuple[str, SpecialUse | None], ...] = (
    ("INBOX", None),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Junk", SpecialUse.JUNK),
    ("Trash", SpecialUse.TRASH),
    ("Archive", SpecialUse.ARCHIVE),
)
"""Every account gets these mailboxes when it is created. Spec: RFC 6154 §2."""


@dataclass(frozen=True, slots=True)
class Domain:
    id: DomainId
    name: str
    """Lower-case A-label (IDNA) form, e.g. ``example.org``."""
    created: dt.datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a password becomes before it is stored; the password itself never is.

    ``password_hash`` is an argon2id PHC string. The SCRAM fields are the salted keys of
    RFC 5802 §3 for SCRAM-SHA-256 (RFC 7677), so SASL works for every account.
    """

    password_hash: str
    scram_salt: bytes
    scram_iterations: int
    scram_stored_key: bytes
    scram_server_key: bytes


@dataclass(frozen=True, slots=True)
class Account:
    id: AccountId
    address: str
    """Primary address, ``local@domain``; local part as given, domain lower-case."""
    domain_id: DomainId
    credentials: Credentials
    created: dt.datetime
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Alias:
    """``source`` (``local@domain``, or ``@domain`` for a catch-all) to ``targets``."""

    source: str
    targets: tuple[str, ...]
    created: dt.datetime


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """What one lookup key names: ``local@domain`` (local part lower-cased, domain a
    lower-case A-label) or ``@domain`` (the catch-all). An alias and an account may share
    a key (recipient resolution prefers the alias); neither means nobody by that name."""

    key: str
    alias_targets: tuple[str, ...] | None = None
    """The alias's targets when ``key`` is an alias source."""
    account_id: AccountId | None = None
    account_address: str | None = None
    """The account's primary address (as stored) when ``key`` is an account."""


@dataclass(frozen=True, slots=True)
class DirectoryLookup:
    """The answer to ``Store.lookup_addresses``: one entry per key asked, in order."""

    domains: frozenset[str]
    """The domains of the keys that exist (lower-case A-labels)."""
    entries: tuple[DirectoryEntry, ...]


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: MailboxId
    account_id: AccountId
    name: str
    """Full hierarchical name, UTF-8, separator ``/``; ``INBOX`` is always upper-case."""
    special_use: SpecialUse | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A content-addressed blob: SHA-256 of the bytes (hex) and their length in octets.

    ``inline`` carries the bytes of a small blob (``size <= limits.BLOB_INLINE_MAX``)
    from ``BlobWriter.commit()`` to ``Store.deliver()``, which makes them durable inside
    the delivery transaction. It is ``None`` for a blob that is already durable (a file,
    or a row read back from the store) and takes no part in equality or hashing.
    """

    key: str
    size: int
    inline: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to put into one account's mailbox in the delivery transaction.

    ``trace_prefix`` is the per-recipient header block postel adds (Return-Path,
    Delivered-To, Received); the stored message is ``trace_prefix + blob``, so one blob
    serves every recipient. ``summary`` is the parsed structure (ENVELOPE and
    BODYSTRUCTURE data, JSON text) computed once per message at delivery; it describes
    the blob, so readers shift the top-level header by ``len(trace_prefix)``.
    """

    account_id: AccountId
    mailbox: str
    blob: BlobRef
    trace_prefix: bytes
    internal_date: dt.datetime
    summary: str
    flags: frozenset[str] = frozenset()
    queue_id: QueueId | None = None
    """Idempotency key with ``account_id`` and ``mailbox``: a replayed delivery of the same
    queue entry is not stored twice (RELIABILITY.md D1)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where a Delivery landed."""

    account_id: AccountId
    mailbox_id: MailboxId
    uidvalidity: int
    uid: int
    modseq: int
    duplicate: bool = False
    """True when the same queue_id was already delivered there (nothing new stored)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message in one mailbox, without its bytes."""

    mailbox_id: MailboxId
    uid: int
    modseq: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    """RFC822.SIZE: len(trace_prefix) + blob size."""
    blob: BlobRef
    summary: str
    queue_id: QueueId | None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What start-up recovery found and repaired (RELIABILITY.md D2)."""

    orphan_blobs_removed: int = 0
    temp_files_removed: int = 0
    missing_blobs: tuple[str, ...] = field(default_factory=tuple)


class BlobWriter(Protocol):
    """Receives one message's bytes as they arrive; memory stays bounded.

    Bytes beyond ``limits.BLOB_SPILL_THRESHOLD`` are spooled to a temporary file.
    """

    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    async def commit(self) -> BlobRef:
        """Make the bytes durable (fsync of file and directory for large blobs; small
        blobs become durable with the delivery transaction that references them)."""
        ...

    def abort(self) -> None:
        """Throw the bytes away (message refused or connection lost)."""
        ...


class Store(Protocol):
    """Everything postel keeps. Every method is safe to call concurrently.

    Errors: ``postel.errors.NotFound``, ``AlreadyExists``, ``StoreError``.
    """

    # -- life cycle --
    async def open(self, *, recovery: bool = True) -> RecoveryReport:
        """Create or migrate the schema (Alembic), then run recovery (RELIABILITY.md D2).

        Only the server runs recovery (``recovery=True``): it removes spool files and
        uncommitted blob files, which belong to a running server's transactions when an
        admin command opens the same store (``recovery=False``)."""
        ...

    async def close(self) -> None: ...

    # -- directory --
    async def add_domain(self, name: str) -> Domain: ...
    async def list_domains(self) -> Sequence[Domain]: ...
    async def get_domain(self, name: str) -> Domain | None: ...
    async def remove_domain(self, name: str) -> None:
        """Remove a domain with no accounts left; raises StoreError otherwise."""
        ...

    async def add_account(
        self, address: str, credentials: Credentials, *, is_admin: bool = False
    ) -> Account:
        """Create the account and its DEFAULT_MAILBOXES in one transaction. The domain
        must exist (NotFound otherwise)."""
        ...

    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]: ...
    async def get_account(self, address: str) -> Account | None:
        """Look up by primary address, case-insensitively."""
        ...

    async def get_account_by_id(self, account_id: AccountId) -> Account | None: ...
    async def set_credentials(self, address: str, credentials: Credentials) -> None: ...
    async def remove_account(self, address: str) -> None:
        """Remove the account, its mailboxes and messages, and aliases' targets to it."""
        ...

    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias: ...
    async def list_aliases(self, domain: str | None = None) -> Sequence[Alias]: ...
    async def get_alias(self, source: str) -> Alias | None: ...
    async def remove_alias(self, source: str) -> None: ...
    async def lookup_addresses(self, keys: Sequence[str]) -> DirectoryLookup:
        """In ONE read statement (per ``limits``-bounded chunk of keys): whether each
        key's domain exists, and the alias and the account named by each key (lookup
        form: ``local@domain`` lower-cased, or ``@domain``). Keys are compared exactly,
        lower-cased; a key longer than an address can be names nothing."""
        ...

    @property
    def directory_version(self) -> int:
        """A counter that changes whenever this store object changes domains, accounts
        or aliases (not when another process does): lets in-process caches of the
        directory drop stale answers at once."""
        ...

    # -- mailboxes and messages --
    async def list_mailboxes(self, account_id: AccountId) -> Sequence[Mailbox]: ...
    async def get_mailbox(self, account_id: AccountId, name: str) -> Mailbox | None: ...
    async def list_messages(
        self, mailbox_id: MailboxId, *, uid_from: int = 1
    ) -> Sequence[StoredMessage]: ...
    async def read_message(self, mailbox_id: MailboxId, uid: int) -> bytes:
        """The stored message: trace_prefix + blob bytes. NotFound if absent."""
        ...

    def open_message(self, mailbox_id: MailboxId, uid: int) -> AsyncIterator[bytes]:
        """The stored message as an async iterator of chunks (trace_prefix first), for
        streaming large messages with bounded memory. NotFound if absent."""
        ...

    # -- delivery (the durability point) --
    def blob_writer(self) -> BlobWriter: ...

    async def read_blob(self, ref: BlobRef) -> bytes:
        """The bytes of a committed blob (file-backed blobs only need be supported
        before the delivery commit; inline ones after it). NotFound if absent."""
        ...

    async def deliver(self, deliveries: Sequence[Delivery]) -> Sequence[Delivered]:
        """Put every delivery in ONE committed transaction, shared with concurrent callers
        (group commit). Returns only after the commit is durable; inline blobs are written
        in that same transaction. Raises StoreError if the transaction failed (nothing of
        it is visible then). Spec: RELIABILITY.md D1."""
        ...
