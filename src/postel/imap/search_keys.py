"""The SEARCH key tree: what ``SEARCH``/``UID SEARCH`` criteria parse into.

The parser in ``postel.imap.commands`` builds these; ``postel.imap.search`` evaluates
them against messages. A list of keys is their conjunction (``AndKey``).

Spec: RFC 9051 §6.4.4 (search keys), RFC 3501 §6.4.4 (NEW, OLD, RECENT, UNRECENT),
RFC 7162 §3.1.5 (MODSEQ), RFC 5182 (``$``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from postel.imap.sequence import SequenceSet

__all__ = [
    "AllKey",
    "AndKey",
    "BodyKey",
    "DateField",
    "DateKey",
    "DateOp",
    "FlagKey",
    "HeaderKey",
    "ModseqKey",
    "NotKey",
    "OrKey",
    "RecentKey",
    "SearchKey",
    "SequenceKey",
    "SizeKey",
    "SizeOp",
    "TextKey",
]


@dataclass(frozen=True, slots=True)
class AllKey:
    """``ALL``: every message."""


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A flag test: ``SEEN`` is FlagKey("\\\\Seen", True), ``UNSEEN`` FlagKey("\\\\Seen", False),
    ``KEYWORD x`` FlagKey("x", True), ``UNKEYWORD x`` FlagKey("x", False).

    ``flag`` is as written by the client (system flags in canonical case: ``\\Answered``,
    ``\\Deleted``, ``\\Draft``, ``\\Flagged``, ``\\Seen``); comparison is case-insensitive
    (RFC 9051 §2.3.2).
    """

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class RecentKey:
    """IMAP4rev1's ``RECENT`` (True) / ``OLD`` (False); ``NEW`` is RECENT AND UNSEEN.
    A message is recent in the one session that first learnt of it. Spec: RFC 3501
    §2.3.2, §6.4.4."""

    recent: bool


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """A header field contains ``value`` (case-insensitive substring, after RFC 2047
    decoding). ``FROM x`` is HeaderKey("From", x); likewise TO, CC, BCC, SUBJECT;
    ``HEADER name value``. An empty ``value`` matches every message that has the field.
    Spec: RFC 9051 §6.4.4."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class BodyKey:
    """``BODY x``: the body text (after transfer and charset decoding) contains ``x``."""

    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """``TEXT x``: the header or the body contains ``x``."""

    value: str


class DateField(StrEnum):
    """Which date a DateKey tests: the internal date, the Date: header's date or the
    save date (RFC 8514 §2.2)."""

    INTERNAL = "INTERNAL"
    SENT = "SENT"
    SAVED = "SAVED"


class DateOp(StrEnum):
    """BEFORE (date < d), ON (date == d), SINCE (date >= d); dates without time or zone."""

    BEFORE = "BEFORE"
    ON = "ON"
    SINCE = "SINCE"


@dataclass(frozen=True, slots=True)
class DateKey:
    """``BEFORE/ON/SINCE d`` (internal date), ``SENTBEFORE/SENTON/SENTSINCE d``
    (Date: header, its own zone disregarded) and ``SAVEDBEFORE/SAVEDON/SAVEDSINCE d``
    (save date). Spec: RFC 9051 §6.4.4; RFC 8514 §2.2."""

    field: DateField
    op: DateOp
    date: dt.date


class SizeOp(StrEnum):
    """LARGER (size > n) or SMALLER (size < n), on RFC822.SIZE."""

    LARGER = "LARGER"
    SMALLER = "SMALLER"


@dataclass(frozen=True, slots=True)
class SizeKey:
    """``LARGER n`` / ``SMALLER n``. Spec: RFC 9051 §6.4.4."""

    op: SizeOp
    size: int


@dataclass(frozen=True, slots=True)
class ModseqKey:
    """``MODSEQ ["/flags/\\Seen" all] n``: messages whose MODSEQ is at least ``modseq``.
    ``entry`` (``/flags/<flag>``) and ``entry_type`` (``priv``, ``shared``, ``all``)
    are kept as given; postel keeps one MODSEQ per message, which stands for every
    metadata item. Spec: RFC 7162 §3.1.5."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """A sequence set of message sequence numbers (``uid=False``) or ``UID set``."""

    set: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class NotKey:
    """``NOT key``."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class OrKey:
    """``OR key1 key2``."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class AndKey:
    """A parenthesised list, or the top-level list of criteria: all must match."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    AllKey
    | FlagKey
    | RecentKey
    | HeaderKey
    | BodyKey
    | TextKey
    | DateKey
    | SizeKey
    | ModseqKey
    | SequenceKey
    | NotKey
    | OrKey
    | AndKey
)
"""Every search key. Spec: RFC 9051 §6.4.4, §9 (search-key)."""
