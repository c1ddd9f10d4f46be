"""Message operations for IMAP: SELECT snapshots, FETCH rows, STORE, EXPUNGE, APPEND,
COPY, MOVE and the changes a session must learn.

Synchronous functions over an open Connection (see mailbox_ops.py for threads and lock
order). A UidSet is matched in SQL: one range as ``uid BETWEEN``, several as a join with
a one-parameter range list (SQLite: a JSON array through ``json_each``; PostgreSQL: two
arrays through ``unnest``), driven by the ``(mailbox_id, uid)`` unique index.

Every write that changes a mailbox takes ONE new MODSEQ (``HIGHESTMODSEQ + 1``) for the
whole operation; UIDs come from UIDNEXT and are never reused.

APPEND, COPY and MOVE into an account with a quota lock all the account's mailboxes
first and raise ``OverQuota`` (nothing written) when they would take it over a limit
(quota_ops.py); a MOVE within one account changes no usage and is never refused.

Spec: RFC 9051 §2.3.1.1, §6.3.2, §6.3.12, §6.4.3, §6.4.5-§6.4.9; RFC 7162 §3.1, §3.2.10;
RFC 4315 §3; RFC 6851 §3.3; RFC 9208 §4.1.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Integer,
    String,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join

from postel.errors import NotFound, StoreError
from postel.ids import MailboxId, QueueId
from postel.store import flags as fl
from postel.store.api import (
    Appended,
    BlobRef,
    Changes,
    CopyResult,
    FlagMode,
    FlagsResult,
    FlagState,
    MailboxSnapshot,
    MessageAttributes,
    MoveResult,
    StoredMessage,
    UidSet,
)
from postel.store.blobs import BlobFiles
from postel.store.mailbox_ops import LockedMailbox, has_flag, lock_mailboxes, save_counters
from postel.store.quota_api import QuotaUsage
from postel.store.quota_ops import check_addition, lock_for_quota
from postel.store.schema import UtcDateTime, blobs, expunged, mailboxes, messages


class DrivingJoin(Join):
    """A join whose left side drives the loop: SQLite's ``CROSS JOIN`` keeps the planner
    from scanning every message of the mailbox and probing the range list per row
    (https://www.sqlite.org/optoverview.html#crossjoin); elsewhere a plain JOIN."""

    inherit_cache = True


@compiles(DrivingJoin, "sqlite")
def _driving_join_sqlite(element: DrivingJoin, compiler: SQLCompiler, **kw: Any) -> str:
    plain: str = compiler.visit_join(element, **kw)  # type: ignore[no-untyped-call]
    return plain.replace(" JOIN ", " CROSS JOIN ", 1)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends here: the name and the blob upsert."""

    name: str

    def uid_match(
        self, table: FromClause, uids: UidSet
    ) -> tuple[FromClause | None, ColumnElement[bool], dict[str, Any]]:
        """A FROM item to join (None for one range), the condition on ``table.c.uid`` and
        the parameters."""
        uid = table.c.uid
        if len(uids.ranges) == 1:
            low, high = uids.ranges[0]
            return None, uid.between(low, high), {}
        if self.name == "postgresql":
            r = (
                func.unnest(
                    cast(bindparam("u_lows"), ARRAY(BigInteger)),
                    cast(bindparam("u_highs"), ARRAY(BigInteger)),
                )
                .table_valued("lo", "hi")
                .render_derived(name="r")
            )
            params = {"u_lows": [r[0] for r in uids.ranges], "u_highs": [r[1] for r in uids.ranges]}
            return r, uid.between(r.c.lo, r.c.hi), params
        j = func.json_each(bindparam("u_ranges")).table_valued("value").alias("r")
        low_e, high_e = func.json_extract(j.c.value, "$[0]"), func.json_extract(j.c.value, "$[1]")
        return j, uid.between(low_e, high_e), {"u_ranges": json.dumps(uids.ranges)}

    def insert_blob(self, ref: BlobRef) -> Any:
        flavour = postgresql if self.name == "postgresql" else sqlite
        data = ref.inline
        return (
            flavour.insert(blobs)
            .values(key=ref.key, size=ref.size, data=data)
            .on_conflict_do_nothing(index_elements=["key"])
        )


def _in_uids(
    dialect: Dialect,
    table: FromClause,
    mailbox_id: int,
    uids: UidSet,
    *columns: Any,
) -> tuple[Any, dict[str, Any]]:
    """``SELECT columns FROM table`` restricted to ``mailbox_id`` and ``uids``."""
    source, cond, params = dialect.uid_match(table, uids)
    where = (table.c.mailbox_id == mailbox_id) & cond
    if source is None:
        query = select(*columns).select_from(table).where(where)
    else:
        query = select(*columns).select_from(DrivingJoin(source, table, where))
    return query.order_by(table.c.uid), params


# -- reads ---------------------------------------------------------------------------------


_SELECT_SQLITE = (
    "SELECT b.uidvalidity, b.uidnext, b.highestmodseq, m.uid, m.flags, m.modseq, b.recent_uid"
    " FROM mailboxes AS b LEFT OUTER JOIN messages AS m ON m.mailbox_id = b.id"
    " WHERE b.id = ? ORDER BY m.uid"
)
"""``select_mailbox``'s statement as SQL text for the sqlite3 cursor (same columns)."""


def select_mailbox(conn: Connection, mailbox_id: MailboxId) -> MailboxSnapshot:
    """Counters and every ``(uid, flags, modseq)`` by UID, in one statement. NotFound.
    On SQLite the rows come straight from the driver's cursor: SQLAlchemy's per-row
    work was most of a large mailbox's SELECT (bench/RESULTS.md, IMAP section)."""
    rows: Sequence[Any]
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = cursor.execute(_SELECT_SQLITE, (mailbox_id,)).fetchall()
        finally:
            cursor.close()
    else:
        rows = conn.execute(
            select(
                mailboxes.c.uidvalidity,
                mailboxes.c.uidnext,
                mailboxes.c.highestmodseq,
                messages.c.uid,
                messages.c.flags,
                messages.c.modseq,
                mailboxes.c.recent_uid,
            )
            .select_from(mailboxes.outerjoin(messages, messages.c.mailbox_id == mailboxes.c.id))
            .where(mailboxes.c.id == mailbox_id)
            .order_by(messages.c.uid)
        ).all()
    if not rows:
        raise NotFound(f"no mailbox {mailbox_id}")
    validity, uidnext, highest, recent_uid = rows[0][0], rows[0][1], rows[0][2], rows[0][6]
    cache = fl.FlagCache()
    parse = cache.parse
    states: tuple[FlagState, ...] = ()
    if rows[0][3] is not None:
        states = tuple([(r[3], parse(r[4]), r[5]) for r in rows])
    return MailboxSnapshot(
        mailbox_id=mailbox_id,
        uidvalidity=int(validity),
        uidnext=int(uidnext),
        highestmodseq=int(highest),
        messages=states,
        recent_uid=int(recent_uid),
        flags_in_use=cache.union(),
    )


def snapshot_delta(conn: Connection, base: MailboxSnapshot) -> MailboxSnapshot | None:
    """``base`` brought up to date, in one statement, from what changed since its
    HIGHESTMODSEQ: the messages with a higher MODSEQ and the expunge records above it
    (kept for the mailbox's life, as QRESYNC needs). None when the mailbox's UIDVALIDITY
    is no longer base's (read it whole). NotFound. Spec: RFC 7162 §3.1, §3.2.5."""
    zero = literal(0, BigInteger)
    head = select(
        literal(0, Integer).label("kind"),
        mailboxes.c.uidvalidity,
        mailboxes.c.highestmodseq,
        mailboxes.c.uidnext,
        mailboxes.c.recent_uid,
        literal("", String).label("flags"),
    ).where(mailboxes.c.id == base.mailbox_id)
    changed = select(
        literal(1, Integer), messages.c.uid, messages.c.modseq, zero, zero, messages.c.flags
    ).where(messages.c.mailbox_id == base.mailbox_id, messages.c.modseq > base.highestmodseq)
    gone = select(
        literal(2, Integer), expunged.c.uid, expunged.c.modseq, zero, zero, literal("", String)
    ).where(expunged.c.mailbox_id == base.mailbox_id, expunged.c.modseq > base.highestmodseq)
    return merge_delta(base, conn.execute(union_all(head, changed, gone)).all())


SNAPSHOT_DELTA_SQL = (
    "SELECT 0, uidvalidity, highestmodseq, uidnext, recent_uid, '' FROM mailboxes"
    " WHERE id = ? UNION ALL SELECT 1, uid, modseq, 0, 0, flags FROM messages"
    " WHERE mailbox_id = ? AND modseq > ? UNION ALL SELECT 2, uid, modseq, 0, 0, ''"
    " FROM expunged WHERE mailbox_id = ? AND modseq > ? LIMIT ?"
)
"""``snapshot_delta``'s statement as SQL text for SQLite's own cursor (same rows);
parameters: mailbox id, then (mailbox id, HIGHESTMODSEQ) twice, then the row limit."""
POINT_DELTA_ROWS_MAX = 2000
"""Changes read on the event loop when bringing a kept snapshot up to date; a delta
with more goes to a reader thread (a few milliseconds of the loop at most)."""
_BULK_REMOVE = 64
"""Expunged messages past which a snapshot is filtered whole rather than edited."""


def merge_delta(base: MailboxSnapshot, rows: Sequence[Sequence[Any]]) -> MailboxSnapshot | None:
    """``base`` with a delta's rows applied (``(0, uidvalidity, highestmodseq, uidnext,
    recent_uid, _)`` once, ``(1, uid, modseq, _, _, flags)`` per changed message,
    ``(2, uid, modseq, _, _, _)`` per expunged one); None when UIDVALIDITY differs.
    Edits in place of a copy, so a few changes to a large mailbox cost little. NotFound
    without the head row."""
    heads = [r for r in rows if r[0] == 0]
    if not heads:
        raise NotFound(f"no mailbox {base.mailbox_id}")
    _, validity, highest, uidnext, recent_uid, _ = heads[0]
    if int(validity) != base.uidvalidity:
        return None
    cache = fl.FlagCache()
    removed = {int(r[1]) for r in rows if r[0] == 2}
    states = list(base.messages)
    if len(removed) > _BULK_REMOVE:
        states = [s for s in states if s[0] not in removed]
    else:
        for uid in sorted(removed, reverse=True):
            i = bisect.bisect_left(states, uid, key=_UID)
            if i < len(states) and states[i][0] == uid:
                del states[i]
    added: list[FlagState] = []
    for r in rows:
        if r[0] != 1 or int(r[1]) in removed:
            continue
        state = (int(r[1]), cache.parse(r[5]), int(r[2]))
        i = bisect.bisect_left(states, state[0], key=_UID)
        if i < len(states) and states[i][0] == state[0]:
            states[i] = state
        else:
            added.append(state)
    if added:
        added.sort()
        if states and added[0][0] < states[-1][0]:
            states = sorted(states + added)
        else:
            states.extend(added)
    return MailboxSnapshot(
        mailbox_id=base.mailbox_id,
        uidvalidity=base.uidvalidity,
        uidnext=int(uidnext),
        highestmodseq=int(highest),
        messages=tuple(states),
        recent_uid=int(recent_uid),
        flags_in_use=frozenset().union(*set(map(_FLAGS, states))),
    )


_UID = operator.itemgetter(0)
_FLAGS = operator.itemgetter(1)


MAILBOX_VERSION_SQL = (
    "SELECT uidvalidity, uidnext, highestmodseq, recent_uid FROM mailboxes WHERE id = ?"
)
"""``mailbox_version`` as SQL text for SQLite's own cursor (same columns)."""


def mailbox_version(conn: Connection, mailbox_id: MailboxId) -> tuple[int, int, int, int]:
    """The mailbox's MailboxSnapshot.version, read alone (one row). NotFound."""
    row = conn.execute(
        select(
            mailboxes.c.uidvalidity,
            mailboxes.c.uidnext,
            mailboxes.c.highestmodseq,
            mailboxes.c.recent_uid,
        ).where(mailboxes.c.id == mailbox_id)
    ).first()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def claim_recent(conn: Connection, mailbox_id: MailboxId, uid: int) -> int:
    """Raise the mailbox's recent watermark to ``uid``; return the previous value. The
    messages above the previous value, up to ``uid``, are recent in the calling session
    only. NotFound. Spec: RFC 3501 §2.3.2 (\\Recent)."""
    before = conn.execute(
        select(mailboxes.c.recent_uid).where(mailboxes.c.id == mailbox_id).with_for_update()
    ).scalar()
    if before is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    if uid > before:
        conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id).values(recent_uid=uid))
    return int(before)


