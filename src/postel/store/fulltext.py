"""The full-text index of the message store: what is indexed and how SEARCH asks it.

SEARCH's meaning is fixed by :mod:`postel.imap.search` (case-insensitive substring after
Unicode casefolding, over the text :mod:`postel.imap.textsearch` decodes). The index is
a *superset filter*: for every message and search string, when the evaluator would
match, the index returns the message as a candidate. For an *exact* clause
(:func:`exact_clause`: a named field and a needle the index looks up whole) it is
more: an indexed message is a candidate exactly when the evaluator matches it, since
each column holds the casefolded texts the evaluator searches, joined by line breaks a
whole needle cannot span, and a trigram phrase (FTS5) or LIKE (PostgreSQL) is an exact
substring test. The IMAP layer re-checks only the other candidates, so the answer
equals a full scan either way (tests/store/test_fulltext_property.py).

What is indexed (all text casefolded exactly as the evaluator folds it):

* per blob (the content shared by every recipient of one delivery), a *document* with
  the top-level ``subject``, ``from``, ``to``, ``cc`` and ``bcc`` values, the whole
  ``header`` text (``name: value`` lines) and the ``body`` text (every text/* leaf and
  every enclosed message's header, transfer- and charset-decoded; text/html as source
  and reduced to text: :func:`postel.imap.textsearch.search_texts`, the evaluator's
  own texts);
* per message, the same header columns for its per-recipient trace prefix
  (Return-Path, Delivered-To, Received...), which SEARCH sees in front of the blob's
  header. When the prefix and the blob's header do not split cleanly (a blob starting
  with a continuation line, a field-count limit reached) or the prefix holds MIME
  fields (which would change how ``prefix + blob`` parses), the message is marked
  incomplete and is always scanned.

A blob larger than FULLTEXT_BLOB_MAX is not extracted: its messages stay "unindexed"
and SEARCH scans them. A NUL or a lone surrogate (which neither backend stores in
text) is stored as a line break, and needles are cut at line breaks, NULs and
surrogates: the longest piece (at most FULLTEXT_NEEDLE_MAX characters of it) narrows.
A needle piece shorter than FULLTEXT_NEEDLE_MIN characters cannot use a trigram index.

Re-indexing: documents carry EXTRACT_VERSION; a document of another version counts as
unindexed (scanned) and ``Store.index_pending`` replaces it. Bump EXTRACT_VERSION
whenever extraction changes; ``Store.reindex_all`` drops every document at once.

Spec: RFC 9051 §6.4.4 (SEARCH string keys); RFC 2047 §6; RFC 2045 §6; RFC 2046 §4.1.2.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from postel import limits
from postel.imap.textsearch import HeaderText, header_text, search_texts
from postel.mail.mime import parse_mime

__all__ = [
    "EXTRACT_VERSION",
    "FULLTEXT_BATCH_MAX",
    "FULLTEXT_BLOB_MAX",
    "FULLTEXT_NEEDLE_MAX",
    "FULLTEXT_NEEDLE_MIN",
    "HEADER_COLUMNS",
    "BlobDoc",
    "Candidates",
    "Clause",
    "HeaderDoc",
    "SearchField",
    "blob_doc",
    "columns_of",
    "exact_clause",
    "narrowing_needle",
    "prefix_doc",
]

EXTRACT_VERSION = 2
"""Version of the extraction below; documents of another version are re-extracted."""
FULLTEXT_BLOB_MAX = 2 * 1024 * 1024
"""Largest blob (octets) whose text is extracted; larger ones (mostly attachments) are
always scanned by SEARCH. Local bound: extraction holds the blob, its decoded text and
the folded copies at once (several times the blob size), and the indexer runs beside the
sessions, so its memory must stay small (RELIABILITY.md D7)."""
FULLTEXT_NEEDLE_MAX = 128
"""Characters of a needle piece used to narrow (a prefix of a substring is a substring;
local bound keeping trigram queries small whatever the client sends)."""
FULLTEXT_NEEDLE_MIN = 3
"""Shortest needle a trigram index can answer. Spec: https://www.sqlite.org/fts5.html
§4.3.4 (trigram tokenizer); PostgreSQL pg_trgm (F.35)."""
FULLTEXT_BATCH_MAX = 200
"""Most messages one ``Store.index_pending`` call indexes (keeps each write
transaction short next to deliveries; local policy)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NEEDLE_CUT = re.compile("[\n\x00\ud800-\udfff]")


class SearchField(enum.StrEnum):
    """The SEARCH string keys the index answers. Spec: RFC 9051 §6.4.4."""

    TEXT = "text"
    BODY = "body"
    SUBJECT = "subject"
    FROM = "from"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    HEADER = "header"


HEADER_COLUMNS = ("subject", "from_field", "to_field", "cc", "bcc", "header")
"""Index columns holding header text (``from_field``/``to_field``: FROM and TO,
named so because ``from`` and ``to`` are SQL keywords)."""

_COLUMNS: dict[SearchField, tuple[str, ...]] = {
    SearchField.TEXT: ("header", "body"),
    SearchField.BODY: ("body",),
    SearchField.SUBJECT: ("subject",),
    SearchField.FROM: ("from_field",),
    SearchField.TO: ("to_field",),
    SearchField.CC: ("cc",),
    SearchField.BCC: ("bcc",),
    SearchField.HEADER: ("header",),
}


