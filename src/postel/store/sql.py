"""SqlStore: the Store on SQLite or PostgreSQL through one SQLAlchemy code path.

A synchronous Engine is used from worker threads: one writer thread (every write, so a
SQLite database has one writer connection) and a few reader threads. ``deliver()`` goes
through the GroupCommitter.

Spec: ARCHITECTURE.md principle 3; RELIABILITY.md D1, D2.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from postel.clock import Clock
from postel.errors import StoreError
from postel.ids import AccountId, MailboxId
from postel.store import directory_sql as q
from postel.store import dmarc_ops as dq
from postel.store import flags_sqlite, metadata_ops, names
from postel.store import fulltext_sql as fx
from postel.store import mailbox_ops as mq
from postel.store import message_ops as xq
from postel.store import queue_admin as qa
from postel.store import queue_ops as qq
from postel.store import quota_ops as quota
from postel.store.api import (
    UID_MAX,
    Account,
    Alias,
    Appended,
    AppendItem,
    BlobRef,
    BlobWriter,
    Changes,
    CopyResult,
    Credentials,
    Delivered,
    Delivery,
    DirectoryLookup,
    Domain,
    FlagMode,
    FlagsResult,
    Mailbox,
    MailboxSnapshot,
    MailboxStatus,
    MessageAttributes,
    MoveResult,
    RecoveryReport,
    SenderPolicy,
    SpecialUse,
    Store,
    StoredMessage,
    UidSet,
)
from postel.store.blobs import READ_CHUNK, BlobFiles, SpoolingBlobWriter
from postel.store.changes import ChangeHub
from postel.store.delivery import GroupCommitter
from postel.store.directory_lookup import lookup_addresses
from postel.store.dmarc_api import DmarcEvaluation, ReceivedReport, SentReport
from postel.store.engines import READER_CONNECTIONS, configure_sqlite, make_engines
from postel.store.flags import canonical_set
from postel.store.fulltext import FULLTEXT_BATCH_MAX, Candidates, Clause
from postel.store.metadata_ops import MetadataDepth, MetadataEntry
from postel.store.migrate import upgrade
from postel.store.queue_api import (
    DEFAULT_BACKOFF,
    BackoffPolicy,
    Lease,
    NewQueuedMessage,
    NewRecipient,
    Outcome,
    QueueEntry,
    QueueFilter,
    QueueMessageId,
    QueueRecipientId,
    SettleResult,
)
from postel.store.quota_api import QuotaUsage
from postel.store.recovery import (
    ORPHAN_GRACE_SECONDS,
    SHARED_GRACE_SECONDS,
    delete_unreferenced,
    find_unreferenced,
    recover,
    sweep_orphans,
)
from postel.store.settle_batch import SettleBatcher, SettleRequest
from postel.store.snapshot_cache import SnapshotCache

if TYPE_CHECKING:
    from postel.store.pg_notify import PgChangeRelay

_log = logging.getLogger(__name__)

POINT_READ_BUSY_MS = 200
"""Longest wait of an event-loop read for SQLite's lock (see ``_message_parts``)."""

P = ParamSpec("P")
T = TypeVar("T")