_FETCH_COLUMNS_SQL = (
    "SELECT m.uid, m.modseq, m.flags, m.internal_date, m.size, m.blob_key,"
    " m.size - length(m.trace_prefix), m.summary, m.queue_id, m.trace_prefix, m.save_date"
    " FROM messages AS m WHERE m.mailbox_id = ? AND "
)
"""The blob's size is the message's less its trace prefix (StoredMessage.size), so the
blobs table is not joined: a third of a 10,000-message FETCH's reading."""
FETCH_ONE_WITH_DATA_SQL = (
    _FETCH_COLUMNS_SQL.replace(" FROM messages AS m ", ", b.data FROM messages AS m ").replace(
        " WHERE ", " JOIN blobs AS b ON b.key = m.blob_key WHERE "
    )
    + "m.uid = ?"
)
"""``fetch_message_data`` on SQLite: the columns of ``FETCH_ONE_SQL`` and the blob's
inline bytes (NULL for a blob kept in a file)."""
FETCH_ONE_SQL = _FETCH_COLUMNS_SQL + "m.uid = ?"
"""``fetch_messages`` of one UID as SQL text for SQLite's own cursor (same columns)."""
_FETCH_RANGE_SQL = _FETCH_COLUMNS_SQL + "m.uid BETWEEN ? AND ? ORDER BY m.uid"


