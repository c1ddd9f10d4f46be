"""SqlStore: the Store on SQLite or PostgreSQL through one SQLAlchemy code path.

A synchronous Engine is used from worker threads: one writer thread (every write, so a
SQLite database has one writer connection) and a few reader threads. ``deliver()`` goes
through the GroupCommitter.

Spec: ARCHITECTURE.md principle 3; RELIABILITY.md D1, D2.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from postel.clock import Clock
from postel.errors import StoreError
from postel.ids import AccountId, MailboxId
from postel.store import directory_sql as q
from postel.store.api import (
    Account,
    Alias,
    BlobRef,
    BlobWriter,
    Credentials,
    Delivered,
    Delivery,
    DirectoryLookup,
    Domain,
    Mailbox,
    RecoveryReport,
    Store,
    StoredMessage,
)
from postel.store.blobs import READ_CHUNK, BlobFiles, SpoolingBlobWriter
from postel.store.delivery import GroupCommitter
from postel.store.directory_lookup import lookup_addresses
from postel.store.engines import READER_CONNECTIONS, make_engines
from postel.store.migrate import upgrade
from postel.store.recovery import SHARED_GRACE_SECONDS, recover

_log = logging.getLogger(__name__)

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

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engines.dialect

    @property
    def directory_version(self) -> int:
        """Changes whenever this store changes domains, accounts or aliases."""
        return self._directory_version

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

    async def _write_directory(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``_write`` for domains, accounts and aliases: bumps ``directory_version``
        (also when the write fails: its outcome may be unknown)."""
        try:
            return await self._write(fn, *args, **kwargs)
        finally:
            self._directory_version += 1

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

    async def open(self, *, recovery: bool = True) -> RecoveryReport:
        """Migrate the schema to the newest revision, run recovery (unless ``recovery``
        is False: admin commands next to a running server), start the writer."""
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

    async def close(self) -> None:
        """Finish the commit in flight, fail queued deliveries, release connections."""
        await self._committer.stop()
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
        self, address: str, credentials: Credentials, *, is_admin: bool = False
    ) -> Account:
        return await self._write_directory(
            q.add_account, address, credentials, is_admin, self._clock.now()
        )

    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]:
        return await self._read(q.list_accounts, domain)

    async def get_account(self, address: str) -> Account | None:
        return await self._read(q.get_account, address)

    async def get_account_by_id(self, account_id: AccountId) -> Account | None:
        return await self._read(q.get_account_by_id, account_id)

    async def set_credentials(self, address: str, credentials: Credentials) -> None:
        await self._write_directory(q.set_credentials, address, credentials)

    async def remove_account(self, address: str) -> None:
        await self._write_directory(q.remove_account, address)

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
        return await self._read(q.list_mailboxes, account_id)

    async def get_mailbox(self, account_id: AccountId, name: str) -> Mailbox | None:
        return await self._read(q.get_mailbox, account_id, name)

    async def list_messages(
        self, mailbox_id: MailboxId, *, uid_from: int = 1
    ) -> Sequence[StoredMessage]:
        return await self._read(q.list_messages, mailbox_id, uid_from)

    async def read_message(self, mailbox_id: MailboxId, uid: int) -> bytes:
        """trace_prefix + blob bytes; NotFound if the message or its blob file is absent."""
        prefix, key, _size, data = await self._read(q.message_parts, mailbox_id, uid)
        if data is None:
            data = await self._in(self._readers, functools.partial(self._files.read, key))
        return prefix + data

    async def open_message(
        self, mailbox_id: MailboxId, uid: int, *, chunk_size: int = READ_CHUNK
    ) -> AsyncIterator[bytes]:
        """The stored message as chunks of at most ``chunk_size`` octets (the trace
        prefix first), read lazily so memory stays bounded. NotFound if absent."""
        prefix, key, size, data = await self._read(q.message_parts, mailbox_id, uid)
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
        return await self._committer.submit(deliveries)


_conforms: type[Store] = SqlStore
