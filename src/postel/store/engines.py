"""SQLAlchemy engines for the two backends, configured for durability.

SQLite: WAL, ``synchronous=FULL``, a busy timeout, foreign keys on; one writer connection
(transactions begin with ``BEGIN IMMEDIATE``) and a small pool of reader connections.
PostgreSQL (psycopg 3): ``synchronous_commit=on``.

Readers run in autocommit mode on both backends: a read costs no BEGIN and no ROLLBACK,
and every statement is its own read transaction, i.e. sees one consistent snapshot (on
SQLite the WAL read snapshot taken when the statement starts; it never blocks the writer
nor is blocked by it). A read that needs several statements to agree must be written as
one statement.

Spec: RELIABILITY.md D1; https://www.sqlite.org/wal.html; https://www.sqlite.org/pragma.html
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from postel.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another process's lock (local policy)."""
READER_CONNECTIONS = 4
"""Reader connections (and threads) per store (local policy; the machine has few cores)."""
PG_CONNECT_TIMEOUT_S = 10
"""Seconds to wait for a PostgreSQL connection (local policy)."""


@dataclass(frozen=True, slots=True)
class Engines:
    """One engine for the single writer thread and one for readers."""

    writer: Engine
    reader: Engine
    dialect: str
    """``sqlite`` or ``postgresql``."""


def make_engines(database_url: str) -> Engines:
    """Build engines for ``sqlite:///path`` or ``postgresql+psycopg://...``.

    Raises StoreError for another scheme or an in-memory SQLite database (the store must
    be durable and shared between connections).
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engines(url)
    if backend == "postgresql":
        return _postgresql_engines(url)
    raise StoreError(f"unsupported database URL scheme {url.drivername!r}")


def _sqlite_engines(url: URL) -> Engines:
    if url.database in (None, "", ":memory:") or url.database.startswith("file::memory:"):
        raise StoreError("the SQLite store needs a file path: sqlite:///path/to/postel.db")
    if url.drivername != "sqlite":
        url = url.set(drivername="sqlite")
    args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    writer = create_engine(url, pool_size=1, max_overflow=0, connect_args=args)
    reader = create_engine(
        url,
        pool_size=READER_CONNECTIONS,
        max_overflow=0,
        connect_args=args,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
    )
    _sqlite_events(writer, begin="BEGIN IMMEDIATE", wal=True, writer=True)
    _sqlite_events(reader, begin=None, wal=False, writer=False)
    return Engines(writer=writer, reader=reader, dialect="sqlite")


def configure_sqlite(
    dbapi_connection: sqlite3.Connection, *, wal: bool, writer: bool = False
) -> None:
    """Put a new sqlite3 connection in the store's mode: transactions are the caller's
    (the sqlite3 module issues no BEGIN, so SAVEPOINT and BEGIN IMMEDIATE work),
    ``synchronous=FULL`` (a commit is on disk), the busy timeout, foreign keys on, and
    with ``wal`` the database switched to WAL. A ``writer`` connection keeps its
    temporary files in memory: the statement journals of a delivery batch's savepoints
    (one per batch, a few pages) were files created, written and deleted in /var/tmp on
    every commit. Spec: https://www.sqlite.org/pragma.html (temp_store),
    https://www.sqlite.org/tempfiles.html (statement journals)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if writer:
            cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_events(engine: Engine, *, begin: str | None, wal: bool, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite(dbapi_connection, wal=wal, writer=writer)

    if begin is None:
        return

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def _postgresql_engines(url: URL) -> Engines:
    if url.drivername != "postgresql+psycopg":
        url = url.set(drivername="postgresql+psycopg")
    args = {"options": "-c synchronous_commit=on", "connect_timeout": PG_CONNECT_TIMEOUT_S}
    writer = create_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True, connect_args=args)
    reader = create_engine(
        url,
        pool_size=READER_CONNECTIONS,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=args,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
    )
    return Engines(writer=writer, reader=reader, dialect="postgresql")