ATTRIBUTES_RANGE_SQL = (
    "SELECT uid, modseq, flags, internal_date, size,"
    ' substr(summary, 1, instr(summary, \'","size":\'))'
    " FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid"
)
"""``fetch_attributes`` of one UID range on SQLite's cursor. The summary is cut after
its pre-rendered ENVELOPE (``to_json`` writes ``v``, ``ie1``, then ``size``): inside a
JSON string every ``"`` is escaped, so the first ``","size":`` is where the ``ie1``
string ends. A summary without ``ie1`` is cut elsewhere (or to nothing), which
``imap_envelope`` refuses."""


def attribute_rows(rows: Iterable[Sequence[Any]]) -> list[MessageAttributes]:
    """``ATTRIBUTES_RANGE_SQL`` rows as ``fetch_attributes`` returns them."""
    cache = fl.FlagCache()
    return [
        MessageAttributes(
            int(uid), int(modseq), cache.parse(flags), _sqlite_time(internal), int(size), head
        )
        for uid, modseq, flags, internal, size, head in rows
    ]


def fetched_rows(rows: Sequence[Sequence[Any]], mailbox_id: MailboxId) -> list[StoredMessage]:
    """``FETCH_ONE_SQL`` rows from SQLite's cursor (timestamps as SQLite text, naive
    UTC) as ``fetch_messages`` returns them."""
    return _stored_messages(rows, mailbox_id, _sqlite_time)


