"""The store's public shapes: values and the Store protocol every backend implements.

The store is the only package that speaks SQL or touches blob bytes. Two backends
implement one contract (tests/store/ runs the same suite on both): SQLite (embedded
default, WAL, synchronous=FULL) and PostgreSQL (synchronous_commit=on).

Spec: RELIABILITY.md D1 (durable acknowledgement), ARCHITECTURE.md principle 3.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from postel.errors import StoreError
from postel.ids import AccountId, DomainId, MailboxId, QueueId

if TYPE_CHECKING:
    from postel.store.changes import ChangeHub
    from postel.store.dmarc_api import (
        DmarcEvaluation,
        ReceivedReport,
        SentReport,
    )
    from postel.store.fulltext import Candidates, Clause
    from postel.store.metadata_ops import MetadataDepth, MetadataEntry
    from postel.store.queue_api import (
        BackoffPolicy,
        Lease,
        NewQueuedMessage,
        NewRecipient,
        Outcome,
        QueueEntry,
        QueueFilter,
        QueueMessageId,
        QueueRecipientId,
        SettleResult,
    )
    from postel.store.quota_api import QuotaUsage


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


class SenderPolicy(enum.StrEnum):
    """Which sender addresses (MAIL FROM and From:) an account may submit mail as.

    ``OWN``: addresses that reach the account alone (its address, aliases and
    subaddresses of it); ``DOMAIN``: those, and any address at the account's own domain
    (a shared role address without an alias); ``ANY``: any address (a gateway or list
    manager account). Spec: RFC 6409 §6.1 (the MSA checks the sender; local policy).
    """

    OWN = "own"
    DOMAIN = "domain"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Account:
    id: AccountId
    address: str
    """Primary address, ``local@domain``; local part as given, domain lower-case."""
    domain_id: DomainId
    credentials: Credentials
    created: dt.datetime
    is_admin: bool = False
    sender_policy: SenderPolicy = SenderPolicy.OWN
    """Which senders submission accepts from this account (``SenderPolicy``)."""
    storage_limit: int | None = None
    """Quota on the sum of RFC822.SIZE over all its mailboxes, octets (None: none).
    Spec: RFC 9208 §5.1."""
    message_limit: int | None = None
    """Quota on the number of messages over all its mailboxes (None: none).
    Spec: RFC 9208 §5.2."""


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
    trace_prefix: bytes = b""
    """The per-recipient header block stored before the blob (empty for APPEND)."""
    save_date: dt.datetime | None = None
    """When the message was put into this mailbox (RFC 8514 §2); None where not read."""


class MessageAttributes(NamedTuple):
    """What FETCH of a mailbox's message list needs of one message (``fetch_attributes``):
    no bytes, no trace prefix. ``summary_head`` is the summary JSON, or its beginning
    through the pre-rendered ENVELOPE (``postel.mail.summary.imap_envelope`` reads
    either; a summary without one may come cut anywhere, and the caller then reads the
    whole message). Spec: RFC 9051 §7.5.2."""

    uid: int
    modseq: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    summary_head: str


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What start-up recovery found and repaired (RELIABILITY.md D2)."""

    orphan_blobs_removed: int = 0
    temp_files_removed: int = 0
    missing_blobs: tuple[str, ...] = field(default_factory=tuple)


# -- IMAP shapes ---------------------------------------------------------------------------

UID_MAX = 2**32 - 1
"""UIDs are 32-bit nz-numbers. Spec: RFC 9051 §2.3.1.1, §9 (uniqueid, nz-number)."""


class InvalidMailboxName(StoreError):
    """A mailbox name the store refuses: empty, an empty level, a leading or trailing
    ``/``, a control character or wildcard, too long or too deep. Spec: RFC 9051 §5.1."""


class InvalidFlag(StoreError):
    """A flag that is not a system flag nor a keyword atom. Spec: RFC 9051 §2.3.2, §9 (flag)."""


