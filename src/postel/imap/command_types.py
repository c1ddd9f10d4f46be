"""The IMAP commands as frozen dataclasses (import them from ``postel.imap.commands``).

Every command carries its ``tag``. UID variants are the same classes with ``uid=True``
(sequence sets then hold UIDs). Mailbox names are already decoded (see
``postel.imap.commands``).

Spec: RFC 9051 §6; the extensions cited on each class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from postel.imap.fetch_items import FetchItem
from postel.imap.search_keys import SearchKey
from postel.imap.sequence import SequenceSet
from postel.imap.sort import SortCriterion
from postel.imap.thread import ThreadAlgorithm

__all__ = [
    "Authenticate",
    "CancelUpdate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Expunge",
    "Fetch",
    "Id",
    "Idle",
    "List",
    "ListReturn",
    "ListSelect",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "PartialRange",
    "Rename",
    "Search",
    "SearchReturn",
    "Select",
    "SelectParam",
    "Sort",
    "StartTls",
    "Status",
    "StatusItem",
    "Store",
    "StoreMode",
    "Subscribe",
    "Thread",
    "Unselect",
    "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command: the client's ``tag``. Spec: RFC 9051 §2.2.1."""

    tag: str


@dataclass(frozen=True, slots=True)
class Capability(Command):
    """CAPABILITY. Spec: RFC 9051 §6.1.1."""


@dataclass(frozen=True, slots=True)
class Check(Command):
    """``CHECK``: a checkpoint of the selected mailbox (IMAP4rev1; postel writes every
    change durably at once, so it is a NOOP). Spec: RFC 3501 §6.4.1."""


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """NOOP. Spec: RFC 9051 §6.1.2."""