def _stored_messages(
    rows: Iterable[Sequence[Any]], mailbox_id: MailboxId, when: Callable[[Any], dt.datetime]
) -> list[StoredMessage]:
    """Rows of ``fetch_messages``'s columns as messages; ``when`` makes the timestamps."""
    cache = fl.FlagCache()
    return [
        StoredMessage(
            mailbox_id=mailbox_id,
            uid=int(uid),
            modseq=int(modseq),
            flags=cache.parse(flags),
            internal_date=when(internal),
            size=int(size),
            blob=BlobRef(key=key, size=int(blob_size)),
            summary=summary,
            queue_id=None if queue_id is None else QueueId(queue_id),
            trace_prefix=bytes(prefix),
            save_date=None if saved is None else when(saved),
        )
        for uid, modseq, flags, internal, size, key, blob_size, summary, queue_id, prefix, saved in rows
    ]


def _as_is(value: dt.datetime) -> dt.datetime:
    return value


def _sqlite_time(text: str) -> dt.datetime:
    """A UtcDateTime column as SQLite stores it (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    return dt.datetime.fromisoformat(text + "+00:00")  # one call: several times faster


def fetch_messages(
    conn: Connection, dialect: Dialect, mailbox_id: MailboxId, uids: UidSet
) -> list[StoredMessage]:
    """The messages of ``uids`` that exist, by UID, with their trace prefix. On
    SQLite one range (what FETCH of a run of messages asks) is read with the driver's
    cursor, without SQLAlchemy's per-row work (as select_mailbox)."""
    if not uids:
        return []
    if conn.dialect.name == "sqlite" and len(uids.ranges) == 1:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = cursor.execute(_FETCH_RANGE_SQL, (mailbox_id, *uids.ranges[0])).fetchall()
        finally:
            cursor.close()
        return fetched_rows(rows, mailbox_id)
    query, params = _in_uids(
        dialect,
        messages,
        mailbox_id,
        uids,
        messages.c.uid,
        messages.c.modseq,
        messages.c.flags,
        messages.c.internal_date,
        messages.c.size,
        messages.c.blob_key,
        blobs.c.size,
        messages.c.summary,
        messages.c.queue_id,
        messages.c.trace_prefix,
        messages.c.save_date,
    )
    query = query.join(blobs, blobs.c.key == messages.c.blob_key)
    return _stored_messages(conn.execute(query, params), mailbox_id, _as_is)


