"""The outbound queue's per-message statements on the sqlite3 cursor.

Inside the transaction SQLAlchemy opened (``BEGIN IMMEDIATE``), ``SqliteQueueIO`` runs
the statements ``queue_ops`` runs for every leased and settled message (taking the
chosen recipients, reading them back with their messages, checking and recording
settles) with the driver's cursor: SQLAlchemy's per-statement and per-row work was most
of the store writer's CPU in outbound delivery. Values go through the column types' own
bind and result processors, so the stored bytes are the same as through SQLAlchemy.
sqlite3 errors become StoreError.

Spec: RFC 5321 §4.5.4.1; RELIABILITY.md D1.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from postel.errors import StoreError
from postel.smtp.params import Body, Notify, Orcpt, Ret
from postel.store.api import BlobRef
from postel.store.queue_api import (
    QueuedMessage,
    QueueMessageId,
    QueueRecipient,
    QueueRecipientId,
    RecipientState,
)
from postel.store.schema import queue_recipients

CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite's default limit on host parameters is 32766;
local policy keeps statements short)."""

_DIALECT = sqlite_dialect.dialect()
_TYPE = queue_recipients.c.next_attempt.type.dialect_impl(_DIALECT)
_bind = _TYPE.bind_processor(_DIALECT)
_result = _TYPE.result_processor(_DIALECT, None)

_OPEN = (RecipientState.QUEUED.value, RecipientState.DEFERRED.value, RecipientState.LEASED.value)
_DUE_IN = (
    "SELECT id, message_id, domain FROM queue_recipients WHERE message_id IN ({marks}) "
    f"AND state IN ({', '.join('?' * len(_OPEN))}) AND next_attempt <= ? ORDER BY id"
)
_LEASE = (
    "UPDATE queue_recipients SET state = ?, leased_by = ?, lease_expires = ?, "
    "next_attempt = ? WHERE id = ?"
)
_LEASED = (
    "SELECT m.id, m.queue_id, m.blob_key, m.reverse_path, m.envid, m.ret, m.body, "
    "m.smtputf8, m.requiretls, m.created, m.trace_prefix, m.size, r.id, r.address, "
    "r.domain, r.notify, r.orcpt_type, r.orcpt, r.state, r.attempts, r.next_attempt, "
    "r.last_attempt, r.last_reply, r.delay_notified FROM queue_messages AS m "
    "JOIN queue_recipients AS r ON r.message_id = m.id WHERE r.id IN ({marks}) "
    "ORDER BY m.created, m.id, r.id"
)
_HELD = (
    "SELECT id, attempts FROM queue_recipients WHERE id IN ({marks}) AND state = ? "
    "AND leased_by = ? AND lease_expires = ?"
)
_HAND_BACK = (
    "UPDATE queue_recipients SET leased_by = NULL, lease_expires = NULL, state = ?, "
    "next_attempt = ? WHERE id = ?"
)
_RECORD = (
    "UPDATE queue_recipients SET leased_by = NULL, lease_expires = NULL, state = ?, "
    "next_attempt = ?, attempts = ?, last_attempt = ?, last_reply = ? WHERE id = ?"
)


def sqlite_io(conn: Connection) -> SqliteQueueIO | None:
    """The fast path for ``conn``'s transaction on SQLite, None on other backends."""
    if conn.dialect.name != "sqlite":
        return None
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return SqliteQueueIO(raw)


def _when(value: dt.datetime | None) -> Any:
    return value if value is None or _bind is None else _bind(value)


def _time(value: Any) -> Any:
    return value if _result is None else _result(value)


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class LeasedRow:
    """One recipient read back after leasing, with its message."""

    message: QueuedMessage
    recipient: QueueRecipient


