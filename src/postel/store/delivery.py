"""The durability point: group-committed delivery of messages into mailboxes.

Concurrent ``deliver()`` calls queue up; one writer task takes up to
``limits.GROUP_COMMIT_MAX_BATCH`` of them and runs ONE transaction for all, then
resolves every caller (``delivery_batch.run_batch``). A caller whose delivery fails
(unknown mailbox, missing blob, a value the database refuses) gets its own error and the
others of the batch still commit: the batch is first written set-wise under one savepoint
(the fast path, which leaves failing callers out); if that write fails, the batch runs
again caller by caller, each in its own savepoint.

Guarantees, on both backends:

* UIDs are dense and increasing per mailbox: every stored message takes ``uidnext`` and
  ``highestmodseq + 1`` of its mailbox, in the order of the callers and of their
  deliveries; a failed caller takes none.
* Idempotency: a delivery whose ``(mailbox, queue_id)`` is already stored, in the
  database or earlier in the same batch (the same caller or another), stores nothing
  and returns the first delivery's UID and MODSEQ with ``duplicate=True``.
* Lock order: the mailbox rows of every account in the batch are locked first, in id
  order (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the
  whole database), and blob rows are inserted in key order, so several processes sharing
  one database allocate UIDs safely and cannot deadlock on each other.

Where the transaction runs (docs/adr/0009-sqlite-direct-commit.md): on PostgreSQL, and
on SQLite whenever the direct path cannot be used, the whole batch runs on the store's
writer thread. On SQLite a batch normally takes the direct path: ``BEGIN IMMEDIATE``
and the batch's statements run on the event loop's thread, on a connection of the
committer's own that never waits for a lock (``busy_timeout = 0``), and only ``COMMIT``
(the WAL write and its fsync) runs on the committer's own thread. Each statement step
of a thread releases and retakes the interpreter lock, and the writer thread competed
for it with the event loop at every step. When the database is locked by another
writer (the writer thread, another process) or the fast path fails, the direct path
rolls back and the batch runs on the writer thread as above, which waits for the lock
and falls back per request.

Spec: ARCHITECTURE.md principle 3; RELIABILITY.md D1; RFC 9051 §2.3.1.1 (UID, UIDNEXT);
RFC 7162 §3.1 (MODSEQ, HIGHESTMODSEQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from postel import limits
from postel.errors import StoreBusy, StoreError
from postel.store.api import Delivered, Delivery
from postel.store.blobs import BlobFiles
from postel.store.delivery_batch import DeliveryStatements, Outcome, run_batch
from postel.store.delivery_sqlite import SqliteBatchIO
from postel.store.engines import configure_sqlite

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    deliveries: Sequence[Delivery]
    future: asyncio.Future[list[Delivered]]


class GroupCommitter:
    """Queues ``deliver()`` requests and commits them in shared transactions.

    ``engine`` is the writer engine; ``executor`` is the store's single writer thread.
    Spec: ARCHITECTURE.md principle 3.
    """

    def __init__(
        self,
        engine: Engine,
        dialect: str,
        files: BlobFiles,
        executor: Executor,
        *,
        max_batch: int = limits.GROUP_COMMIT_MAX_BATCH,
    ) -> None:
        self._engine = engine
        self._statements = DeliveryStatements.for_dialect(dialect)
        self._files = files
        self._executor = executor
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches_committed = 0
        """Transactions committed so far (each may carry many deliver() calls)."""
        self.batches_direct = 0
        """Of those, the ones that took the direct path (SQLite; module docstring)."""
        self._direct: sqlite3.Connection | None = None
        self._commit_thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="postel-store-group-commit")

    async def stop(self) -> None:
        """Stop taking batches; requests still queued fail with StoreError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._commit_thread is not None:
            self._commit_thread.shutdown(wait=True)
            self._commit_thread = None
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(StoreError("store closed"))

    async def submit(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
        """Deliver in the next shared transaction; returns after it is durable."""
        if not deliveries:
            return []
        if self._task is None:
            raise StoreError("store is not open")
        future: asyncio.Future[list[Delivered]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(deliveries, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [r for r in batch if not r.future.done()]
            if not live:
                continue
            requests = [r.deliveries for r in live]
            pending = self._start_direct(loop, requests) or loop.run_in_executor(
                self._executor, functools.partial(self._commit, requests)
            )
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                # Closing: let the transaction in flight finish, answer its callers, stop.
                await asyncio.wait([pending])
                self._settle(live, pending)
                raise
            except Exception:
                pass
            self._settle(live, pending)

    @staticmethod
    def _settle(live: list[_Request], pending: asyncio.Future[list[Outcome]]) -> None:
        exc = pending.exception()
        if exc is not None:
            _log.error("store.deliver.commit_failed error=%s", exc)
            kind = StoreBusy if _locked(exc) else StoreError
            for r in live:
                if not r.future.done():
                    r.future.set_exception(kind(f"delivery commit failed: {exc}"))
            return
        for r, outcome in zip(live, pending.result(), strict=True):
            if r.future.done():
                continue
            if isinstance(outcome, StoreError):
                r.future.set_exception(outcome)
            else:
                r.future.set_result(outcome)

    def _start_direct(
        self, loop: asyncio.AbstractEventLoop, requests: list[Sequence[Delivery]]
    ) -> asyncio.Future[list[Outcome]] | None:
        """The direct path (module docstring): run the batch's statements here, then
        return the future of its COMMIT on the commit thread. None, with nothing
        written, when the batch must run on the writer thread instead."""
        if self._statements.dialect != "sqlite":
            return None
        try:
            raw = self._direct_connection()
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # Locked by another writer (the writer thread waits for it), or the file
            # cannot be opened here: the writer thread's own attempt reports that.
            if not isinstance(exc, sqlite3.OperationalError) or "locked" not in str(exc):
                _log.warning("store.deliver.direct_unavailable error=%s", exc)
            return None
        try:
            outcomes = run_batch(None, self._statements, self._files, requests, SqliteBatchIO(raw))
        except Exception as exc:
            _rollback(raw)
            _log.info("store.deliver.direct_fell_back error=%s", type(exc).__name__)
            return None
        assert self._commit_thread is not None
        return loop.run_in_executor(self._commit_thread, self._finish_direct, outcomes)

    def _direct_connection(self) -> sqlite3.Connection:
        if self._direct is None:
            database = self._engine.url.database
            assert database, "the SQLite writer engine names its database file"
            raw = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            configure_sqlite(raw, wal=True, writer=True)
            raw.execute("PRAGMA busy_timeout=0")  # never wait on the event loop's thread
            self._direct = raw
            self._commit_thread = ThreadPoolExecutor(1, thread_name_prefix="postel-store-commit")
        return self._direct

    def _finish_direct(self, outcomes: list[Outcome]) -> list[Outcome]:
        """COMMIT the direct path's transaction (commit thread); on failure nothing of
        it is kept and the error goes to every caller of the batch."""
        assert self._direct is not None
        try:
            self._direct.execute("COMMIT")
        except BaseException:
            _rollback(self._direct)
            raise
        self.batches_committed += 1
        self.batches_direct += 1
        return outcomes

    def _commit(self, requests: list[Sequence[Delivery]]) -> list[Outcome]:
        with self._engine.begin() as conn:
            io = None
            if self._statements.dialect == "sqlite":
                raw = conn.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                io = SqliteBatchIO(raw)
            outcomes = run_batch(conn, self._statements, self._files, requests, io)
        self.batches_committed += 1
        return outcomes


def _rollback(raw: sqlite3.Connection) -> None:
    """End the open transaction of ``raw`` without keeping anything; never raises."""
    with contextlib.suppress(sqlite3.Error):
        if raw.in_transaction:
            raw.execute("ROLLBACK")


def _locked(exc: BaseException) -> bool:
    """Whether ``exc`` (sqlite3's, or SQLAlchemy's around it) says the database stayed
    locked by another writer past the busy timeout. Spec: https://sqlite.org/rescode.html
    (SQLITE_BUSY: "database is locked")."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)