def changes_since(conn: Connection, mailbox_id: MailboxId, since: int) -> Changes:
    """Counters, messages with MODSEQ above ``since`` and UIDs expunged above it, in one
    statement. NotFound. Spec: RFC 7162 §3.1, §3.2.5."""
    kind = literal(0, Integer).label("kind")
    head = select(
        kind,
        mailboxes.c.highestmodseq.label("a"),
        mailboxes.c.uidnext.label("b"),
        literal("", String).label("flags"),
    ).where(mailboxes.c.id == mailbox_id)
    changed = select(
        literal(1, Integer), messages.c.uid, messages.c.modseq, messages.c.flags
    ).where(messages.c.mailbox_id == mailbox_id, messages.c.modseq > since)
    gone = select(
        literal(2, Integer), expunged.c.uid, expunged.c.modseq, literal("", String)
    ).where(expunged.c.mailbox_id == mailbox_id, expunged.c.modseq > since)
    rows = conn.execute(union_all(head, changed, gone)).all()
    heads = [r for r in rows if r[0] == 0]
    if not heads:
        raise NotFound(f"no mailbox {mailbox_id}")
    cache = fl.FlagCache()
    return Changes(
        highestmodseq=int(heads[0][1]),
        uidnext=int(heads[0][2]),
        changed=tuple(sorted((int(r[1]), cache.parse(r[3]), int(r[2])) for r in rows if r[0] == 1)),
        expunged=tuple(sorted(int(r[1]) for r in rows if r[0] == 2)),
    )


# -- STORE ---------------------------------------------------------------------------------


