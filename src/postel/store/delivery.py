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
from concurrent.futures import Executor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from postel import limits
from postel.errors import StoreError
from postel.store.api import Delivered, Delivery
from postel.store.blobs import BlobFiles
from postel.store.delivery_batch import DeliveryStatements, Outcome, run_batch
from postel.store.delivery_sqlite import SqliteBatchIO

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
            pending = loop.run_in_executor(
                self._executor, functools.partial(self._commit, [r.deliveries for r in live])
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
            for r in live:
                if not r.future.done():
                    r.future.set_exception(StoreError(f"delivery commit failed: {exc}"))
            return
        for r, outcome in zip(live, pending.result(), strict=True):
            if r.future.done():
                continue
            if isinstance(outcome, StoreError):
                r.future.set_exception(outcome)
            else:
                r.future.set_result(outcome)

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
