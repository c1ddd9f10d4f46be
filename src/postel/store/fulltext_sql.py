"""SQL of the full-text index (see fulltext.py for what is indexed and why).

Synchronous functions over an open Connection, run by SqlStore on its reader and
writer threads. The trigram structure differs per backend and is created by migration
0009: SQLite keeps an FTS5 table ``fulltext_fts`` with ``tokenize='trigram
case_sensitive 1'`` over ``fulltext_docs`` (queried with MATCH on a quoted phrase,
which for trigrams is a substring test); PostgreSQL keeps ``gin_trgm_ops`` GIN indexes
on each text column (queried with LIKE, which PostgreSQL re-checks exactly).

Spec: https://www.sqlite.org/fts5.html §4.3.4 (trigram tokenizer); PostgreSQL
documentation F.35 (pg_trgm, index support for LIKE); RFC 9051 §6.4.4.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    intersect,
    literal_column,
    or_,
    select,
    table,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postel.errors import NotFound
from postel.ids import MailboxId
from postel.store.api import UidSet
from postel.store.blobs import BlobFiles
from postel.store.fulltext import (
    EXTRACT_VERSION,
    FULLTEXT_BLOB_MAX,
    HEADER_COLUMNS,
    BlobDoc,
    Candidates,
    Clause,
    HeaderDoc,
    SearchField,
    blob_doc,
    columns_of,
    narrowing_needle,
    prefix_doc,
)
from postel.store.message_ops import Dialect
from postel.store.schema import blobs, fulltext_docs, fulltext_messages, messages

_log = logging.getLogger(__name__)

FULLTEXT_BATCH_OCTETS = 4 * 1024 * 1024
"""Blob octets read for one indexing batch (at least one message, however large: up to
FULLTEXT_BLOB_MAX). Small, so the background indexer's memory stays a few MiB beside
the sessions it runs with (RELIABILITY.md D7); a batch costs one write transaction."""
_LIKE_ESCAPE = "/"
_FTS_TABLE = "fulltext_fts"
_PREFIX_FTS_TABLE = "fulltext_prefix_fts"


def include_in_schema_compare(name: str | None, type_: str, parent_names: Any) -> bool:
    """An Alembic ``include_name`` hook: False for the backend-specific trigram
    structures that ``schema.metadata`` does not describe (SQLite's FTS5 tables and
    their shadow tables, PostgreSQL's ``ix_*_trgm`` GIN indexes), True otherwise.
    Spec: https://alembic.sqlalchemy.org/en/latest/autogenerate.html (include_name)."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith((_FTS_TABLE, _PREFIX_FTS_TABLE))
    if type_ == "index":
        return not (name.startswith("ix_fulltext_") and name.endswith("_trgm"))
    return True


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message not yet (or no longer) indexed: its row id, blob key, trace prefix,
    and its blob's document of this version: None when there is none yet, else
    whether that document is complete."""

    message_id: int
    blob_key: str
    trace_prefix: bytes
    blob_complete: bool | None


@dataclass(frozen=True, slots=True)
class MessageDoc:
    """What the indexer writes for one message: its prefix document (None when it
    cannot be indexed apart from the blob) and whether the message is answered by the
    index (``complete``: prefix document and complete blob document)."""

    message_id: int
    prefix: HeaderDoc | None
    complete: bool


def pending_messages(conn: Connection, limit: int) -> list[PendingMessage]:
    """Up to ``limit`` messages without a message document of EXTRACT_VERSION."""
    fm, d, m = fulltext_messages, fulltext_docs, messages
    rows = conn.execute(
        select(m.c.id, m.c.blob_key, m.c.trace_prefix, d.c.version, d.c.complete)
        .select_from(
            m.outerjoin(fm, fm.c.message_id == m.c.id).outerjoin(d, d.c.blob_key == m.c.blob_key)
        )
        .where(or_(fm.c.message_id.is_(None), fm.c.version != EXTRACT_VERSION))
        .limit(limit)
    )
    return [
        PendingMessage(int(i), str(k), bytes(p), bool(c) if v == EXTRACT_VERSION else None)
        for i, k, p, v, c in rows
    ]


def blob_rows(conn: Connection, keys: Sequence[str]) -> list[tuple[str, int, bytes | None]]:
    """``(key, size, inline bytes or None)`` of the given blobs that exist."""
    if not keys:
        return []
    rows = conn.execute(
        select(blobs.c.key, blobs.c.size, blobs.c.data).where(blobs.c.key.in_(list(keys)))
    )
    return [(str(k), int(s), None if b is None else bytes(b)) for k, s, b in rows]


def _flavour(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def write_index(
    conn: Connection, docs: Sequence[tuple[str, BlobDoc]], message_docs: Sequence[MessageDoc]
) -> None:
    """Store blob documents (replacing ones of another version) and message documents,
    skipping blobs and messages removed meanwhile. Safe to repeat (idempotent)."""
    flavour = _flavour(conn)
    if docs:
        conn.execute(
            delete(fulltext_docs).where(
                fulltext_docs.c.blob_key.in_([key for key, _ in docs]),
                fulltext_docs.c.version != EXTRACT_VERSION,
            )
        )
        cols = ["blob_key", "version", "complete", *HEADER_COLUMNS, "body"]
        source = select(
            blobs.c.key,
            bindparam("b_version", type_=Integer),
            bindparam("b_complete", type_=Boolean),
            *(bindparam(f"b_{c}", type_=Text) for c in (*HEADER_COLUMNS, "body")),
        ).where(blobs.c.key == bindparam("b_key", type_=String))
        conn.execute(
            flavour.insert(fulltext_docs).from_select(cols, source).on_conflict_do_nothing(),
            [_doc_params(key, doc) for key, doc in docs],
        )
    if message_docs:
        ids = [md.message_id for md in message_docs]
        conn.execute(delete(fulltext_messages).where(fulltext_messages.c.message_id.in_(ids)))
        cols = ["message_id", "version", "complete", *HEADER_COLUMNS]
        source = select(
            messages.c.id,
            bindparam("m_version", type_=Integer),
            bindparam("m_complete", type_=Boolean),
            *(bindparam(f"m_{c}", type_=Text) for c in HEADER_COLUMNS),
        ).where(messages.c.id == bindparam("m_id", type_=Integer))
        conn.execute(
            flavour.insert(fulltext_messages).from_select(cols, source).on_conflict_do_nothing(),
            [_message_params(md) for md in message_docs],
        )


def _doc_params(key: str, doc: BlobDoc) -> dict[str, Any]:
    texts: dict[str, str | None] = dict.fromkeys((*HEADER_COLUMNS, "body"))
    if doc.complete and doc.header is not None:
        texts.update(doc.header.values(), body=doc.body)
    params: dict[str, Any] = {f"b_{c}": v for c, v in texts.items()}
    params.update(b_key=key, b_version=EXTRACT_VERSION, b_complete=doc.complete)
    return params


def _message_params(md: MessageDoc) -> dict[str, Any]:
    texts: dict[str, str | None] = dict.fromkeys(HEADER_COLUMNS)
    if md.prefix is not None:
        texts.update({c: (v or None) for c, v in md.prefix.values().items()})
    params: dict[str, Any] = {f"m_{c}": v for c, v in texts.items()}
    params.update(m_id=md.message_id, m_version=EXTRACT_VERSION, m_complete=md.complete)
    return params


def batch(
    pending: Sequence[PendingMessage], sizes: dict[str, int], octets_max: int
) -> list[PendingMessage]:
    """The first pending messages whose blobs to read (distinct, at most
    FULLTEXT_BLOB_MAX each: larger ones are not read) fit in ``octets_max``; at least
    one message."""
    chosen: list[PendingMessage] = []
    seen: set[str] = set()
    total = 0
    for p in pending:
        size = sizes.get(p.blob_key, 0)
        need = p.blob_key not in seen and size <= FULLTEXT_BLOB_MAX and _needs_blob(p)
        if need and chosen and total + size > octets_max:
            break
        if need:
            seen.add(p.blob_key)
            total += size
        chosen.append(p)
    return chosen


def _needs_blob(p: PendingMessage) -> bool:
    return p.blob_complete is None or bool(p.trace_prefix)


def blobs_to_read(pending: Sequence[PendingMessage]) -> list[str]:
    """Keys of the blobs the extraction of ``pending`` reads."""
    return sorted({p.blob_key for p in pending if _needs_blob(p)})


def load_blobs(
    files: BlobFiles, rows: Sequence[tuple[str, int, bytes | None]]
) -> dict[str, bytes | None]:
    """Blob bytes by key, None for a blob over FULLTEXT_BLOB_MAX or whose file is
    missing (logged). Blocking file reads: run on a worker thread."""
    loaded: dict[str, bytes | None] = {}
    for key, size, inline in rows:
        if size > FULLTEXT_BLOB_MAX:
            loaded[key] = None
        elif inline is not None:
            loaded[key] = inline
        else:
            try:
                loaded[key] = files.read(key)
            except NotFound:
                _log.warning("store.fulltext.blob_missing key=%s", key)
                loaded[key] = None
    return loaded


def extract(
    pending: Sequence[PendingMessage], data: dict[str, bytes | None]
) -> tuple[list[tuple[str, BlobDoc]], list[MessageDoc]]:
    """The documents of ``pending`` (CPU-bound: run on a worker thread). Never raises."""
    docs: dict[str, BlobDoc] = {}
    message_docs: list[MessageDoc] = []
    for p in pending:
        blob = data.get(p.blob_key)
        blob_complete = p.blob_complete
        if blob_complete is None:
            if p.blob_key not in docs:
                docs[p.blob_key] = BlobDoc(complete=False) if blob is None else blob_doc(blob)
            blob_complete = docs[p.blob_key].complete
        prefix = prefix_doc(p.trace_prefix, blob)
        complete = blob_complete and prefix is not None
        message_docs.append(MessageDoc(p.message_id, prefix, complete))
    return list(docs.items()), message_docs


def drop_index(conn: Connection) -> int:
    """Remove every document (all messages become pending); returns how many blob
    documents went."""
    conn.execute(delete(fulltext_messages))
    return int(conn.execute(delete(fulltext_docs)).rowcount)


# -- candidates ----------------------------------------------------------------------------


def _hits(
    conn: Connection, name: str, columns: tuple[str, ...], needle: str, *, prefix: bool
) -> Any:
    """A statement selecting the keys of the documents whose ``columns`` contain
    ``needle`` (already folded): blob keys of blob documents, or message ids of message
    documents (``prefix``)."""
    target = fulltext_messages if prefix else fulltext_docs
    key = target.c.message_id if prefix else target.c.blob_key
    if conn.dialect.name == "postgresql":
        escaped = (
            needle.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
            .replace("%", _LIKE_ESCAPE + "%")
            .replace("_", _LIKE_ESCAPE + "_")
        )
        pattern = bindparam(name, f"%{escaped}%", type_=Text)
        return select(key).where(
            or_(*(target.c[c].like(pattern, escape=_LIKE_ESCAPE) for c in columns))
        )
    fts = _PREFIX_FTS_TABLE if prefix else _FTS_TABLE
    phrase = '"' + needle.replace('"', '""') + '"'
    query = bindparam(name, "{" + " ".join(columns) + "} : " + phrase, type_=Text)
    rowids: Any = (
        select(literal_column("rowid"))
        .select_from(table(fts))
        .where(literal_column(fts).op("MATCH")(query))
    )
    if prefix:
        return rowids
    return select(key).where(fulltext_docs.c.id.in_(rowids))


def _clause_test(conn: Connection, index: int, field: SearchField, needle: str) -> Any:
    """True for a message whose blob or trace-prefix document may match the clause."""
    cols = columns_of(field)
    test = messages.c.blob_key.in_(_hits(conn, f"q{index}", cols, needle, prefix=False))
    if field is SearchField.BODY:
        return test
    header_cols = tuple(c for c in cols if c != "body")
    return or_(test, messages.c.id.in_(_hits(conn, f"p{index}", header_cols, needle, prefix=True)))


def _sqlite_clause_uids(index: int, field: SearchField, needle: str, mailbox_id: int) -> Any:
    """SQLite: the UIDs of the mailbox's messages whose blob or trace-prefix document
    holds ``needle`` (already folded), driven from the trigram look-up: each hit joins
    its messages by blob key (or message id), and only then is the mailbox tested (its
    ``+`` keeps SQLite from driving the join from the mailbox's messages instead)."""
    cols = columns_of(field)
    phrase = '"' + needle.replace('"', '""') + '"'
    blob_query = bindparam(f"q{index}", "{" + " ".join(cols) + "} : " + phrase, type_=Text)
    box = bindparam(f"mb{index}", int(mailbox_id), type_=Integer)
    uid: Any = literal_column("m.uid").label("uid")
    hits = select(uid).select_from(
        text(
            f"{_FTS_TABLE} AS f CROSS JOIN fulltext_docs AS d ON d.id = f.rowid"
            " CROSS JOIN messages AS m ON m.blob_key = d.blob_key"
        )
    )
    found = hits.where(literal_column(f"f.{_FTS_TABLE}").op("MATCH")(blob_query)).where(
        literal_column("+m.mailbox_id") == box
    )
    header_cols = tuple(c for c in cols if c != "body")
    if not header_cols:
        return found
    prefix_query = bindparam(f"p{index}", "{" + " ".join(header_cols) + "} : " + phrase, type_=Text)
    prefixed = (
        select(uid)
        .select_from(text(f"{_PREFIX_FTS_TABLE} AS p CROSS JOIN messages AS m ON m.id = p.rowid"))
        .where(literal_column(f"p.{_PREFIX_FTS_TABLE}").op("MATCH")(prefix_query))
        .where(literal_column("+m.mailbox_id") == box)
    )
    return union(found, prefixed)


def search_candidates(
    conn: Connection, mailbox_id: MailboxId, clauses: Sequence[Clause], uids: UidSet | None
) -> Candidates | None:
    """The candidates of a conjunction of string keys in one mailbox, or None when no
    clause can narrow. One statement (one snapshot): the unindexed messages (an
    anti-join on the mailbox's messages) and the indexed ones whose documents hold
    every needle (trigram index look-ups). See fulltext.Candidates."""
    narrowing = [(c.field, n) for c in clauses if (n := narrowing_needle(c.needle)) is not None]
    if not narrowing:
        return None
    if uids is not None and not uids:
        return Candidates(frozenset(), frozenset())
    m, fm = messages, fulltext_messages
    indexed = and_(fm.c.version == EXTRACT_VERSION, fm.c.complete == true())
    unindexed = (
        select(m.c.uid, literal_column("0"))
        .select_from(m.outerjoin(fm, fm.c.message_id == m.c.id))
        .where(m.c.mailbox_id == mailbox_id, or_(fm.c.message_id.is_(None), ~indexed))
    )
    params: dict[str, Any] = {}
    if uids is not None:
        extra, condition, params = Dialect(conn.dialect.name).uid_match(m, uids)
        if extra is not None:
            unindexed = unindexed.select_from(extra)
        unindexed = unindexed.where(condition)
    if conn.dialect.name == "sqlite":
        parts: list[Any] = [
            _sqlite_clause_uids(i, field, needle, mailbox_id)
            for i, (field, needle) in enumerate(narrowing)
        ]
        if len(parts) > 1:  # SQLite takes no parenthesised compound members
            parts = [select(p.subquery(f"c{i}").c.uid) for i, p in enumerate(parts)]
        both: Any = parts[0] if len(parts) == 1 else intersect(*parts)
        inner = both.subquery("hits")
        matched: Any = select(inner.c.uid, literal_column("1"))
    else:
        tests = [_clause_test(conn, i, f, n) for i, (f, n) in enumerate(narrowing)]
        matched = select(m.c.uid, literal_column("1")).where(m.c.mailbox_id == mailbox_id, *tests)
    found: set[int] = set()
    scan: set[int] = set()
    for uid, is_match in conn.execute(union_all(unindexed, matched), params):
        (found if int(is_match) else scan).add(int(uid))
    if uids is not None:
        found = {u for u in found if u in uids}
    return Candidates(frozenset(found - scan), frozenset(scan))