def store_flags(
    conn: Connection,
    dialect: Dialect,
    mailbox_id: MailboxId,
    uids: UidSet,
    mode: FlagMode,
    flags: frozenset[str],
    unchanged_since: int | None,
) -> FlagsResult:
    """STORE on the messages of ``uids``: changed ones take one new MODSEQ; those whose
    MODSEQ is above ``unchanged_since`` are left alone and reported. NotFound, InvalidFlag.
    Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3."""
    given = fl.canonical_set(flags)
    box = lock_mailboxes(conn, [mailbox_id])[mailbox_id]
    if not uids:
        return FlagsResult(highestmodseq=box.highestmodseq, messages=())
    query, params = _in_uids(
        dialect, messages, mailbox_id, uids, messages.c.uid, messages.c.flags, messages.c.modseq
    )
    modseq = box.highestmodseq + 1
    plan = plan_store(conn.execute(query, params), mode, given, unchanged_since, modseq)
    if plan.updates:
        conn.execute(
            update(messages)
            .where(messages.c.mailbox_id == mailbox_id, messages.c.uid == bindparam("b_uid"))
            .values(flags=bindparam("b_flags"), modseq=modseq),
            [{"b_uid": uid, "b_flags": text} for uid, text in plan.updates],
        )
        box.highestmodseq = modseq
        save_counters(conn, box)
    return plan.result(box.highestmodseq)


@dataclass(slots=True)
class StorePlan:
    """What one STORE writes: ``updates`` as ``(uid, stored flag text)`` (all at the new
    MODSEQ), ``states`` and ``modified`` as in FlagsResult."""

    states: list[FlagState]
    modified: list[int]
    updates: list[tuple[int, str]]

    def result(self, highestmodseq: int) -> FlagsResult:
        """The FlagsResult once the mailbox's HIGHESTMODSEQ is ``highestmodseq``."""
        return FlagsResult(
            highestmodseq, tuple(self.states), tuple(self.modified), bool(self.updates)
        )


def plan_store(
    rows: Iterable[Any],
    mode: FlagMode,
    given: frozenset[str],
    unchanged_since: int | None,
    modseq: int,
) -> StorePlan:
    """The changes of a STORE over ``rows`` of ``(uid, stored flag text, MODSEQ)`` in UID
    order, changed messages taking ``modseq``; ``given`` canonical (fl.canonical_set).
    InvalidFlag (too many flags). Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3."""
    cache = fl.FlagCache()
    plan = StorePlan([], [], [])
    for uid, text, old_modseq in rows:
        if unchanged_since is not None and old_modseq > unchanged_since:
            plan.modified.append(int(uid))
            continue
        current = cache.parse(text)
        new = fl.apply(current, mode, given)
        if new == current:
            plan.states.append((int(uid), current, int(old_modseq)))
            continue
        plan.updates.append((int(uid), fl.to_text(new)))
        plan.states.append((int(uid), new, modseq))
    return plan


# -- EXPUNGE -------------------------------------------------------------------------------


def _remove(conn: Connection, box: LockedMailbox, gone: Sequence[int]) -> None:
    """Delete the messages ``gone`` of a locked mailbox and record them as expunged with
    one new MODSEQ."""
    box.highestmodseq += 1
    conn.execute(
        delete(messages).where(
            messages.c.mailbox_id == box.id, messages.c.uid == bindparam("b_uid")
        ),
        [{"b_uid": u} for u in gone],
    )
    conn.execute(
        insert(expunged),
        [{"mailbox_id": box.id, "uid": u, "modseq": box.highestmodseq} for u in gone],
    )
    save_counters(conn, box)


def expunge(
    conn: Connection, dialect: Dialect, mailbox_id: MailboxId, uids: UidSet | None
) -> tuple[list[int], int]:
    """Remove the ``\\Deleted`` messages (of ``uids`` if given); their UIDs ascending
    and the mailbox's HIGHESTMODSEQ after. Spec: RFC 9051 §6.4.3, §6.4.9 (UID EXPUNGE);
    RFC 7162 §3.2.10."""
    box = lock_mailboxes(conn, [mailbox_id])[mailbox_id]
    if uids is not None and not uids:
        return [], box.highestmodseq
    query, params = _in_uids(
        dialect, messages, mailbox_id, UidSet.all() if uids is None else uids, messages.c.uid
    )
    gone = [int(u) for u in conn.execute(query.where(has_flag(fl.DELETED)), params).scalars()]
    if gone:
        _remove(conn, box, gone)
    return gone, box.highestmodseq


