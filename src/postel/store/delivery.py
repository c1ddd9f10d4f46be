"""The durability point: group-committed delivery of messages into mailboxes.

Concurrent ``deliver()`` calls queue up; one writer task takes up to
``limits.GROUP_COMMIT_MAX_BATCH`` of them and runs ONE transaction for all, then
resolves every caller. Each caller's deliveries run inside a savepoint, so a caller whose
delivery fails (unknown mailbox, missing blob, constraint) gets its own error and the
others of the batch still commit.

Within the transaction, the mailbox rows of every account in the batch are locked in id
order (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the
whole database), so several processes sharing one database allocate UIDs safely and
cannot deadlock on each other.

Spec: ARCHITECTURE.md principle 3; RELIABILITY.md D1; RFC 9051 §2.3.1.1 (UID, UIDNEXT);
RFC 7162 §3.1 (MODSEQ, HIGHESTMODSEQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from sqlalchemy import Insert, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError

from postel import limits
from postel.errors import NotFound, StoreError
from postel.ids import MailboxId
from postel.store.api import Delivered, Delivery
from postel.store.blobs import BlobFiles
from postel.store.directory_sql import flags_text, mailbox_name
from postel.store.schema import blobs, mailboxes, messages

_log = logging.getLogger(__name__)

LOCK_CHUNK = 500
"""Accounts per ``IN (...)`` list when locking mailbox rows (under every driver's
bind-parameter limit)."""

Outcome = list[Delivered] | StoreError


@dataclass(slots=True)
class _MailboxState:
    id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    dirty: bool = False

    def copy(self) -> _MailboxState:
        return _MailboxState(
            self.id, self.uidvalidity, self.uidnext, self.highestmodseq, self.dirty
        )


@dataclass(slots=True)
class _Batch:
    conn: Connection
    files: BlobFiles
    insert_blob: Insert
    state: dict[tuple[int, str], _MailboxState]
    known_blobs: set[str] = field(default_factory=set)


def _insert_ignore(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(blobs).on_conflict_do_nothing(index_elements=["key"])
    return sqlite.insert(blobs).on_conflict_do_nothing(index_elements=["key"])


def _lock_mailboxes(
    conn: Connection, account_ids: list[int]
) -> dict[tuple[int, str], _MailboxState]:
    state: dict[tuple[int, str], _MailboxState] = {}
    for i in range(0, len(account_ids), LOCK_CHUNK):
        chunk = account_ids[i : i + LOCK_CHUNK]
        rows = conn.execute(
            select(
                mailboxes.c.id,
                mailboxes.c.account_id,
                mailboxes.c.name,
                mailboxes.c.uidvalidity,
                mailboxes.c.uidnext,
                mailboxes.c.highestmodseq,
            )
            .where(mailboxes.c.account_id.in_(chunk))
            .order_by(mailboxes.c.id)
            .with_for_update()
        )
        for mb_id, account_id, name, validity, uidnext, modseq in rows:
            state[(account_id, name)] = _MailboxState(mb_id, validity, uidnext, modseq)
    return state


def _ensure_blob(batch: _Batch, delivery: Delivery) -> None:
    ref = delivery.blob
    if ref.key in batch.known_blobs:
        return
    if ref.inline is not None:
        if len(ref.inline) != ref.size:
            raise StoreError(f"blob {ref.key}: inline bytes do not match its size")
        batch.conn.execute(batch.insert_blob.values(key=ref.key, size=ref.size, data=ref.inline))
        return
    exists = batch.conn.execute(select(blobs.c.size).where(blobs.c.key == ref.key)).first()
    if exists is None:
        if not batch.files.exists(ref.key):
            raise NotFound(f"blob {ref.key} was never committed")
        batch.conn.execute(batch.insert_blob.values(key=ref.key, size=ref.size, data=None))


def _deliver_one(
    batch: _Batch, delivery: Delivery, overlay: dict[tuple[int, str], _MailboxState]
) -> Delivered:
    where = (int(delivery.account_id), mailbox_name(delivery.mailbox))
    mailbox = overlay.get(where)
    if mailbox is None:
        base = batch.state.get(where)
        if base is None:
            raise NotFound(f"no mailbox {where[1]!r} for account {where[0]}")
        mailbox = overlay[where] = base.copy()
    if delivery.queue_id is not None:
        seen = batch.conn.execute(
            select(messages.c.uid, messages.c.modseq).where(
                messages.c.mailbox_id == mailbox.id, messages.c.queue_id == delivery.queue_id
            )
        ).first()
        if seen is not None:
            return Delivered(
                account_id=delivery.account_id,
                mailbox_id=MailboxId(mailbox.id),
                uidvalidity=mailbox.uidvalidity,
                uid=int(seen[0]),
                modseq=int(seen[1]),
                duplicate=True,
            )
    _ensure_blob(batch, delivery)
    uid = mailbox.uidnext
    modseq = mailbox.highestmodseq + 1
    batch.conn.execute(
        insert(messages).values(
            mailbox_id=mailbox.id,
            uid=uid,
            modseq=modseq,
            flags=flags_text(delivery.flags),
            internal_date=delivery.internal_date,
            size=len(delivery.trace_prefix) + delivery.blob.size,
            blob_key=delivery.blob.key,
            trace_prefix=delivery.trace_prefix,
            summary=delivery.summary,
            queue_id=delivery.queue_id,
        )
    )
    mailbox.uidnext = uid + 1
    mailbox.highestmodseq = modseq
    mailbox.dirty = True
    return Delivered(
        account_id=delivery.account_id,
        mailbox_id=MailboxId(mailbox.id),
        uidvalidity=mailbox.uidvalidity,
        uid=uid,
        modseq=modseq,
    )


def _run_request(batch: _Batch, request: Sequence[Delivery]) -> Outcome:
    overlay: dict[tuple[int, str], _MailboxState] = {}
    try:
        with batch.conn.begin_nested():
            out = [_deliver_one(batch, d, overlay) for d in request]
    except StoreError as exc:
        return exc
    except DBAPIError as exc:
        _log.warning("store.deliver.rejected error=%s", type(exc.orig).__name__)
        return StoreError(f"delivery refused by the database: {exc.orig}")
    except (StatementError, ValueError, TypeError) as exc:
        # Bad values (e.g. a naive internal_date) fail this caller only.
        _log.warning("store.deliver.rejected error=%s", type(exc).__name__)
        return StoreError(f"delivery refused: {exc}")
    batch.state.update(overlay)
    batch.known_blobs.update(d.blob.key for d in request)
    return out


def run_batch(
    conn: Connection, dialect: str, files: BlobFiles, requests: Sequence[Sequence[Delivery]]
) -> list[Outcome]:
    """Run every request of a batch in the open transaction ``conn``; one outcome per
    request (its Delivered list, or the StoreError that rolled back its savepoint)."""
    account_ids = sorted({int(d.account_id) for request in requests for d in request})
    batch = _Batch(
        conn=conn,
        files=files,
        insert_blob=_insert_ignore(dialect),
        state=_lock_mailboxes(conn, account_ids),
    )
    outcomes = [_run_request(batch, request) for request in requests]
    dirty = [
        {"b_id": s.id, "b_uidnext": s.uidnext, "b_modseq": s.highestmodseq}
        for s in batch.state.values()
        if s.dirty
    ]
    if dirty:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.id == bindparam("b_id"))
            .values(uidnext=bindparam("b_uidnext"), highestmodseq=bindparam("b_modseq")),
            dirty,
        )
    return outcomes


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
        self._dialect = dialect
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
            outcomes = run_batch(conn, self._dialect, self._files, requests)
        self.batches_committed += 1
        return outcomes