class MailboxRefused(StoreError):
    """An operation the named mailbox does not allow (deleting INBOX).
    Spec: RFC 9051 §6.3.4."""


class FlagMode(enum.StrEnum):
    """How ``store_flags`` combines the given flags with a message's flags.
    Spec: RFC 9051 §6.4.6 (FLAGS, +FLAGS, -FLAGS)."""

    SET = "set"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class UidSet:
    """A set of UIDs as sorted, disjoint, non-adjacent inclusive ranges ``(low, high)``,
    ``1 <= low <= high <= UID_MAX``; ``UidSet.all()`` is ``1:UID_MAX``.

    Every store method that takes UIDs takes a UidSet: an IMAP layer turns a sequence
    set into one (``UidSet.of(uids)`` or ``UidSet.from_ranges(...)``) and the store
    matches the ranges in SQL without listing every UID. Build it with the class methods
    (they normalise); StoreError for a UID out of range.
    Spec: RFC 9051 §9 (sequence-set, uid-set).
    """

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> UidSet:
        """Normalise ``ranges`` (any order, overlapping, ``low > high`` swapped)."""
        spans = sorted((min(a, b), max(a, b)) for a, b in ranges)
        merged: list[tuple[int, int]] = []
        for low, high in spans:
            if low < 1 or high > UID_MAX:
                raise StoreError(f"UID range {low}:{high} outside 1:{UID_MAX}")
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
                continue
            merged.append((low, high))
        return cls(tuple(merged))

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidSet:
        """The set of the given UIDs."""
        return cls.from_ranges((u, u) for u in uids)

    @classmethod
    def all(cls) -> UidSet:
        """Every UID (``1:*``)."""
        return cls(((1, UID_MAX),))

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect.bisect_right(self.ranges, (uid, UID_MAX))
        return i > 0 and self.ranges[i - 1][0] <= uid <= self.ranges[i - 1][1]

    def __bool__(self) -> bool:
        return bool(self.ranges)


FlagState = tuple[int, frozenset[str], int]
"""``(uid, flags, modseq)`` of one message: a plain tuple so that a 100,000-message
snapshot costs one small object per message. Equal flag sets share one frozenset."""


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """The STATUS items of one mailbox, read in one statement.
    Spec: RFC 9051 §6.3.11; RFC 7162 §3.1.2.1 (HIGHESTMODSEQ)."""

    messages: int
    unseen: int
    """Messages without ``\\Seen``."""
    deleted: int
    """Messages with ``\\Deleted``."""
    size: int
    """Sum of RFC822.SIZE over the mailbox, octets."""
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    recent: int = 0
    """Messages not yet announced as recent to any session (IMAP4rev1 RECENT)."""
    deleted_size: int = 0
    """Sum of RFC822.SIZE over the ``\\Deleted`` messages, octets (STATUS
    DELETED-STORAGE, RFC 9208 §4.2)."""


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """What SELECT needs: the counters and every message's ``(uid, flags, modseq)``,
    ordered by UID, read in one consistent statement. Spec: RFC 9051 §6.3.2."""

    mailbox_id: MailboxId
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: tuple[FlagState, ...]
    recent_uid: int = 0
    """The highest UID already announced as recent (RFC 3501 §2.3.2)."""
    flags_in_use: frozenset[str] = frozenset()
    """Every flag set on some message (the keywords SELECT's FLAGS response lists)."""

    @property
    def version(self) -> tuple[int, int, int, int]:
        """``(uidvalidity, uidnext, highestmodseq, recent_uid)``: every change of the
        messages, their flags or the recent mark raises one of these (RFC 7162 §3.1.2:
        HIGHESTMODSEQ rises with every flag change and expunge), so two snapshots of one
        mailbox with equal versions are equal."""
        return (self.uidvalidity, self.uidnext, self.highestmodseq, self.recent_uid)