@dataclass(frozen=True, slots=True)
class Logout(Command):
    """LOGOUT. Spec: RFC 9051 §6.1.3."""


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    """STARTTLS. The core reads nothing more until ``tls_established`` or
    ``starttls_refused``. Spec: RFC 9051 §6.2.1."""


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """AUTHENTICATE mechanism [initial-response]. ``mechanism`` is upper-cased;
    ``initial_response`` is the decoded SASL-IR (``b""`` for ``=``), None when absent.
    Spec: RFC 9051 §6.2.2, RFC 4959 §3."""

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login(Command):
    """LOGIN userid password (UTF-8). Never log ``password``. Spec: RFC 9051 §6.2.3."""

    userid: str
    password: str

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, userid={self.userid!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """ENABLE capability... (upper-cased). Spec: RFC 9051 §6.3.1, RFC 5161 §3.1."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SelectParam:
    """One SELECT/EXAMINE parameter: upper-cased ``name`` (``CONDSTORE``, ``QRESYNC``)
    and the raw text of its value, e.g. ``(67890007 20050715194045000 41:211)``.
    Spec: RFC 4466 §2.1, RFC 7162 §3.1.8, §3.2.5."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT mailbox, or EXAMINE when ``examine`` (read-only).
    Spec: RFC 9051 §6.3.2, §6.3.3, RFC 4466 §2.1."""

    mailbox: str
    params: tuple[SelectParam, ...] = ()
    examine: bool = False


@dataclass(frozen=True, slots=True)
class Create(Command):
    """CREATE mailbox [(USE (attrs))]. Spec: RFC 9051 §6.3.4, RFC 6154 §3."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    """DELETE mailbox. Spec: RFC 9051 §6.3.5."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    """RENAME existing new. Spec: RFC 9051 §6.3.6."""

    mailbox: str
    new_mailbox: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    """SUBSCRIBE mailbox. Spec: RFC 9051 §6.3.7."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    """UNSUBSCRIBE mailbox. Spec: RFC 9051 §6.3.8."""

    mailbox: str


class ListSelect(StrEnum):
    """LIST selection options. Spec: RFC 5258 §3.1, RFC 6154 §5.1."""

    SUBSCRIBED = "SUBSCRIBED"
    REMOTE = "REMOTE"
    RECURSIVEMATCH = "RECURSIVEMATCH"
    SPECIAL_USE = "SPECIAL-USE"


class ListReturn(StrEnum):
    """LIST return options (STATUS is ``List.status_items``). Spec: RFC 5258 §3.2,
    RFC 6154 §5.2."""

    SUBSCRIBED = "SUBSCRIBED"
    CHILDREN = "CHILDREN"
    SPECIAL_USE = "SPECIAL-USE"


class StatusItem(StrEnum):
    """STATUS data items. Spec: RFC 9051 §6.3.11, RFC 3501 §6.3.10 (RECENT),
    RFC 7162 §3.1.6 (HIGHESTMODSEQ), RFC 7889 (APPENDLIMIT), RFC 8474 §4.1 (MAILBOXID),
    RFC 9208 §4.2 (DELETED-STORAGE, with QUOTA=RES-STORAGE)."""

    MESSAGES = "MESSAGES"
    UIDNEXT = "UIDNEXT"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    DELETED = "DELETED"
    SIZE = "SIZE"
    RECENT = "RECENT"
    HIGHESTMODSEQ = "HIGHESTMODSEQ"
    APPENDLIMIT = "APPENDLIMIT"
    MAILBOXID = "MAILBOXID"
    DELETED_STORAGE = "DELETED-STORAGE"
    """Octets an EXPUNGE of the mailbox would free: RFC822.SIZE summed over its
    ``\\Deleted`` messages (as SIZE is over all of them)."""


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)].
    ``status_items`` is set by ``RETURN (STATUS (...))``. ``extended`` is True when any
    LIST-EXTENDED syntax was used. Spec: RFC 9051 §6.3.9, RFC 5258 §3, RFC 5819 §2."""

    reference: str
    patterns: tuple[str, ...]
    selection: tuple[ListSelect, ...] = ()
    returns: tuple[ListReturn, ...] = ()
    status_items: tuple[StatusItem, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """LSUB reference pattern (IMAP4rev1 clients). Spec: RFC 3501 §6.3.9."""

    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    """NAMESPACE. Spec: RFC 9051 §6.3.10."""


@dataclass(frozen=True, slots=True)
class Status(Command):
    """STATUS mailbox (items). Spec: RFC 9051 §6.3.11."""

    mailbox: str
    items: tuple[StatusItem, ...]


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """IDLE: call ``begin_idle`` after sending ``+ idling``. Spec: RFC 9051 §6.3.13."""


@dataclass(frozen=True, slots=True)
class Close(Command):
    """CLOSE. Spec: RFC 9051 §6.4.1."""


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    """UNSELECT. Spec: RFC 9051 §6.4.2."""


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE set (``uids`` not None). Spec: RFC 9051 §6.4.3, §6.4.9."""

    uids: SequenceSet | None = None


class SearchReturn(StrEnum):
    """SEARCH and SORT RETURN options. UPDATE and CONTEXT belong to CONTEXT=SEARCH /
    CONTEXT=SORT, PARTIAL too (its range is the command's ``partial``).
    Spec: RFC 9051 §6.4.4, RFC 5182 (SAVE), RFC 5267 §4.1 (UPDATE, CONTEXT), §4.4
    (PARTIAL), RFC 9394 §3 (PARTIAL)."""

    MIN = "MIN"
    MAX = "MAX"
    ALL = "ALL"
    COUNT = "COUNT"
    SAVE = "SAVE"
    UPDATE = "UPDATE"
    CONTEXT = "CONTEXT"
    PARTIAL = "PARTIAL"


@dataclass(frozen=True, slots=True)
class PartialRange:
    """A PARTIAL range: 1-based positions ``first <= last`` in the result; both
    negative (``-1`` the last result, ``first >= last`` in value, e.g. -1:-100) for a
    range counted from the end. ``4:2`` is kept as ``2:4``.
    Spec: RFC 5267 §4.4 (partial-range), RFC 9394 §3.1 (partial-range-last)."""

    first: int
    last: int

    def text(self) -> str:
        """The range as the ESEARCH PARTIAL response repeats it, e.g. ``2:4``."""
        return f"{self.first}:{self.last}"

    def pick(self, count: int) -> tuple[int, int]:
        """The 0-based slice ``[start, stop)`` of a result of ``count`` items."""
        if self.first > 0:
            return min(self.first - 1, count), min(self.last, count)
        start = max(count + self.last, 0)
        stop = max(count + self.first + 1, 0)
        return start, stop


@dataclass(frozen=True, slots=True)
class Search(Command):
    """SEARCH [RETURN (opts)] [CHARSET c] keys. ``key`` is the conjunction of the
    criteria (an AndKey). ``returns`` is None without RETURN (IMAP4rev1 ``* SEARCH``
    answer), else the options (``()`` meaning ALL, answered by ESEARCH). ``charset`` is
    upper-cased (UTF-8 or US-ASCII). ``partial`` is set with RETURN (PARTIAL range).
    Spec: RFC 9051 §6.4.4, RFC 4731, RFC 5182, RFC 5267 §4."""

    key: SearchKey
    charset: str | None = None
    returns: tuple[SearchReturn, ...] | None = None
    uid: bool = False
    partial: PartialRange | None = None


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """SORT [RETURN (opts)] (criteria) charset keys. ``returns`` is None without
    RETURN (answered ``* SORT``), else ESORT options (answered by ESEARCH).
    Spec: RFC 5256 §3, RFC 5267 §3 (ESORT), §4 (CONTEXT=SORT), RFC 5957 (DISPLAY)."""

    criteria: tuple[SortCriterion, ...]
    key: SearchKey
    charset: str
    returns: tuple[SearchReturn, ...] | None = None
    uid: bool = False
    partial: PartialRange | None = None


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """THREAD algorithm charset keys. Spec: RFC 5256 §3 (THREAD), §4."""

    algorithm: ThreadAlgorithm
    key: SearchKey
    charset: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE "tag"...: stop the updates of those searches.
    Spec: RFC 5267 §4.2."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    """FETCH set items [(CHANGEDSINCE n [VANISHED])]. Macros are expanded; items keep
    the client's order, duplicates removed. Spec: RFC 9051 §6.4.5, RFC 7162 §3.1.4.1,
    RFC 7162 §3.2.6 (VANISHED)."""

    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False


class StoreMode(StrEnum):
    """FLAGS (replace), +FLAGS (add), -FLAGS (remove). Spec: RFC 9051 §6.4.6."""

    REPLACE = ""
    ADD = "+"
    REMOVE = "-"


@dataclass(frozen=True, slots=True)
class Store(Command):
    """STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] flags.
    Spec: RFC 9051 §6.4.6, RFC 7162 §3.1.3."""

    sequence: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    """COPY set mailbox. Spec: RFC 9051 §6.4.7."""

    sequence: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move(Command):
    """MOVE set mailbox. Spec: RFC 9051 §6.4.8, RFC 6851 §3.1."""

    sequence: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Id(Command):
    """ID NIL (``params`` None) or ID (field value ...); values may be None (NIL).
    Spec: RFC 2971 §3.1, §3.3."""

    params: tuple[tuple[str, str | None], ...] | None