def columns_of(field: SearchField) -> tuple[str, ...]:
    """The index columns in which a match of ``field`` lies (HEADER name: the whole
    header text, a superset of the named field's values)."""
    return _COLUMNS[field]


@dataclass(frozen=True, slots=True)
class Clause:
    """One SEARCH string key: ``field`` and the needle as the client sent it (not yet
    folded). ``name`` is the field name of HEADER (unused for narrowing).
    Spec: RFC 9051 §6.4.4."""

    field: SearchField
    needle: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Candidates:
    """The index's answer for one mailbox: ``matched`` are indexed messages (UIDs) that
    may match every clause; ``unindexed`` are messages the index cannot answer for (not
    yet indexed, too large, or incomplete), which the caller must scan. Every message
    the evaluator matches is in ``matched | unindexed``."""

    matched: frozenset[int]
    unindexed: frozenset[int]


@dataclass(frozen=True, slots=True)
class HeaderDoc:
    """Casefolded header text: each field's decoded values joined by line breaks, and
    the whole header as ``name: value`` lines. Spec: RFC 5322 §2.2; RFC 2047 §6."""

    subject: str
    from_field: str
    to_field: str
    cc: str
    bcc: str
    header: str

    def values(self) -> dict[str, str]:
        """Column name to text (for the SQL layer)."""
        return {name: getattr(self, name) for name in HEADER_COLUMNS}


@dataclass(frozen=True, slots=True)
class BlobDoc:
    """One blob's document; ``complete`` False (and no text) when it was not
    extracted (larger than FULLTEXT_BLOB_MAX, or unreadable)."""

    complete: bool
    header: HeaderDoc | None = None
    body: str = ""


def _storable(text: str) -> str:
    return _UNSTORABLE.sub("\n", text.casefold())


def header_doc(fields: HeaderText) -> HeaderDoc:
    """The casefolded columns of decoded header fields. Spec: RFC 9051 §6.4.4."""

    def joined(name: str) -> str:
        return _storable("\n".join(fields.values(name)))

    return HeaderDoc(
        subject=joined("subject"),
        from_field=joined("from"),
        to_field=joined("to"),
        cc=joined("cc"),
        bcc=joined("bcc"),
        header=_storable(fields.text()),
    )


def blob_doc(data: bytes) -> BlobDoc:
    """Extract a blob's document (CPU-bound: run it in a worker thread). Never raises.

    Spec: RFC 9051 §6.4.4; RFC 2045 §6; RFC 2046 §5; RFC 2047 §6.
    """
    if len(data) > FULLTEXT_BLOB_MAX:
        return BlobDoc(complete=False)
    texts = search_texts(data, parse_mime(data))
    return BlobDoc(True, header_doc(header_text(data)), _storable("\n".join(texts)))


def prefix_doc(prefix: bytes, blob: bytes | None) -> HeaderDoc | None:
    """The document of a message's trace prefix, or None when it cannot stand apart
    from the blob's header (SEARCH sees one header section ``prefix + blob``; when its
    fields are not the prefix's followed by the blob's, the message must be scanned).
    An empty prefix gives an empty document. ``blob`` None: the blob was not read.

    Spec: RFC 5321 §4.4 (trace fields); RFC 5322 §2.2.3.
    """
    if not prefix:
        return HeaderDoc("", "", "", "", "", "")
    if blob is None or len(blob) > FULLTEXT_BLOB_MAX:
        return None
    own = header_text(prefix)
    if any(name.startswith("content-") or name == "mime-version" for name, _ in own.fields):
        return None
    combined = header_text(prefix + blob)
    if len(combined.fields) >= limits.MIME_HEADER_FIELDS_MAX:
        return None
    if combined.fields != own.fields + header_text(blob).fields:
        return None
    return header_doc(own)


def narrowing_needle(needle: str) -> str | None:
    """The casefolded piece of ``needle`` to look up, or None when none is long enough
    (the caller must then not narrow on this clause).

    Every piece of the folded needle between line breaks, NULs and surrogates lies
    within one indexed field line or part (the evaluator's folded text contains the
    whole needle), so the longest one, cut to FULLTEXT_NEEDLE_MAX, is a superset test.
    """
    pieces = _NEEDLE_CUT.split(needle.casefold())
    best = max(pieces, key=len)[:FULLTEXT_NEEDLE_MAX]
    return best if len(best) >= FULLTEXT_NEEDLE_MIN else None


def exact_clause(clause: Clause) -> bool:
    """True when the index answers ``clause`` exactly for indexed messages (see the
    module docstring): any field but HEADER (whose column is the whole header, not
    the named field), and a needle whose casefolded form is one piece (no line break,
    NUL or surrogate) of FULLTEXT_NEEDLE_MIN to FULLTEXT_NEEDLE_MAX characters.
    Spec: RFC 9051 §6.4.4."""
    if clause.field is SearchField.HEADER:
        return False
    folded = clause.needle.casefold()
    if _NEEDLE_CUT.search(folded) is not None:
        return False
    return FULLTEXT_NEEDLE_MIN <= len(folded) <= FULLTEXT_NEEDLE_MAX
