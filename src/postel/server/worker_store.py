"""The store of a port-25 worker process: no database connection of its own.

A worker (``[smtp] processes`` above 1, docs/adr/0005) writes blob files itself
(fsync'd before their delivery is committed, as the main process does) and reads the
ones it wrote; every other store operation it needs is a request to the main process
over the worker channel (``postel.server.delivery_ipc``): ``deliver`` (group committed
with everyone else's) and the reads and writes of ``WORKER_STORE_CALLS``. So a worker
loads no SQL toolkit or database driver (docs/adr/0005, Memory), and one process holds
the database.

Directory answers are cached by the worker's ``Directory`` (postel.directory.cache);
``directory_version`` never changes here, so changes made through another process are
seen within the cache's TTL, as for changes made with the CLI.

Spec: RELIABILITY.md D1 (a 250 only after the commit); ARCHITECTURE.md principle 3.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from postel.server.delivery_ipc import WORKER_STORE_CALLS, DeliveryClient
from postel.store.api import BlobRef, BlobWriter, Delivered, Delivery
from postel.store.blobs import BlobFiles, SpoolingBlobWriter

__all__ = ["WorkerStore"]


class WorkerStore:
    """The part of ``postel.store.Store`` a port-25 worker uses (cast to ``Store`` by
    its caller). Any other attribute raises AttributeError naming it, so a code path
    that needs more fails loudly in tests instead of reaching the database."""

    def __init__(self, client: DeliveryClient, blob_dir: Path) -> None:
        self._client = client
        self._files = BlobFiles(blob_dir)

    async def open(self, *, recovery: bool = False, migrate: bool = False) -> None:
        """Nothing to open: the main process opened (and migrated) the store."""

    async def close(self) -> None:
        """Nothing to close (the channel is the worker's to close)."""

    @property
    def directory_version(self) -> int:
        """Constant: this process never changes the directory."""
        return 0

    def blob_writer(self) -> BlobWriter:
        return SpoolingBlobWriter(self._files)

    async def read_blob(self, ref: BlobRef) -> bytes:
        """The blob's bytes: carried inline, or read from its file. NotFound if absent."""
        if ref.inline is not None:
            return ref.inline
        return await asyncio.to_thread(functools.partial(self._files.read, ref.key))

    def deliver(self, deliveries: Sequence[Delivery]) -> Awaitable[Sequence[Delivered]]:
        return self._client.deliver(deliveries)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name not in WORKER_STORE_CALLS:
            raise AttributeError(f"a port-25 worker's store has no {name!r}")
        return functools.partial(self._client.call, name)