def delete_messages(
    conn: Connection, dialect: Dialect, mailbox_id: MailboxId, uids: UidSet
) -> tuple[list[int], int]:
    """Remove exactly the messages of ``uids`` that exist (flags do not matter), in the
    open transaction; their UIDs ascending and HIGHESTMODSEQ after. Spec: RFC 1939 §6
    (the UPDATE state removes the messages marked deleted)."""
    box = lock_mailboxes(conn, [mailbox_id])[mailbox_id]
    if not uids:
        return [], box.highestmodseq
    query, params = _in_uids(dialect, messages, mailbox_id, uids, messages.c.uid)
    gone = [int(u) for u in conn.execute(query, params).scalars()]
    if gone:
        _remove(conn, box, gone)
    return gone, box.highestmodseq


def message_sizes(conn: Connection, mailbox_id: MailboxId) -> list[tuple[int, int]]:
    """``(uid, size with CRLF line ends)`` of every message, by UID (a POP3 maildrop
    listing: ``crlf_size`` where set, else RFC822.SIZE)."""
    rows = conn.execute(
        select(messages.c.uid, func.coalesce(messages.c.crlf_size, messages.c.size))
        .where(messages.c.mailbox_id == mailbox_id)
        .order_by(messages.c.uid)
    )
    return [(int(uid), int(size)) for uid, size in rows]


# -- APPEND --------------------------------------------------------------------------------


def append(
    conn: Connection,
    dialect: Dialect,
    files: BlobFiles,
    mailbox_id: MailboxId,
    blob: BlobRef,
    flags: frozenset[str],
    internal_date: dt.datetime,
    summary: str,
    crlf_size: int | None = None,
    *,
    now: dt.datetime,
) -> Appended:
    """Insert the blob row (if new) and the message in the open transaction.
    NotFound (mailbox, or a file blob never committed), InvalidFlag, OverQuota,
    StoreError. ``now`` is the SAVEDATE. Spec: RFC 9051 §6.3.12; RFC 4315 §3; RFC 9208
    §4.1; RFC 8514 §2."""
    stored_flags = fl.canonical_set(flags)
    if internal_date.tzinfo is None:
        raise StoreError("APPEND refused: naive INTERNALDATE")
    check_addition(lock_for_quota(conn, mailbox_id), blob.size, 1)
    box = lock_mailboxes(conn, [mailbox_id])[mailbox_id]
    _ensure_blob(conn, dialect, files, blob)
    uid, modseq = box.uidnext, box.highestmodseq + 1
    conn.execute(
        insert(messages).values(
            mailbox_id=mailbox_id,
            uid=uid,
            modseq=modseq,
            flags=fl.to_text(stored_flags),
            internal_date=internal_date,
            size=blob.size,
            blob_key=blob.key,
            trace_prefix=b"",
            summary=summary,
            queue_id=None,
            crlf_size=None if crlf_size == blob.size else crlf_size,
            save_date=now,
        )
    )
    box.uidnext, box.highestmodseq = uid + 1, modseq
    save_counters(conn, box)
    return Appended(mailbox_id, box.uidvalidity, uid, modseq)


def _ensure_blob(conn: Connection, dialect: Dialect, files: BlobFiles, ref: BlobRef) -> None:
    if ref.inline is not None:
        if len(ref.inline) != ref.size:
            raise StoreError(f"blob {ref.key}: inline bytes do not match its size")
        conn.execute(dialect.insert_blob(ref))
        return
    present = conn.execute(select(blobs.c.key).where(blobs.c.key == ref.key)).first()
    if present is None:
        if not files.exists(ref.key):
            raise NotFound(f"blob {ref.key} was never committed")
        conn.execute(dialect.insert_blob(ref))