@dataclass(frozen=True, slots=True)
class FlagsResult:
    """The outcome of ``store_flags``.

    ``messages``: every message of the UID set that exists and passed UNCHANGEDSINCE,
    with its flags and MODSEQ after the operation (unchanged ones keep their MODSEQ),
    ordered by UID. ``modified``: the UIDs that failed UNCHANGEDSINCE (the MODIFIED
    response code). ``highestmodseq``: the mailbox's value after the operation.
    ``changed``: whether this operation changed any message (its changes then took
    MODSEQ ``highestmodseq``).
    Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3.
    """

    highestmodseq: int
    messages: tuple[FlagState, ...]
    modified: tuple[int, ...] = ()
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Appended:
    """Where APPEND put the message (the APPENDUID response code). Spec: RFC 4315 §3."""

    mailbox_id: MailboxId
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class AppendItem:
    """One message of a (MULTI)APPEND: the committed blob and what IMAP stores with it."""

    mailbox_id: MailboxId
    blob: BlobRef
    internal_date: dt.datetime
    summary: str
    flags: frozenset[str] = frozenset()
    crlf_size: int | None = None
    """The size with every line ended by CRLF, when the caller knows it differs."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """``pairs``: ``(source UID, destination UID)`` in ascending source UID order;
    ``uidvalidity`` and ``modseq`` are the destination's (COPYUID response code; empty
    ``pairs`` when no message matched). Spec: RFC 4315 §3; RFC 9051 §6.4.7."""

    uidvalidity: int
    pairs: tuple[tuple[int, int], ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class MoveResult:
    """A COPY result plus ``source_modseq``, the source's HIGHESTMODSEQ after the
    sources were expunged (unchanged when nothing matched). Spec: RFC 6851 §3.3."""

    uidvalidity: int
    pairs: tuple[tuple[int, int], ...]
    modseq: int
    source_modseq: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What a session that last saw MODSEQ ``since`` must learn, read in one statement.

    ``changed``: every message whose MODSEQ is above ``since`` (new messages and flag
    changes), ``(uid, flags, modseq)`` ordered by UID. ``expunged``: UIDs removed with
    a MODSEQ above ``since``, ascending (may name UIDs the session never saw: a message
    added and removed in between). Spec: RFC 7162 §3.1, §3.2.5 (VANISHED).
    """

    highestmodseq: int
    uidnext: int
    changed: tuple[FlagState, ...]
    expunged: tuple[int, ...]


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
    async def open(self, *, recovery: bool = True, migrate: bool = True) -> RecoveryReport:
        """Create or migrate the schema (Alembic), then run recovery (RELIABILITY.md D2).

        Only the server runs recovery (``recovery=True``): it removes spool files and
        uncommitted blob files, which belong to a running server's transactions when an
        admin command opens the same store (``recovery=False``). ``migrate=False`` skips
        the schema step (and loading Alembic) for a process started by a server that
        has already migrated it: a port-25 worker process (docs/adr/0005)."""
        ...

    async def close(self) -> None: ...

    async def listen_for_changes(self) -> None:
        """Receive other processes' mailbox changes on ``changes`` (PostgreSQL
        LISTEN/NOTIFY; nothing to do on SQLite). Call after ``open`` in a server."""
        ...

    # -- directory --
    async def add_domain(self, name: str) -> Domain: ...
    async def list_domains(self) -> Sequence[Domain]: ...
    async def get_domain(self, name: str) -> Domain | None: ...
    async def remove_domain(self, name: str) -> None:
        """Remove a domain with no accounts left; raises StoreError otherwise."""
        ...

    async def add_account(
        self,
        address: str,
        credentials: Credentials,
        *,
        is_admin: bool = False,
        sender_policy: SenderPolicy = SenderPolicy.OWN,
        storage_limit: int | None = None,
        message_limit: int | None = None,
    ) -> Account:
        """Create the account and its DEFAULT_MAILBOXES in one transaction. The domain
        must exist (NotFound otherwise). ``storage_limit`` (octets) and
        ``message_limit`` are its quota (None: no limit; StoreError for a negative one).
        Spec: RFC 9208 §5."""
        ...

    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]: ...
    async def get_account(self, address: str) -> Account | None:
        """Look up by primary address, case-insensitively."""
        ...

    async def get_account_by_id(self, account_id: AccountId) -> Account | None: ...
    async def set_credentials(self, address: str, credentials: Credentials) -> None: ...
    async def set_sender_policy(self, address: str, policy: SenderPolicy) -> Account:
        """Set which senders the account (by primary address, case-insensitively) may
        submit as; returns the updated account. NotFound for an unknown account.
        Spec: RFC 6409 §6.1."""
        ...

    async def remove_account(self, address: str) -> None:
        """Remove the account, its mailboxes and messages, and aliases' targets to it."""
        ...

    # -- quotas (quota_api.py) --
    async def quota_usage(self, account_id: AccountId) -> QuotaUsage:
        """The account's usage (octets and messages over all its mailboxes, computed in
        one statement) and limits. NotFound. Spec: RFC 9208 §4.2-§4.3, §5."""
        ...

    async def quota_usages(
        self, account_ids: Collection[AccountId] | None = None, *, limited_only: bool = False
    ) -> Mapping[AccountId, QuotaUsage]:
        """Usage and limits of ``account_ids`` (None: every account) in one statement
        per chunk; with ``limited_only``, only the accounts that have a limit (an
        unlimited account then costs an index lookup, no usage). Unknown accounts are
        left out. Spec: RFC 9208 §5."""
        ...

    async def set_quota(
        self, account_id: AccountId, storage: int | None, messages: int | None
    ) -> QuotaUsage:
        """Set the account's STORAGE limit (octets) and MESSAGE limit; None removes a
        limit, 0 allows nothing. Returns the usage after. NotFound, StoreError (a
        negative or too large limit). Lowering a limit below the usage removes
        nothing: further additions are refused. Spec: RFC 9208 §4.3 (SETQUOTA)."""
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

    # -- IMAP: mailboxes --
    @property
    def changes(self) -> ChangeHub:
        """The in-process change signal: published after every committed write to a
        mailbox (deliveries included). Spec: RFC 9051 §5.2, §7.5 (untagged updates)."""
        ...

    async def get_mailbox_by_id(self, mailbox_id: MailboxId) -> Mailbox | None: ...

    async def create_mailbox(
        self, account_id: AccountId, name: str, special_use: SpecialUse | None = None
    ) -> Mailbox:
        """A new empty mailbox: fresh UIDVALIDITY, UIDNEXT 1, HIGHESTMODSEQ 1. Superior
        names are not created. AlreadyExists, InvalidMailboxName, NotFound (account).
        Spec: RFC 9051 §6.3.4; RFC 6154 §3 (CREATE-SPECIAL-USE)."""
        ...

    async def delete_mailbox(self, account_id: AccountId, name: str) -> None:
        """Remove the mailbox and its messages (inferior names stay; subscriptions stay).
        MailboxRefused for INBOX, NotFound. Spec: RFC 9051 §6.3.5."""
        ...

    async def rename_mailbox(self, account_id: AccountId, old: str, new: str) -> Mailbox:
        """Rename ``old`` and its inferior names (``old/x`` becomes ``new/x``), keeping
        UIDVALIDITY; renaming INBOX moves its messages into a new mailbox ``new`` and
        leaves INBOX empty (its inferiors stay). Returns the mailbox now named ``new``.
        NotFound, AlreadyExists (any target name taken), InvalidMailboxName.
        Spec: RFC 9051 §6.3.6."""
        ...

    async def set_subscribed(self, account_id: AccountId, name: str, subscribed: bool) -> None:
        """Add or remove ``name`` from the subscriptions (the mailbox need not exist;
        removing an absent name is a no-op). MailboxRefused when a new one would pass
        names.SUBSCRIPTIONS_PER_ACCOUNT_MAX. Spec: RFC 9051 §6.3.7, §6.3.8."""
        ...

    async def list_subscriptions(self, account_id: AccountId) -> Sequence[str]:
        """Subscribed names, sorted. Spec: RFC 9051 §6.3.7."""
        ...

    async def mailbox_status(self, mailbox_id: MailboxId) -> MailboxStatus:
        """STATUS items in one statement. NotFound. Spec: RFC 9051 §6.3.11."""
        ...

    # -- IMAP: messages --
    async def select_mailbox(self, mailbox_id: MailboxId) -> MailboxSnapshot:
        """Counters and every ``(uid, flags, modseq)`` in one statement. NotFound.
        Spec: RFC 9051 §6.3.2."""
        ...

    async def claim_recent(self, mailbox_id: MailboxId, uid: int) -> int:
        """Raise the recent watermark to ``uid`` atomically; return the previous one (the
        caller's session holds \\Recent for the UIDs above it). NotFound.
        Spec: RFC 3501 §2.3.2."""
        ...

    async def fetch_messages(self, mailbox_id: MailboxId, uids: UidSet) -> Sequence[StoredMessage]:
        """The messages of ``uids`` that exist, ordered by UID (absent UIDs are skipped).
        Spec: RFC 9051 §6.4.5."""
        ...

    async def fetch_message_data(
        self, mailbox_id: MailboxId, uid: int
    ) -> tuple[StoredMessage, bytes] | None:
        """One message's row and its octets (``read_message``) read together; None when
        the message does not exist, NotFound when its blob file is missing. What a
        client's FETCH BODY[] of one message needs. Spec: RFC 9051 §6.4.5."""
        ...

    async def fetch_attributes(
        self, mailbox_id: MailboxId, uids: UidSet
    ) -> Sequence[MessageAttributes]:
        """``fetch_messages`` reduced to the attributes of a message list (see
        MessageAttributes), ordered by UID. Spec: RFC 9051 §6.4.5, §7.5.2."""
        ...

    async def store_flags(
        self,
        mailbox_id: MailboxId,
        uids: UidSet,
        mode: FlagMode,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> FlagsResult:
        """Set, add or remove ``flags``; every changed message takes one new MODSEQ (the
        same for the whole operation). ``\\Recent`` is ignored. InvalidFlag, NotFound.
        Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3 (UNCHANGEDSINCE)."""
        ...

    async def expunge(self, mailbox_id: MailboxId, uids: UidSet | None = None) -> Sequence[int]:
        """Remove the messages flagged ``\\Deleted`` (only those in ``uids`` when given:
        UID EXPUNGE), record them as expunged with one new MODSEQ; returns their UIDs,
        ascending. Spec: RFC 9051 §6.4.3, §6.4.9; RFC 7162 §3.2.10."""
        ...

    async def delete_messages(
        self, mailbox_id: MailboxId, uids: UidSet, *, seen: UidSet | None = None
    ) -> Sequence[int]:
        """Remove exactly the messages of ``uids`` (whatever their flags), recorded as
        expunged, and add ``\\Seen`` to those of ``seen``, all in one transaction;
        returns the removed UIDs. NotFound. Spec: RFC 1939 §6 (UPDATE state)."""
        ...

    async def message_sizes(self, mailbox_id: MailboxId) -> Sequence[tuple[int, int]]:
        """``(uid, size)`` of every message by UID, the size counted with CRLF line ends
        (RFC822.SIZE unless an APPEND said otherwise). Spec: RFC 1939 §5 (STAT), §11."""
        ...

    async def acquire_maildrop(self, account_id: AccountId, holder: str, lease: float) -> bool:
        """Take the account's maildrop lock for ``lease`` seconds (renew by calling again
        with the same ``holder``); False when another live holder has it. A holder that
        dies loses the lock when its lease ends. Spec: RFC 1939 §8 (exclusive access)."""
        ...

    async def release_maildrop(self, account_id: AccountId, holder: str) -> None:
        """Give the lock up if ``holder`` has it."""
        ...

    async def append(
        self,
        mailbox_id: MailboxId,
        blob: BlobRef,
        *,
        internal_date: dt.datetime,
        summary: str,
        flags: frozenset[str] = frozenset(),
    ) -> Appended:
        """Store ``blob`` (from ``blob_writer().commit()``) as a new message; durable at
        return. ``summary`` is ``postel.mail.summary`` JSON made by the caller.
        NotFound (mailbox, or a file blob never committed), InvalidFlag.
        Spec: RFC 9051 §6.3.12; RFC 4315 §3 (APPENDUID)."""
        ...

    async def append_many(self, items: Sequence[AppendItem]) -> Sequence[Appended]:
        """Append every item in ONE transaction: all are stored or none (MULTIAPPEND).
        NotFound, InvalidFlag, StoreError. Spec: RFC 3502 §6.3.11."""
        ...

    async def copy_messages(
        self, source_id: MailboxId, uids: UidSet, target_id: MailboxId
    ) -> CopyResult:
        """Copy (same blob, flags and INTERNALDATE) into ``target_id``; new UIDs in
        ascending source order. NotFound. Spec: RFC 9051 §6.4.7; RFC 4315 §3."""
        ...

    async def move_messages(
        self, source_id: MailboxId, uids: UidSet, target_id: MailboxId
    ) -> MoveResult:
        """Copy, then expunge the sources, in ONE transaction. NotFound.
        Spec: RFC 6851 §3.3."""
        ...

    async def changes_since(self, mailbox_id: MailboxId, modseq: int) -> Changes:
        """Everything above ``modseq`` (see Changes). NotFound. Spec: RFC 7162 §3.1."""
        ...

    # -- outbound queue (queue_api.py) --
    async def enqueue(
        self, message: NewQueuedMessage, recipients: Sequence[NewRecipient]
    ) -> QueueMessageId:
        """Queue ``message`` (its blob from ``blob_writer().commit()``) for remote
        ``recipients``, all due now; durable at return. The blob stays referenced (not
        collected) while the message is queued. A ``queue_id`` already queued returns
        the existing id. StoreError (bad values), NotFound (a file blob never
        committed). Spec: RFC 5321 §4.5.4; RFC 3461 §4."""
        ...

    async def lease(
        self,
        worker: str,
        now: dt.datetime,
        *,
        limit: int,
        lease_for: float,
        per_domain_max: int,
    ) -> Sequence[Lease]:
        """Lease at most ``limit`` groups of due recipients to ``worker`` for
        ``lease_for`` seconds: each Lease is one message's recipients at one domain.
        Due: queued or deferred with ``next_attempt <= now``, or leased with the lease
        ended. Never-tried recipients come before expired leases before deferred ones;
        at most ``per_domain_max`` live leases per domain. Safe across processes
        (PostgreSQL: FOR UPDATE SKIP LOCKED). StoreError for bad arguments.
        Spec: RFC 5321 §4.5.4.1."""
        ...

    async def settle(
        self,
        lease: Lease,
        outcomes: Mapping[QueueRecipientId, Outcome],
        now: dt.datetime,
        policy: BackoffPolicy = ...,
        *,
        dsn_passed_on: Collection[QueueRecipientId] = (),
    ) -> SettleResult:
        """Record each recipient's outcome: delivered and failed are final; deferred
        counts an attempt and waits per ``policy`` (failed once past its lifetime).
        Only recipients still held by ``lease`` are touched (others are reported
        ``lost``); recipients without an outcome are due again at once. Durable at
        return. StoreError for an outcome of a recipient not in the lease.

        ``dsn_passed_on``: recipients sent to a server that took the DSN extension
        (NOTIFY and ORCPT went with them); those delivered lose SUCCESS from their
        NOTIFY in the same transaction, since the success report is now the next
        server's to send (``QueueEntry.delivered_with_notice`` then leaves them out).
        Spec: RFC 5321 §4.5.4.1; RFC 3464 §2.3; RFC 3461 §5.2.1-5.2.2."""
        ...

    def open_queued_message(
        self, message_id: QueueMessageId, *, chunk_size: int = ...
    ) -> AsyncIterator[bytes]:
        """The bytes to send: trace_prefix, then the blob, in chunks of at most
        ``chunk_size`` octets with bounded memory. NotFound. Spec: RFC 5321 §4.4."""
        ...

    async def queue_list(self, which: QueueFilter | None = None) -> Sequence[QueueEntry]:
        """Queued messages with a recipient matching ``which`` (all by default), oldest
        first, each with all its recipients (``postel queue list``)."""
        ...

    async def queue_show(self, queue_id: str) -> QueueEntry | None:
        """The message queued as ``queue_id`` (``postel queue show``), or None."""
        ...

    async def queue_hold(self, queue_id: str) -> int:
        """Hold its waiting recipients; returns how many. NotFound."""
        ...

    async def queue_release(self, queue_id: str) -> int:
        """Make its held recipients due now; returns how many. NotFound."""
        ...

    async def queue_retry_now(self, queue_id: str | None = None) -> int:
        """Make waiting recipients of ``queue_id`` (None: of every message, ``postel
        queue flush``) due now; returns how many. NotFound."""
        ...

    async def queue_delete(self, queue_id: str) -> None:
        """Remove the message without any DSN. NotFound."""
        ...

    async def due_delay_notices(
        self, now: dt.datetime, policy: BackoffPolicy = ..., *, limit: int = 100
    ) -> Sequence[QueueEntry]:
        """Recipients owed a delay notice (see queue_admin.due_delay_notices), grouped
        by message. Spec: RFC 3461 §4.1; RFC 3464 §2.3.3."""
        ...

    async def mark_delay_notified(self, recipient_ids: Sequence[QueueRecipientId]) -> None:
        """Record that their delay notice was sent."""
        ...

    async def lease_holders(self) -> Sequence[str]:
        """Names of the workers holding leased recipients (live or expired leases)."""
        ...

    async def release_leases(self, holders: Collection[str]) -> int:
        """End now the leases held by ``holders`` (workers known to be gone, e.g. a
        process killed on this node): their recipients become due at once. Returns how
        many recipients were freed. Spec: RFC 5321 §6.1; RELIABILITY.md D2."""
        ...

    async def finished_messages(self, *, limit: int = 100) -> Sequence[QueueEntry]:
        """Messages whose recipients are all delivered or failed, with what a DSN needs.
        Spec: RFC 3464 §2; RFC 3461 §4.1."""
        ...

    async def forget_finished(self, message_ids: Sequence[QueueMessageId]) -> int:
        """Remove those messages that are finished; returns how many (their blobs can
        then be collected)."""
        ...

    # -- DMARC aggregate reporting (dmarc_api.py) --
    async def add_dmarc_evaluations(self, evaluations: Sequence[DmarcEvaluation]) -> None:
        """Add each evaluation's count to its record of its period (one transaction;
        safe across processes). Spec: RFC 9990 §2.1."""
        ...

    async def claim_dmarc_evaluations(self, before: int) -> Sequence[DmarcEvaluation]:
        """Mark reported, and return, the unreported evaluations of periods that began
        before ``before`` (seconds since the epoch); one caller gets each row."""
        ...

    async def add_received_dmarc_report(self, report: ReceivedReport) -> bool:
        """Keep a received report's summary; False for a duplicate (same org_name
        and report_id). Spec: RFC 9990 §2.5.2 (Handling of Duplicates)."""
        ...

    async def list_received_dmarc_reports(self, limit: int = 100) -> Sequence[ReceivedReport]:
        """Received report summaries, newest first (at most DMARC_LIST_MAX)."""
        ...

    async def add_sent_dmarc_report(self, report: SentReport) -> None:
        """Record a report sent to one reporting URI."""
        ...

    async def list_sent_dmarc_reports(self, limit: int = 100) -> Sequence[SentReport]:
        """Sent reports, newest first (at most DMARC_LIST_MAX)."""
        ...

    async def prune_dmarc(self, before: dt.datetime) -> int:
        """Forget reported evaluations and report summaries older than ``before``;
        returns how many rows went."""
        ...

    async def sweep_orphan_blobs(self) -> int:
        """Give back the space of blobs that no message or queue entry names: their
        rows first (the last copy of a message was expunged, its queue entry finished;
        inline bytes go with the row), then the files that no row names and that nobody
        wrote or reused for the store's grace period (an hour; a day when nodes share
        the blob directory): those rows' files and what a refused message left. Returns
        how many files went. Safe next to any other call. Spec: RELIABILITY.md D2."""
        ...

    # -- full-text index (fulltext.py) --
    async def index_pending(self, limit: int = 200) -> int:
        """Index up to ``limit`` messages (capped at fulltext.FULLTEXT_BATCH_MAX) whose
        text is not yet in the full-text index, or was extracted by an older
        EXTRACT_VERSION; returns how many (0 when none is pending). Run it in a
        background task after deliveries and APPENDs until it returns 0; it is
        idempotent and safe next to any other call. Spec: RFC 9051 §6.4.4."""
        ...

    async def search_candidates(
        self, mailbox_id: MailboxId, clauses: Sequence[Clause], *, uids: UidSet | None = None
    ) -> Candidates | None:
        """Narrow SEARCH string keys (AND-ed ``clauses``) in one mailbox, limited to
        ``uids`` if given: every message the SEARCH evaluator matches is in
        ``matched | unindexed``; the caller re-checks ``matched`` and scans
        ``unindexed``. None when no clause can narrow (needles under 3 characters):
        scan everything. Spec: RFC 9051 §6.4.4."""
        ...

    async def reindex_all(self) -> int:
        """Drop the whole full-text index (every message becomes pending; SEARCH scans
        until ``index_pending`` has caught up); returns how many blob documents went."""
        ...

    # -- URLAUTH mailbox access keys (urlauth_ops.py) --
    async def urlauth_key(self, mailbox_id: MailboxId) -> bytes | None:
        """The URLAUTH mailbox access key of ``mailbox_id``, or None when none exists
        (never made, reset, or the mailbox is gone). Spec: RFC 4467 §3."""
        ...

    async def create_urlauth_key(
        self, account_id: AccountId, mailbox_id: MailboxId, key: bytes
    ) -> bytes:
        """Install ``key`` as the mailbox access key unless one exists; returns the key
        in force (the existing one wins a race). Spec: RFC 4467 §6.1."""
        ...

    async def reset_urlauth_keys(self, account_id: AccountId, mailbox_id: MailboxId | None) -> int:
        """Forget the key of ``mailbox_id`` (every key of the account when None), so
        every URL authorized with it stops working; returns how many went.
        Spec: RFC 4467 §6.2."""
        ...

    # -- METADATA entries (metadata_ops.py) --
    async def get_metadata(
        self,
        account_id: AccountId,
        mailbox_id: MailboxId | None,
        entries: Sequence[str],
        depth: MetadataDepth,
    ) -> Sequence[MetadataEntry]:
        """The existing entries among ``entries`` (case-insensitive names) of the
        server (``mailbox_id`` None) or of one mailbox, with their descendants to
        ``depth``, sorted by lower-cased name. Spec: RFC 5464 §4.2."""
        ...

    async def set_metadata(
        self,
        account_id: AccountId,
        mailbox_id: MailboxId | None,
        changes: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """Set each ``(name, value)`` of the server or one mailbox (value None removes
        the entry), all or none. MetadataValueTooLarge (over METADATA_VALUE_MAX
        octets), MetadataTooMany (the account over METADATA_ENTRIES_MAX).
        Spec: RFC 5464 §4.3."""
        ...
