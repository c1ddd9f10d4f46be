"""The delivery fast path's statements on the sqlite3 cursor.

Inside the transaction SQLAlchemy opened (``BEGIN IMMEDIATE``), ``SqliteBatchIO`` runs
the same statements as ``delivery_batch.AlchemyBatchIO`` with the driver's cursor: at one
message per batch SQLAlchemy's per-statement work (compiled-cache lookup, parameter
processing, result wrapping) was most of the writer thread's CPU. Values are converted
with the column types' own bind processors, so the stored bytes are the same as through
SQLAlchemy (a contract test reads them back through SQLAlchemy).

Spec: ARCHITECTURE.md principle 3 (one durability point per message).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from postel.store.delivery_batch import (
    _SEEN_SQLITE,
    LOCK_CHUNK,
    Limits,
    MailboxKey,
    SeenKey,
    _MailboxState,
)
from postel.store.quota_ops import USAGE_CHUNK, USAGE_SQL
from postel.store.schema import messages

__all__ = ["SqliteBatchIO"]

_DIALECT = sqlite_dialect.dialect()
_MESSAGE_COLUMNS = (
    "mailbox_id",
    "uid",
    "modseq",
    "flags",
    "internal_date",
    "size",
    "blob_key",
    "trace_prefix",
    "summary",
    "queue_id",
    "save_date",
)
ROWS_PER_STATEMENT = 80
"""Rows per multi-row INSERT or UPDATE: 80 x 11 values stays under the 999 bound
parameters of SQLite builds older than 3.32 (SQLITE_MAX_VARIABLE_NUMBER)."""
_INSERT_MESSAGE = f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)})"
_INSERT_BLOB = "INSERT INTO blobs (key, size, data)"
_BLOB_END = " ON CONFLICT (key) DO NOTHING"
_UPDATE_MAILBOXES = "UPDATE mailboxes SET uidnext = v.column2, highestmodseq = v.column3 FROM ("
_UPDATE_MAILBOXES_END = ") AS v WHERE mailboxes.id = v.column1"
_SEEN = _SEEN_SQLITE.replace(":pairs", "?")


def _processors() -> tuple[Callable[[Any], Any] | None, ...]:
    return tuple(messages.c[name].type.bind_processor(_DIALECT) for name in _MESSAGE_COLUMNS)


_BIND = _processors()


@dataclass(slots=True)
class SqliteBatchIO:
    """``delivery_batch.BatchIO`` on ``raw``, the sqlite3 connection of the open
    transaction. Raises sqlite3.Error for what the database refuses."""

    raw: sqlite3.Connection
    _savepoints: int = 0

    def lock_mailboxes(
        self, account_ids: list[int], names: frozenset[str]
    ) -> tuple[dict[MailboxKey, _MailboxState], Limits]:
        # BEGIN IMMEDIATE already holds SQLite's write lock: a plain read of the named
        # mailboxes is enough (each row read is one more step of the statement).
        state: dict[MailboxKey, _MailboxState] = {}
        limits: Limits = {}
        wanted = sorted(names)
        for i in range(0, len(account_ids), LOCK_CHUNK):
            chunk = account_ids[i : i + LOCK_CHUNK]
            sql = (
                "SELECT mb.id, mb.account_id, mb.name, mb.uidvalidity, mb.uidnext, "
                "mb.highestmodseq, a.storage_limit, a.message_limit "
                "FROM mailboxes AS mb JOIN accounts AS a ON a.id = mb.account_id "
                f"WHERE mb.account_id IN ({', '.join('?' * len(chunk))}) "
                f"AND mb.name IN ({', '.join('?' * len(wanted))}) ORDER BY mb.id"
            )
            for row in self.raw.execute(sql, [*chunk, *wanted]):
                mb_id, account_id, name, validity, uidnext, modseq, storage, count = row
                state[(account_id, name)] = _MailboxState(mb_id, validity, uidnext, modseq)
                if storage is not None or count is not None:
                    limits[account_id] = (storage, count)
        return state, limits

    def usage(self, account_ids: list[int]) -> dict[int, tuple[int, int]]:
        used: dict[int, tuple[int, int]] = {}
        for i in range(0, len(account_ids), USAGE_CHUNK):
            chunk = account_ids[i : i + USAGE_CHUNK]
            sql = USAGE_SQL.format(marks=", ".join("?" * len(chunk)))
            for account_id, octets, count in self.raw.execute(sql, chunk):
                used[int(account_id)] = (int(octets), int(count))
        return used

    def seen(self, pairs: list[SeenKey]) -> dict[SeenKey, tuple[int, int]]:
        rows = self.raw.execute(_SEEN, (json.dumps(pairs),))
        return {(int(mb), str(q)): (int(uid), int(modseq)) for mb, q, uid, modseq in rows}

    def present_blobs(self, keys: list[str]) -> set[str]:
        present: set[str] = set()
        for i in range(0, len(keys), LOCK_CHUNK):
            chunk = keys[i : i + LOCK_CHUNK]
            sql = f"SELECT key FROM blobs WHERE key IN ({', '.join('?' * len(chunk))})"
            present.update(row[0] for row in self.raw.execute(sql, chunk))
        return present

    def insert_blobs(self, rows: list[dict[str, Any]]) -> None:
        self._many(_INSERT_BLOB, 3, [(r["key"], r["size"], r["data"]) for r in rows], _BLOB_END)

    def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        self._many(_INSERT_MESSAGE, len(_MESSAGE_COLUMNS), [_message_values(r) for r in rows])

    def update_mailboxes(self, rows: list[dict[str, Any]]) -> None:
        values = [(r["b_id"], r["b_uidnext"], r["b_modseq"]) for r in rows]
        self._many(_UPDATE_MAILBOXES, 3, values, _UPDATE_MAILBOXES_END)

    def _many(self, head: str, width: int, rows: list[tuple[Any, ...]], tail: str = "") -> None:
        """``head VALUES (?, ...), (?, ...) tail``: one statement (one step of SQLite's
        engine) per ROWS_PER_STATEMENT rows instead of one per row."""
        marks = "(" + ", ".join("?" * width) + ")"
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i : i + ROWS_PER_STATEMENT]
            sql = f"{head} VALUES {', '.join([marks] * len(chunk))}{tail}"
            self.raw.execute(sql, [value for row in chunk for value in row])

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[object]:
        self._savepoints += 1
        name = f"postel_fast_{self._savepoints}"
        self.raw.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            self.raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.raw.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.raw.execute(f"RELEASE SAVEPOINT {name}")


def _message_values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        value if proc is None or value is None else proc(value)
        for proc, value in zip(_BIND, (row[c] for c in _MESSAGE_COLUMNS), strict=True)
    )