@dataclass(slots=True)
class SqliteQueueIO:
    """The queue statements on ``raw``, the sqlite3 connection of the open
    transaction. Raises StoreError for what the database refuses."""

    raw: sqlite3.Connection

    def due_of(self, message_ids: Sequence[int], now: dt.datetime) -> list[tuple[int, int, str]]:
        """(id, message_id, domain) of the open, due recipients of ``message_ids``."""
        found: list[tuple[int, int, str]] = []
        for chunk in _chunks(message_ids):
            sql = _DUE_IN.format(marks=", ".join("?" * len(chunk)))
            found.extend(self._rows(sql, [*chunk, *_OPEN, _when(now)]))
        found.sort()
        return found

    def lease(self, ids: Sequence[int], worker: str, expires: dt.datetime) -> None:
        """Mark ``ids`` leased by ``worker`` until ``expires``."""
        when = _when(expires)
        leased = RecipientState.LEASED.value
        self._many(_LEASE, [(leased, worker, when, when, i) for i in ids])

    def leased(self, ids: Sequence[int]) -> Iterator[LeasedRow]:
        """``ids`` with their messages, by message then recipient id."""
        rows: list[Any] = []
        for chunk in _chunks(ids):
            rows.extend(self._rows(_LEASED.format(marks=", ".join("?" * len(chunk))), chunk))
        if len(ids) > CHUNK:
            rows.sort(key=lambda r: (_time(r[9]), r[0], r[12]))
        messages: dict[int, QueuedMessage] = {}
        for row in rows:
            message = messages.get(row[0])
            if message is None:
                message = messages[row[0]] = _message(row)
            yield LeasedRow(message, _recipient(row))

    def held(self, ids: Sequence[int], worker: str, expires: dt.datetime) -> list[tuple[int, int]]:
        """(id, attempts) of the ``ids`` still leased by ``worker`` until ``expires``."""
        found: list[tuple[int, int]] = []
        params = [RecipientState.LEASED.value, worker, _when(expires)]
        for chunk in _chunks(ids):
            sql = _HELD.format(marks=", ".join("?" * len(chunk)))
            found.extend(self._rows(sql, [*chunk, *params]))
        return found

    def settle(self, returned: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> None:
        """Write settles: ``returned`` rows (rid, new_state, due) and ``recorded`` rows
        (rid, new_state, due, tries, tried, reply), as ``queue_ops.settle_many``
        builds them."""
        if returned:
            self._many(_HAND_BACK, [(r["new_state"], _when(r["due"]), r["rid"]) for r in returned])
        if recorded:
            self._many(
                _RECORD,
                [
                    (
                        r["new_state"],
                        _when(r["due"]),
                        r["tries"],
                        _when(r["tried"]),
                        r["reply"],
                        r["rid"],
                    )
                    for r in recorded
                ],
            )

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self.raw.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc


def _message(row: Sequence[Any]) -> QueuedMessage:
    trace = bytes(row[10])
    return QueuedMessage(
        id=QueueMessageId(row[0]),
        queue_id=row[1],
        blob=BlobRef(row[2], int(row[11]) - len(trace)),
        reverse_path=row[3],
        envid=row[4],
        ret=None if row[5] is None else Ret(row[5]),
        body=None if row[6] is None else Body(row[6]),
        smtputf8=bool(row[7]),
        requiretls=bool(row[8]),
        created=_time(row[9]),
        trace_prefix=trace,
        size=int(row[11]),
    )


def _recipient(row: Sequence[Any]) -> QueueRecipient:
    return QueueRecipient(
        id=QueueRecipientId(row[12]),
        message_id=QueueMessageId(row[0]),
        address=row[13],
        domain=row[14],
        notify=None if row[15] is None else frozenset(Notify(v) for v in row[15].split(",")),
        orcpt=None if row[16] is None else Orcpt(row[16], row[17]),
        state=RecipientState(row[18]),
        attempts=int(row[19]),
        next_attempt=_time(row[20]),
        last_attempt=None if row[21] is None else _time(row[21]),
        last_reply=row[22],
        delay_notified=bool(row[23]),
    )


__all__ = ["CHUNK", "LeasedRow", "SqliteQueueIO", "sqlite_io"]