# -- COPY and MOVE -------------------------------------------------------------------------

_COPIED = (
    "flags",
    "internal_date",
    "size",
    "crlf_size",
    "blob_key",
    "trace_prefix",
    "summary",
)


def _copy(
    conn: Connection,
    dialect: Dialect,
    source: LockedMailbox,
    uids: UidSet,
    target: LockedMailbox,
    quota: QuotaUsage | None = None,
    *,
    now: dt.datetime,
) -> tuple[list[int], int]:
    """Copy the messages of ``uids`` into ``target`` set-wise (INSERT ... SELECT, new
    UIDs by ascending source UID); returns the source UIDs and the first new UID.
    OverQuota (nothing written) when ``quota``, the target account's usage, cannot
    take the copies."""
    src = messages.alias("src")
    query, params = _in_uids(dialect, src, source.id, uids, src.c.uid, src.c.size)
    found = conn.execute(query, params).all()
    source_uids = [int(u) for u, _ in found]
    first = target.uidnext
    if not source_uids:
        return [], first
    check_addition(quota, sum(int(size) for _, size in found), len(found))
    target.uidnext += len(source_uids)
    target.highestmodseq += 1
    numbered, _ = _in_uids(
        dialect,
        src,
        source.id,
        uids,
        literal(target.id, Integer),
        literal(first - 1, BigInteger) + func.row_number().over(order_by=src.c.uid),
        literal(target.highestmodseq, BigInteger),
        literal(now, UtcDateTime()),
        *(src.c[name] for name in _COPIED),
    )
    conn.execute(
        insert(messages).from_select(
            ["mailbox_id", "uid", "modseq", "save_date", *_COPIED], numbered
        ),
        params,
    )
    save_counters(conn, target)
    return source_uids, first


def copy_messages(
    conn: Connection,
    dialect: Dialect,
    source_id: MailboxId,
    uids: UidSet,
    target_id: MailboxId,
    *,
    now: dt.datetime,
) -> CopyResult:
    """COPY: same blobs, flags and INTERNALDATE; one new MODSEQ in the target.
    NotFound, OverQuota. Spec: RFC 9051 §6.4.7; RFC 4315 §3 (COPYUID); RFC 9208 §4.1."""
    quota = lock_for_quota(conn, target_id, also=[source_id]) if uids else None
    locked = lock_mailboxes(conn, [source_id, target_id])
    source, target = locked[source_id], locked[target_id]
    moved, first = (
        _copy(conn, dialect, source, uids, target, quota, now=now) if uids else ([], target.uidnext)
    )
    pairs = tuple((u, first + i) for i, u in enumerate(moved))
    return CopyResult(target.uidvalidity, pairs, target.highestmodseq)


def move_messages(
    conn: Connection,
    dialect: Dialect,
    source_id: MailboxId,
    uids: UidSet,
    target_id: MailboxId,
    *,
    now: dt.datetime,
) -> MoveResult:
    """MOVE: COPY, then expunge the sources, in the open transaction. NotFound;
    OverQuota only between two accounts (within one the usage does not change).
    Spec: RFC 6851 §3.3; RFC 9208 §4.1."""
    quota = lock_for_quota(conn, target_id, also=[source_id]) if uids else None
    locked = lock_mailboxes(conn, [source_id, target_id])
    source, target = locked[source_id], locked[target_id]
    if quota is not None and source.account_id == target.account_id:
        quota = None  # the messages stay in the account: its usage does not change
    moved, first = (
        _copy(conn, dialect, source, uids, target, quota, now=now) if uids else ([], target.uidnext)
    )
    if moved:
        _remove(conn, source, moved)
    pairs = tuple((u, first + i) for i, u in enumerate(moved))
    return MoveResult(target.uidvalidity, pairs, target.highestmodseq, source.highestmodseq)