class SqlStore:
    """The Store on SQLite (``sqlite:///path``) or PostgreSQL (``postgresql+psycopg://``).

    Build with ``postel.store.open_store``; call ``open()`` before use and ``close()``
    after. Errors: NotFound, AlreadyExists, StoreError (database failures included).
    Spec: RELIABILITY.md D1, D2.
    """

    def __init__(self, database_url: str, blob_dir: Path, *, clock: Clock) -> None:
        self._engines = make_engines(database_url)
        self._files = BlobFiles(blob_dir)
        self._clock = clock
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postel-store-w")
        self._readers = ThreadPoolExecutor(
            max_workers=READER_CONNECTIONS, thread_name_prefix="postel-store-r"
        )
        self._committer = GroupCommitter(
            self._engines.writer, self._engines.dialect, self._files, self._writer
        )
        self._directory_version = 0
        self._changes = ChangeHub()
        self._relay: PgChangeRelay | None = None
        self._maildrops: dict[AccountId, tuple[str, float]] = {}
        """POP3 maildrop holders on SQLite (see ``acquire_maildrop``)."""
        self._point: sqlite3.Connection | None = None
        """SQLite only: the connection of ``_message_parts`` (event loop thread)."""
        self._raw_writer: sqlite3.Connection | None = None
        """SQLite only: the writer thread's sqlite3 connection (``_write_raw``)."""
        self._settles = SettleBatcher(self._settle_many)
        self._sql = xq.Dialect(self._engines.dialect)
        self._snapshots = SnapshotCache()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engines.dialect

    @property
    def directory_version(self) -> int:
        """Changes whenever this store changes domains, accounts or aliases."""
        return self._directory_version

    @property
    def changes(self) -> ChangeHub:
        """Signals committed changes per mailbox (see changes.py)."""
        return self._changes

    @property
    def group_commit_batches(self) -> int:
        """Delivery transactions committed since the store was built (for tests and
        metrics: fewer batches than deliver() calls means commits were shared)."""
        return self._committer.batches_committed

    # -- plumbing ----------------------------------------------------------------------

    async def _write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        def run() -> T:
            with self._engines.writer.begin() as conn:
                return fn(conn, *args, **kwargs)

        return await self._in(self._writer, run)

    async def _write_raw(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``_write`` on SQLite with the writer thread's own sqlite3 connection: one
        ``BEGIN IMMEDIATE`` ... ``COMMIT`` (fsync'd: ``synchronous=FULL``) around ``fn``,
        rolled back if it raises. For the hottest small writes (STORE), where
        SQLAlchemy's per-statement work cost more than the commit; the writer thread is
        single, so these and ``_write``'s transactions never overlap. sqlite3.Error
        becomes StoreError."""

        def run() -> T:
            raw = self._raw_writer
            if raw is None:
                database = self._engines.writer.url.database
                assert database is not None
                raw = sqlite3.connect(database, check_same_thread=False)
                configure_sqlite(raw, wal=False, writer=True)
                self._raw_writer = raw
            try:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(raw, *args, **kwargs)
                except BaseException:
                    raw.execute("ROLLBACK")
                    raise
                raw.execute("COMMIT")
            except sqlite3.Error as exc:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise StoreError(f"database error: {exc}") from exc
            return result

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _write_directory(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``_write`` for domains, accounts and aliases: bumps ``directory_version``
        (also when the write fails: its outcome may be unknown)."""
        try:
            return await self._write(fn, *args, **kwargs)
        finally:
            self._directory_version += 1

    async def _settle_many(self, requests: Sequence[SettleRequest]) -> list[SettleResult]:
        return await self._write(qq.settle_many, requests)

    async def _read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` on a reader connection in autocommit mode: no BEGIN / ROLLBACK
        round trips, and each statement reads one consistent snapshot (SQLite: a WAL
        read snapshot; PostgreSQL: the statement's snapshot). So ``fn`` must be a single
        statement where it needs consistency (engines.py)."""

        def run() -> T:
            with self._engines.reader.connect() as conn:
                return fn(conn, *args, **kwargs)

        return await self._in(self._readers, run)

    @staticmethod
    async def _in(executor: ThreadPoolExecutor, run: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, run)
        except DBAPIError as exc:
            raise StoreError(f"database error: {exc.orig}") from exc

    # -- life cycle --------------------------------------------------------------------

    async def open(self, *, recovery: bool = True, migrate: bool = True) -> RecoveryReport:
        """Migrate the schema to the newest revision (unless ``migrate`` is False),
        run recovery (unless ``recovery`` is False: admin commands next to a running
        server), start the writer."""
        if migrate:
            await self._in(self._writer, functools.partial(upgrade, self._engines.writer))
        if not recovery:
            self._committer.start()
            return RecoveryReport()
        report = await self._in(
            self._writer,
            functools.partial(
                recover,
                self._engines.writer,
                self._files,
                grace_seconds=0.0 if self.dialect == "sqlite" else SHARED_GRACE_SECONDS,
            ),
        )
        self._committer.start()
        return report

    async def sweep_orphan_blobs(self) -> int:
        # The rows nothing names: found on a reader a chunk at a time, each chunk deleted
        # by its own short job on the writer thread, so other writes interleave.
        collected, last = 0, ""
        while rows := await self._in(
            self._readers, functools.partial(find_unreferenced, self._engines.reader, last)
        ):
            last = rows[-1][0]
            collected += await self._in(
                self._writer,
                functools.partial(delete_unreferenced, self._engines.writer, self._files, rows),
            )
        if collected:
            _log.info("store.blob_sweep.collected count=%d", collected)
        return await self._in(
            self._readers,
            functools.partial(
                sweep_orphans,
                self._engines.reader,
                self._files,
                grace_seconds=ORPHAN_GRACE_SECONDS
                if self.dialect == "sqlite"
                else SHARED_GRACE_SECONDS,
            ),
        )

    async def listen_for_changes(self) -> None:
        """Relay mailbox changes to and from other postel processes on the same
        PostgreSQL database (LISTEN/NOTIFY); nothing to do on SQLite, whose one
        process publishes every change itself. Call on the event loop after ``open``."""
        if self.dialect != "postgresql" or self._relay is not None:
            return
        url = self._engines.writer.url.set(drivername="postgresql")
        from postel.store.pg_notify import PgChangeRelay  # psycopg: PostgreSQL only

        self._relay = PgChangeRelay(url.render_as_string(hide_password=False), self._changes)
        self._relay.start()

    async def close(self) -> None:
        """Finish the commit in flight, fail queued deliveries, release connections."""
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if self._point is not None:
            self._point.close()
            self._point = None
        await self._committer.stop()
        if self._raw_writer is not None:
            self._writer.submit(self._raw_writer.close)
            self._raw_writer = None
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._engines.writer.dispose()
        self._engines.reader.dispose()

    # -- directory ---------------------------------------------------------------------

    async def add_domain(self, name: str) -> Domain:
        return await self._write_directory(q.add_domain, name, self._clock.now())

    async def list_domains(self) -> Sequence[Domain]:
        return await self._read(q.list_domains)

    async def get_domain(self, name: str) -> Domain | None:
        return await self._read(q.get_domain, name)

    async def remove_domain(self, name: str) -> None:
        await self._write_directory(q.remove_domain, name)

    async def add_account(
        self,
        address: str,
        credentials: Credentials,
        *,
        is_admin: bool = False,
        sender_policy: SenderPolicy = SenderPolicy.OWN,
        storage_limit: int | None = None,
        message_limit: int | None = None,
    ) -> Account:
        return await self._write_directory(
            _add_account,
            address,
            credentials,
            is_admin,
            self._clock.now(),
            sender_policy,
            (storage_limit, message_limit),
        )

    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]:
        return await self._read(q.list_accounts, domain)

    async def get_account(self, address: str) -> Account | None:
        return await self._read(q.get_account, address)

    async def get_account_by_id(self, account_id: AccountId) -> Account | None:
        return await self._read(q.get_account_by_id, account_id)

    async def set_credentials(self, address: str, credentials: Credentials) -> None:
        await self._write_directory(q.set_credentials, address, credentials)

    async def set_sender_policy(self, address: str, policy: SenderPolicy) -> Account:
        return await self._write_directory(q.set_sender_policy, address, policy)

    async def remove_account(self, address: str) -> None:
        await self._write_directory(q.remove_account, address)

    # -- quotas (quota_ops.py) ---------------------------------------------------------

    async def quota_usage(self, account_id: AccountId) -> QuotaUsage:
        return await self._read(quota.quota_usage, account_id)

    async def quota_usages(
        self, account_ids: Collection[AccountId] | None = None, *, limited_only: bool = False
    ) -> Mapping[AccountId, QuotaUsage]:
        if account_ids is not None and not account_ids:
            return {}
        return await self._read(quota.quota_usages, account_ids, limited_only)

    async def set_quota(
        self, account_id: AccountId, storage: int | None, messages: int | None
    ) -> QuotaUsage:
        return await self._write_directory(quota.set_quota, account_id, storage, messages)

    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        return await self._write_directory(q.add_alias, source, targets, self._clock.now())

    async def list_aliases(self, domain: str | None = None) -> Sequence[Alias]:
        return await self._read(q.list_aliases, domain)

    async def get_alias(self, source: str) -> Alias | None:
        return await self._read(q.get_alias, source)

    async def remove_alias(self, source: str) -> None:
        await self._write_directory(q.remove_alias, source)

    async def lookup_addresses(self, keys: Sequence[str]) -> DirectoryLookup:
        return await self._read(lookup_addresses, keys)

    # -- mailboxes and messages --------------------------------------------------------

    async def list_mailboxes(self, account_id: AccountId) -> Sequence[Mailbox]:
        return await self._read(mq.list_mailboxes, account_id)

    async def get_mailbox(self, account_id: AccountId, name: str) -> Mailbox | None:
        """See Store.get_mailbox; a point read on SQLite (every SELECT asks it)."""
        if self.dialect == "sqlite":
            params = (int(account_id), names.normalize(name))
            return mq.mailbox_row(self._point_read(mq.GET_MAILBOX_SQL, params))
        return await self._read(mq.get_mailbox, account_id, name)

    async def list_messages(
        self, mailbox_id: MailboxId, *, uid_from: int = 1
    ) -> Sequence[StoredMessage]:
        if uid_from > UID_MAX:
            return []
        uids = UidSet.from_ranges([(max(uid_from, 1), UID_MAX)])
        return await self._read(xq.fetch_messages, self._sql, mailbox_id, uids)

    def _message_parts(
        self, mailbox_id: MailboxId, uid: int
    ) -> Awaitable[tuple[bytes, str, int, bytes | None]] | tuple[bytes, str, int, bytes | None]:
        """``message_parts`` of one message: on SQLite with the store's own sqlite3
        connection on the event loop (no pool checkout, no result wrapping: this read
        serves every IMAP BODY[] and POP3 RETR); elsewhere through a reader thread."""
        if self.dialect != "sqlite":
            return self._read(q.message_parts, mailbox_id, uid)
        row = self._point_read(q.MESSAGE_PARTS_SQL, (int(mailbox_id), int(uid)))
        return q.message_parts_row(row, mailbox_id, uid)

    def _point_read(self, sql: str, params: tuple[int | str, ...]) -> Any:
        """One row of ``sql`` on SQLite, read with the store's own sqlite3 connection on
        the calling (event loop) thread: no pool checkout, no result wrapping."""
        rows = self._point_execute(sql, params, every=False)
        return rows[0] if rows else None

    def _point_rows(self, sql: str, params: tuple[int | str, ...]) -> list[Any]:
        """Every row of ``sql`` as ``_point_read`` reads one (a few rows at most:
        a snapshot's changes since it was kept)."""
        return self._point_execute(sql, params, every=True)

    def _point_execute(self, sql: str, params: tuple[int | str, ...], *, every: bool) -> list[Any]:
        if self._point is None:
            database = self._engines.reader.url.database
            assert database is not None
            self._point = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            # A WAL reader is almost never busy; if it is, fail fast rather than hold
            # the event loop (the client gets a temporary error and retries).
            self._point.execute(f"PRAGMA busy_timeout={POINT_READ_BUSY_MS}")
        try:
            cursor = self._point.execute(sql, params)
            if every:
                return cursor.fetchall()
            row = cursor.fetchone()
            return [] if row is None else [row]
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def _parts(self, mailbox_id: MailboxId, uid: int) -> tuple[bytes, str, int, bytes | None]:
        parts = self._message_parts(mailbox_id, uid)
        return parts if isinstance(parts, tuple) else await parts

    async def read_message(self, mailbox_id: MailboxId, uid: int) -> bytes:
        """trace_prefix + blob bytes; NotFound if the message or its blob file is absent."""
        prefix, key, _size, data = await self._parts(mailbox_id, uid)
        if data is None:
            data = await self._in(self._readers, functools.partial(self._files.read, key))
        return prefix + data

    async def open_message(
        self, mailbox_id: MailboxId, uid: int, *, chunk_size: int = READ_CHUNK
    ) -> AsyncIterator[bytes]:
        """The stored message as chunks of at most ``chunk_size`` octets (the trace
        prefix first), read lazily so memory stays bounded. NotFound if absent."""
        prefix, key, size, data = await self._parts(mailbox_id, uid)
        if prefix:
            yield prefix
        if data is not None:
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
            return
        offset = 0
        while offset < size:
            chunk = await self._in(
                self._readers, functools.partial(self._files.read_chunk, key, offset, chunk_size)
            )
            if not chunk:
                raise StoreError(f"blob {key} is shorter than recorded")
            offset += len(chunk)
            yield chunk

    # -- delivery ----------------------------------------------------------------------

    def blob_writer(self) -> BlobWriter:
        return SpoolingBlobWriter(self._files)

    async def read_blob(self, ref: BlobRef) -> bytes:
        """The blob's bytes: carried inline, or read from its file. NotFound if absent."""
        if ref.inline is not None:
            return ref.inline
        return await self._in(self._readers, functools.partial(self._files.read, ref.key))

    async def deliver(self, deliveries: Sequence[Delivery]) -> Sequence[Delivered]:
        """Group-committed delivery (delivery.py); flags are stored in canonical form
        (InvalidFlag otherwise) and every mailbox that got mail is published."""
        deliveries = [_canonical_flags(d) for d in deliveries]
        delivered = await self._committer.submit(deliveries)
        latest: dict[MailboxId, int] = {}
        for d in delivered:
            if not d.duplicate:
                latest[d.mailbox_id] = max(latest.get(d.mailbox_id, 0), d.modseq)
        for mailbox_id, modseq in latest.items():
            self._changes.publish(mailbox_id, modseq)
        return delivered

    # -- IMAP: mailboxes ---------------------------------------------------------------

    async def get_mailbox_by_id(self, mailbox_id: MailboxId) -> Mailbox | None:
        return await self._read(mq.get_mailbox_by_id, mailbox_id)

    async def create_mailbox(
        self, account_id: AccountId, name: str, special_use: SpecialUse | None = None
    ) -> Mailbox:
        return await self._write(
            mq.create_mailbox, account_id, name, special_use, self._clock.now()
        )

    async def delete_mailbox(self, account_id: AccountId, name: str) -> None:
        mailbox_id, modseq = await self._write(mq.delete_mailbox, account_id, name)
        # Published one above its last MODSEQ: a deletion is newer than any write a
        # session holds the outcome of (ChangeSubscription.consume_own).
        self._changes.publish(mailbox_id, modseq + 1)

    async def rename_mailbox(self, account_id: AccountId, old: str, new: str) -> Mailbox:
        done = await self._write(mq.rename_mailbox, account_id, old, new, self._clock.now())
        for mailbox_id, modseq in done.touched:
            self._changes.publish(mailbox_id, modseq)
        return done.mailbox

    async def set_subscribed(self, account_id: AccountId, name: str, subscribed: bool) -> None:
        await self._write(mq.set_subscribed, account_id, name, subscribed)

    async def list_subscriptions(self, account_id: AccountId) -> Sequence[str]:
        return await self._read(mq.list_subscriptions, account_id)

    async def mailbox_status(self, mailbox_id: MailboxId) -> MailboxStatus:
        return await self._read(mq.mailbox_status, mailbox_id)

    # -- IMAP: messages ----------------------------------------------------------------

    async def select_mailbox(self, mailbox_id: MailboxId) -> MailboxSnapshot:
        """See Store.select_mailbox: reused from the snapshot cache while the mailbox's
        version is unchanged, brought up to date from the changes since when it is not
        (snapshot_cache.py), else read whole."""
        if self.dialect == "sqlite":  # a kept snapshot checked and updated by point reads
            kept = self._snapshots.get(mailbox_id)
            if kept is not None:
                row = self._point_read(xq.MAILBOX_VERSION_SQL, (int(mailbox_id),))
                if row is not None and tuple(int(v) for v in row) == kept.version:
                    return kept
                if row is not None and int(row[0]) == kept.uidvalidity:
                    box, since = int(mailbox_id), kept.highestmodseq
                    limit = xq.POINT_DELTA_ROWS_MAX + 2  # the head row, and one too many
                    params = (box, box, since, box, since, limit)
                    rows = self._point_rows(xq.SNAPSHOT_DELTA_SQL, params)
                    small = len(rows) < limit
                    fresh = xq.merge_delta(kept, rows) if small else None
                    if fresh is not None:
                        self._snapshots.put(fresh)
                        return fresh
        return await self._read(self._snapshot, mailbox_id)

    def _snapshot(self, conn: Connection, mailbox_id: MailboxId) -> MailboxSnapshot:
        kept = self._snapshots.get(mailbox_id)
        if kept is not None:
            if kept.version == xq.mailbox_version(conn, mailbox_id):
                return kept
            fresh = xq.snapshot_delta(conn, kept)
        else:
            fresh = None
        snapshot = fresh if fresh is not None else xq.select_mailbox(conn, mailbox_id)
        self._snapshots.put(snapshot)
        return snapshot

    async def claim_recent(self, mailbox_id: MailboxId, uid: int) -> int:
        return await self._write(xq.claim_recent, mailbox_id, uid)

    async def fetch_messages(self, mailbox_id: MailboxId, uids: UidSet) -> Sequence[StoredMessage]:
        """See Store.fetch_messages; one UID on SQLite is a point read (_point_read)."""
        if self.dialect == "sqlite" and len(uids.ranges) == 1:
            low, high = uids.ranges[0]
            if low == high:
                row = self._point_read(xq.FETCH_ONE_SQL, (int(mailbox_id), low))
                return xq.fetched_rows([row] if row is not None else [], mailbox_id)
        return await self._read(xq.fetch_messages, self._sql, mailbox_id, uids)

    async def fetch_message_data(
        self, mailbox_id: MailboxId, uid: int
    ) -> tuple[StoredMessage, bytes] | None:
        """See Store.fetch_message_data. On SQLite one point read on the event loop
        (``_point_read``) gives the row and inline bytes; a file blob is read by a reader
        thread."""
        if self.dialect != "sqlite":
            found = await self.fetch_messages(mailbox_id, UidSet.of([uid]))
            if not found:
                return None
            return found[0], await self.read_message(mailbox_id, uid)
        row = self._point_read(xq.FETCH_ONE_WITH_DATA_SQL, (int(mailbox_id), int(uid)))
        if row is None:
            return None
        (message,) = xq.fetched_rows([row[:-1]], mailbox_id)
        data = row[-1]
        if data is None:
            data = await self._in(
                self._readers, functools.partial(self._files.read, message.blob.key)
            )
        return message, message.trace_prefix + bytes(data)

    async def fetch_attributes(
        self, mailbox_id: MailboxId, uids: UidSet
    ) -> Sequence[MessageAttributes]:
        """See Store.fetch_attributes. On SQLite one UID range is read with a reader's
        driver cursor and no message objects (the FETCH of a whole message list spends
        its time here); elsewhere the rows of fetch_messages, reduced."""
        if self.dialect == "sqlite" and len(uids.ranges) == 1:
            low, high = uids.ranges[0]

            def run(conn: Connection) -> list[MessageAttributes]:
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    rows = cursor.execute(xq.ATTRIBUTES_RANGE_SQL, (int(mailbox_id), low, high))
                    return xq.attribute_rows(rows.fetchall())
                finally:
                    cursor.close()

            return await self._read(run)
        return [
            MessageAttributes(m.uid, m.modseq, m.flags, m.internal_date, m.size, m.summary)
            for m in await self.fetch_messages(mailbox_id, uids)
        ]

    async def store_flags(
        self,
        mailbox_id: MailboxId,
        uids: UidSet,
        mode: FlagMode,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> FlagsResult:
        if self.dialect == "sqlite":
            done = await self._write_raw(
                flags_sqlite.store_flags, mailbox_id, uids, mode, flags, unchanged_since
            )
        else:
            done = await self._write(
                xq.store_flags, self._sql, mailbox_id, uids, mode, flags, unchanged_since
            )
        if done.changed:
            self._changes.publish(mailbox_id, done.highestmodseq, arrivals=False)
        return done

    async def expunge(self, mailbox_id: MailboxId, uids: UidSet | None = None) -> Sequence[int]:
        gone, modseq = await self._write(xq.expunge, self._sql, mailbox_id, uids)
        if gone:
            self._changes.publish(mailbox_id, modseq)
        return gone

    async def delete_messages(
        self, mailbox_id: MailboxId, uids: UidSet, *, seen: UidSet | None = None
    ) -> Sequence[int]:
        def run(conn: Connection) -> tuple[list[int], int, bool]:
            marked = False
            if seen:
                done = xq.store_flags(
                    conn, self._sql, mailbox_id, seen, FlagMode.ADD, frozenset({"\\Seen"}), None
                )
                marked = any(m == done.highestmodseq for _, _, m in done.messages)
            gone, modseq = xq.delete_messages(conn, self._sql, mailbox_id, uids)
            return gone, modseq, marked

        gone, modseq, marked = await self._write(run)
        if gone or marked:
            self._changes.publish(mailbox_id, modseq)
        return gone

    async def message_sizes(self, mailbox_id: MailboxId) -> Sequence[tuple[int, int]]:
        return await self._read(xq.message_sizes, mailbox_id)

    async def acquire_maildrop(self, account_id: AccountId, holder: str, lease: float) -> bool:
        if self.dialect == "sqlite":
            # One process serves an SQLite store: the lock lives in memory, costs no
            # fsync'd write, and ends with the process like a lease would.
            now = self._clock.monotonic()
            current = self._maildrops.get(account_id)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._maildrops[account_id] = (holder, now + lease)
            return True
        return await self._write(mq.acquire_maildrop, account_id, holder, self._clock.now(), lease)

    async def release_maildrop(self, account_id: AccountId, holder: str) -> None:
        if self.dialect == "sqlite":
            current = self._maildrops.get(account_id)
            if current is not None and current[0] == holder:
                del self._maildrops[account_id]
            return
        await self._write(mq.release_maildrop, account_id, holder)

    async def append(
        self,
        mailbox_id: MailboxId,
        blob: BlobRef,
        *,
        internal_date: dt.datetime,
        summary: str,
        flags: frozenset[str] = frozenset(),
    ) -> Appended:
        done = await self._write(
            xq.append,
            self._sql,
            self._files,
            mailbox_id,
            blob,
            flags,
            internal_date,
            summary,
            now=self._clock.now(),
        )
        self._changes.publish(mailbox_id, done.modseq)
        return done

    async def append_many(self, items: Sequence[AppendItem]) -> Sequence[Appended]:
        now = self._clock.now()

        def run(conn: Connection) -> list[Appended]:
            return [
                xq.append(
                    conn,
                    self._sql,
                    self._files,
                    item.mailbox_id,
                    item.blob,
                    item.flags,
                    item.internal_date,
                    item.summary,
                    item.crlf_size,
                    now=now,
                )
                for item in items
            ]

        done = await self._write(run)
        for appended in done:
            self._changes.publish(appended.mailbox_id, appended.modseq)
        return done

    async def copy_messages(
        self, source_id: MailboxId, uids: UidSet, target_id: MailboxId
    ) -> CopyResult:
        done = await self._write(
            xq.copy_messages, self._sql, source_id, uids, target_id, now=self._clock.now()
        )
        if done.pairs:
            self._changes.publish(target_id, done.modseq)
        return done

    async def move_messages(
        self, source_id: MailboxId, uids: UidSet, target_id: MailboxId
    ) -> MoveResult:
        done = await self._write(
            xq.move_messages, self._sql, source_id, uids, target_id, now=self._clock.now()
        )
        if done.pairs:
            self._changes.publish(source_id, done.source_modseq)
            self._changes.publish(target_id, done.modseq)
        return done

    async def changes_since(self, mailbox_id: MailboxId, modseq: int) -> Changes:
        return await self._read(xq.changes_since, mailbox_id, modseq)

    # -- outbound queue ----------------------------------------------------------------

    async def enqueue(
        self, message: NewQueuedMessage, recipients: Sequence[NewRecipient]
    ) -> QueueMessageId:
        return await self._write(
            qq.enqueue, self._sql, self._files, message, recipients, self._clock.now()
        )

    async def lease(
        self,
        worker: str,
        now: dt.datetime,
        *,
        limit: int,
        lease_for: float,
        per_domain_max: int,
    ) -> Sequence[Lease]:
        return await self._write(
            qq.lease,
            worker,
            now,
            limit=limit,
            lease_for=lease_for,
            per_domain_max=per_domain_max,
        )

    async def settle(
        self,
        lease: Lease,
        outcomes: Mapping[QueueRecipientId, Outcome],
        now: dt.datetime,
        policy: BackoffPolicy = DEFAULT_BACKOFF,
        *,
        dsn_passed_on: Collection[QueueRecipientId] = (),
    ) -> SettleResult:
        request = SettleRequest(lease, outcomes, now, policy, dsn_passed_on)
        return await self._settles.settle(request)

    async def open_queued_message(
        self, message_id: QueueMessageId, *, chunk_size: int = READ_CHUNK
    ) -> AsyncIterator[bytes]:
        if self.dialect == "sqlite":  # one point read per message sent: see _point_read
            row = self._point_read(qq.QUEUED_PARTS_SQL, (int(message_id),))
            prefix, key, size, data = qq.queued_parts_row(row, message_id)
        else:
            prefix, key, size, data = await self._read(qq.message_parts, message_id)
        if prefix:
            yield prefix
        if data is not None:
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
            return
        offset = 0
        while offset < size:
            chunk = await self._in(
                self._readers, functools.partial(self._files.read_chunk, key, offset, chunk_size)
            )
            if not chunk:
                raise StoreError(f"blob {key} is shorter than recorded")
            offset += len(chunk)
            yield chunk

    async def queue_list(self, which: QueueFilter | None = None) -> Sequence[QueueEntry]:
        return await self._read(qa.queue_list, which or QueueFilter())

    async def queue_show(self, queue_id: str) -> QueueEntry | None:
        return await self._read(qa.queue_show, queue_id)

    async def queue_hold(self, queue_id: str) -> int:
        return await self._write(qa.hold, queue_id)

    async def queue_release(self, queue_id: str) -> int:
        return await self._write(qa.release, queue_id, self._clock.now())

    async def queue_retry_now(self, queue_id: str | None = None) -> int:
        return await self._write(qa.retry_now, queue_id, self._clock.now())

    async def queue_delete(self, queue_id: str) -> None:
        await self._write(qa.delete_message, queue_id)

    async def due_delay_notices(
        self, now: dt.datetime, policy: BackoffPolicy = DEFAULT_BACKOFF, *, limit: int = 100
    ) -> Sequence[QueueEntry]:
        return await self._read(qa.due_delay_notices, now, policy, limit)

    async def mark_delay_notified(self, recipient_ids: Sequence[QueueRecipientId]) -> None:
        await self._write(qa.mark_delay_notified, recipient_ids)

    async def lease_holders(self) -> Sequence[str]:
        return await self._read(qa.lease_holders)

    async def release_leases(self, holders: Collection[str]) -> int:
        return await self._write(qa.release_leases, holders, self._clock.now())

    async def finished_messages(self, *, limit: int = 100) -> Sequence[QueueEntry]:
        return await self._read(qa.finished_messages, limit)

    async def forget_finished(self, message_ids: Sequence[QueueMessageId]) -> int:
        return await self._write(qa.forget_finished, message_ids)

    # -- DMARC aggregate reporting -----------------------------------------------------

    async def add_dmarc_evaluations(self, evaluations: Sequence[DmarcEvaluation]) -> None:
        await self._write(dq.add_evaluations, evaluations)

    async def claim_dmarc_evaluations(self, before: int) -> Sequence[DmarcEvaluation]:
        return await self._write(dq.claim_evaluations, before)

    async def add_received_dmarc_report(self, report: ReceivedReport) -> bool:
        return await self._write(dq.add_received, report)

    async def list_received_dmarc_reports(self, limit: int = 100) -> Sequence[ReceivedReport]:
        return await self._read(dq.list_received, limit)

    async def add_sent_dmarc_report(self, report: SentReport) -> None:
        await self._write(dq.add_sent, report)

    async def list_sent_dmarc_reports(self, limit: int = 100) -> Sequence[SentReport]:
        return await self._read(dq.list_sent, limit)

    async def prune_dmarc(self, before: dt.datetime) -> int:
        return await self._write(dq.prune, before)

    # -- full-text index ---------------------------------------------------------------

    async def index_pending(self, limit: int = FULLTEXT_BATCH_MAX) -> int:
        """Index up to ``limit`` (at most FULLTEXT_BATCH_MAX) messages not yet indexed;
        returns how many (0: nothing pending). Extraction runs on a worker thread."""
        want = max(1, min(limit, FULLTEXT_BATCH_MAX))
        pending = await self._read(fx.pending_messages, want)
        if not pending:
            return 0
        rows = await self._read(fx.blob_rows, fx.blobs_to_read(pending))
        sizes = {key: size for key, size, _ in rows}
        pending = fx.batch(pending, sizes, fx.FULLTEXT_BATCH_OCTETS)
        keys = set(fx.blobs_to_read(pending))
        chosen = [row for row in rows if row[0] in keys]
        data = await self._in(self._readers, functools.partial(fx.load_blobs, self._files, chosen))
        docs, message_docs = await asyncio.to_thread(fx.extract, pending, data)
        await self._write(fx.write_index, docs, message_docs)
        return len(pending)

    async def search_candidates(
        self, mailbox_id: MailboxId, clauses: Sequence[Clause], *, uids: UidSet | None = None
    ) -> Candidates | None:
        """See Store.search_candidates."""
        return await self._read(fx.search_candidates, mailbox_id, clauses, uids)

    async def reindex_all(self) -> int:
        """See Store.reindex_all."""
        return await self._write(fx.drop_index)

    # -- URLAUTH mailbox access keys (urlauth_ops.py) ----------------------------------

    async def urlauth_key(self, mailbox_id: MailboxId) -> bytes | None:
        """See Store.urlauth_key."""
        from postel.store import urlauth_ops

        return await self._read(urlauth_ops.get_key, mailbox_id)

    async def create_urlauth_key(
        self, account_id: AccountId, mailbox_id: MailboxId, key: bytes
    ) -> bytes:
        """See Store.create_urlauth_key."""
        from postel.store import urlauth_ops

        return await self._write(urlauth_ops.create_key, account_id, mailbox_id, key)

    async def reset_urlauth_keys(self, account_id: AccountId, mailbox_id: MailboxId | None) -> int:
        """See Store.reset_urlauth_keys."""
        from postel.store import urlauth_ops

        return await self._write(urlauth_ops.reset_keys, account_id, mailbox_id)

    # -- METADATA entries (metadata_ops.py) ---------------------------------------------

    async def get_metadata(
        self,
        account_id: AccountId,
        mailbox_id: MailboxId | None,
        entries: Sequence[str],
        depth: MetadataDepth,
    ) -> Sequence[MetadataEntry]:
        """See Store.get_metadata."""
        return await self._read(metadata_ops.get_entries, account_id, mailbox_id, entries, depth)

    async def set_metadata(
        self,
        account_id: AccountId,
        mailbox_id: MailboxId | None,
        changes: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """See Store.set_metadata."""
        await self._write(metadata_ops.set_entries, account_id, mailbox_id, changes)


def _add_account(
    conn: Connection,
    address: str,
    credentials: Credentials,
    is_admin: bool,
    now: dt.datetime,
    sender_policy: SenderPolicy,
    limits: tuple[int | None, int | None],
) -> Account:
    """The account with its default mailboxes, each subscribed (RFC 9051 §6.3.7)."""
    account = q.add_account(conn, address, credentials, is_admin, now, sender_policy, *limits)
    mq.subscribe_existing(conn, account.id)
    return account


def _canonical_flags(delivery: Delivery) -> Delivery:
    if not delivery.flags:
        return delivery
    flags = canonical_set(delivery.flags)
    return delivery if flags == delivery.flags else dataclasses.replace(delivery, flags=flags)


_conforms: type[Store] = SqlStore
