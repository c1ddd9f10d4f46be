"""Content-addressed blobs: SHA-256 keys, small ones inline in the database, large ones
as files under ``<blob_dir>/<2 hex>/<62 hex>``.

A file becomes visible under its final name only after its bytes and its directory
entry are fsync'd (temp file, fsync, rename, fsync of the directory), so a crash leaves
either the whole blob or a temp file that start-up recovery removes.

Spec: RELIABILITY.md D1 (durable acknowledgement) and D2 (recovery at every start).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from postel import limits
from postel.errors import BlobMissing, StoreError
from postel.store.api import BlobRef

READ_CHUNK = 64 * 1024
"""Octets per chunk when a blob file is streamed (local policy)."""
TMP_DIR_NAME = "tmp"
"""Spool and staging directory under the blob dir, emptied at every start."""
LOCK_NAME = ".reuse.lock"
"""File under the blob dir whose flock orders a writer's reuse of an existing blob file
(``BlobFiles.reuse``) against the orphan sweep's removal (``remove_if_stale``), across
the processes that share the directory."""
_HEX = frozenset("0123456789abcdef")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_blob_key(key: str) -> bool:
    """True when ``key`` is a lower-case hex SHA-256 (64 symbols)."""
    return len(key) == 64 and set(key) <= _HEX


class BlobFiles:
    """The file side of the blob store, rooted at ``root``. Synchronous: call from a
    worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / TMP_DIR_NAME

    def prepare(self) -> None:
        """Create the root and tmp directories if missing."""
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives. Raises StoreError for a malformed key, so that a
        key can never name a file outside the blob dir."""
        if not is_blob_key(key):
            raise StoreError(f"malformed blob key {key!r}")
        return self.root / key[:2] / key[2:]

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    @contextlib.contextmanager
    def _reuse_lock(self) -> Iterator[None]:
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def reuse(self, key: str) -> bool:
        """Whether the blob file ``key`` exists; if it does, its modification time is set
        to now, so that the orphan sweep (which removes only files unused for its grace
        period) leaves it to the delivery about to name it. Spec: RELIABILITY.md D1."""
        final = self.path(key)
        with self._reuse_lock():
            try:
                os.utime(final)
            except FileNotFoundError:
                return False
        return True

    def remove_if_stale(self, key: str, older_than: float) -> bool:
        """Remove the blob file ``key`` if nobody wrote or reused it in the last
        ``older_than`` seconds (checked under the reuse lock); whether it was removed."""
        final = self.path(key)
        with self._reuse_lock():
            try:
                if time.time() - final.stat().st_mtime < older_than:
                    return False
                final.unlink()
            except FileNotFoundError:
                return False
        return True

    def install(self, temp_path: Path, key: str) -> None:
        """Make ``temp_path`` (already fsync'd) the blob ``key``: rename into place and
        fsync the directory. If the blob already exists the temp file is dropped (dedup)
        and the existing file marked as just used (``reuse``)."""
        final = self.path(key)
        if self.reuse(key):
            temp_path.unlink(missing_ok=True)
            return
        parent = final.parent
        if not parent.is_dir():
            parent.mkdir(exist_ok=True)
            _fsync_dir(self.root)
        os.rename(temp_path, final)
        _fsync_dir(parent)

    def new_temp(self) -> tuple[BinaryIO, Path]:
        """An open, empty temp file in ``tmp/`` and its path; its name carries this
        process's id (``blob-<pid>-...``, see ``clear_tmp_of``)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix=f"blob-{os.getpid()}-")
        return os.fdopen(fd, "w+b"), Path(name)

    def clear_tmp_of(self, pid: int) -> int:
        """Delete the temp files of process ``pid``, which has ended (a port-25 worker
        killed while it received large messages); returns how many were removed."""
        removed = 0
        for f in self.tmp.glob(f"blob-{pid}-*"):
            f.unlink(missing_ok=True)
            removed += 1
        return removed

    def read(self, key: str) -> bytes:
        """The bytes of file blob ``key``; BlobMissing (a NotFound) if the file is gone."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob file {key} is missing") from exc

    def read_chunk(self, key: str, offset: int, size: int = READ_CHUNK) -> bytes:
        """``size`` octets of file blob ``key`` from ``offset`` (fewer at the end)."""
        try:
            with self.path(key).open("rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob file {key} is missing") from exc

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        """Every blob key that has a file."""
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                key = sub.name + f.name
                if is_blob_key(key):
                    yield key

    def age(self, key: str, now: float) -> float:
        """Seconds since file blob ``key`` was last modified (0 if it is gone)."""
        try:
            return now - self.path(key).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def clear_tmp(self, *, older_than: float = 0.0, now: float | None = None) -> int:
        """Delete the files in ``tmp/`` last modified more than ``older_than`` seconds
        before ``now`` (epoch seconds; default: the file system's clock). Returns how many
        files were removed."""
        removed = 0
        for f in self.tmp.iterdir():
            if not (f.is_file() or f.is_symlink()):
                continue
            if older_than > 0:
                try:
                    mtime = f.lstat().st_mtime
                except FileNotFoundError:
                    continue
                if (now if now is not None else time.time()) - mtime < older_than:
                    continue
            f.unlink(missing_ok=True)
            removed += 1
        return removed


class SpoolingBlobWriter:
    """A BlobWriter: bytes in memory up to ``spill_threshold``, then in a temp file.

    ``commit()`` returns a BlobRef. A blob of at most ``inline_max`` octets carries its
    bytes in ``BlobRef.inline`` and becomes durable with the delivery transaction; a larger
    one is written as a file (fsync of file and directory) before ``commit()`` returns.

    Errors: StoreError when used after commit/abort.
    Spec: RELIABILITY.md D1.
    """

    def __init__(
        self,
        files: BlobFiles,
        *,
        inline_max: int = limits.BLOB_INLINE_MAX,
        spill_threshold: int = limits.BLOB_SPILL_THRESHOLD,
    ) -> None:
        self._files = files
        self._inline_max = inline_max
        self._spill_threshold = max(spill_threshold, inline_max)
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._spool: BinaryIO | None = None
        self._spool_path: Path | None = None
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Octets written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Append ``data``. Spools to ``<blob_dir>/tmp/`` past the spill threshold."""
        if self._done:
            raise StoreError("blob writer already committed or aborted")
        self._hash.update(data)
        self._size += len(data)
        if self._spool is not None:
            self._spool.write(data)
            return
        self._buffer += data
        if len(self._buffer) > self._spill_threshold:
            self._spool, self._spool_path = self._files.new_temp()
            self._spool.write(self._buffer)
            self._buffer = bytearray()

    async def commit(self) -> BlobRef:
        """Make the bytes durable (large) or ready to ride along with the delivery (small)."""
        if self._done:
            raise StoreError("blob writer already committed or aborted")
        self._done = True
        key = self._hash.hexdigest()
        if self._size <= self._inline_max:
            # The spill threshold is never below inline_max, so the bytes are in memory.
            data = bytes(self._buffer)
            self._buffer = bytearray()
            return BlobRef(key=key, size=self._size, inline=data)
        try:
            await asyncio.to_thread(self._persist, key)
        except BaseException:
            self._discard()
            raise
        return BlobRef(key=key, size=self._size)

    def _persist(self, key: str) -> None:
        if self._spool is None:
            self._spool, self._spool_path = self._files.new_temp()
            self._spool.write(self._buffer)
            self._buffer = bytearray()
        assert self._spool_path is not None
        if self._files.reuse(key):
            self._discard()
            return
        self._spool.flush()
        os.fsync(self._spool.fileno())
        self._spool.close()
        self._spool = None
        self._files.install(self._spool_path, key)
        self._spool_path = None

    def abort(self) -> None:
        """Throw the bytes away and remove any temp file. Safe to call twice."""
        self._done = True
        self._buffer = bytearray()
        self._discard()

    def _discard(self) -> None:
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.close()
            self._spool = None
        if self._spool_path is not None:
            self._spool_path.unlink(missing_ok=True)
            self._spool_path = None
