"""STORE on SQLite through the sqlite3 connection of the writer thread.

A flag change is the most frequent write of an IMAP session and it is committed with an
fsync before the tagged OK (RELIABILITY.md D1). Through SQLAlchemy its transaction cost
several times the fsync itself in Python work (compiled-cache lookups, the pool, result
wrapping); here the same statements run on the driver's cursor and the decisions are
``message_ops.plan_store``'s, so both paths store the same bytes and return the same
FlagsResult (a contract test runs them side by side).

Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3; https://www.sqlite.org/lang_transaction.html
"""

from __future__ import annotations

import json
import sqlite3

from postel.errors import NotFound
from postel.ids import MailboxId
from postel.store import flags as fl
from postel.store.api import FlagMode, FlagsResult, UidSet
from postel.store.message_ops import plan_store

__all__ = ["store_flags"]

_HIGHESTMODSEQ = "SELECT highestmodseq FROM mailboxes WHERE id = ?"
_ONE_RANGE = (
    "SELECT uid, flags, modseq FROM messages"
    " WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid"
)
_RANGES = (
    "SELECT m.uid, m.flags, m.modseq FROM json_each(?) AS r CROSS JOIN messages AS m"
    " ON m.mailbox_id = ?"
    " AND m.uid BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')"
    " ORDER BY m.uid"
)
"""Several ranges: the range list drives the loop (as message_ops.DrivingJoin)."""
_UPDATE_MESSAGE = "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?"
_UPDATE_MAILBOX = "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?"


def store_flags(
    raw: sqlite3.Connection,
    mailbox_id: MailboxId,
    uids: UidSet,
    mode: FlagMode,
    flags: frozenset[str],
    unchanged_since: int | None,
) -> FlagsResult:
    """``message_ops.store_flags`` on ``raw``, inside a write transaction the caller
    opened (``BEGIN IMMEDIATE`` holds SQLite's write lock, so reading HIGHESTMODSEQ is
    enough to own it). NotFound, InvalidFlag; sqlite3.Error for what the database refuses.
    Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3."""
    given = fl.canonical_set(flags)
    row = raw.execute(_HIGHESTMODSEQ, (int(mailbox_id),)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    highest = int(row[0])
    if not uids:
        return FlagsResult(highestmodseq=highest, messages=())
    if len(uids.ranges) == 1:
        low, high = uids.ranges[0]
        rows = raw.execute(_ONE_RANGE, (int(mailbox_id), low, high))
    else:
        rows = raw.execute(_RANGES, (json.dumps(uids.ranges), int(mailbox_id)))
    modseq = highest + 1
    plan = plan_store(rows, mode, given, unchanged_since, modseq)
    if not plan.updates:
        return plan.result(highest)
    raw.executemany(
        _UPDATE_MESSAGE, [(text, modseq, int(mailbox_id), uid) for uid, text in plan.updates]
    )
    raw.execute(_UPDATE_MAILBOX, (modseq, int(mailbox_id)))
    return plan.result(modseq)
