"""Start-up recovery of the blob store (RELIABILITY.md D2).

Run before the store serves anyone:

1. ``<blob_dir>/tmp/*`` is deleted (spools and staging files of writes that never
   finished).
2. Blob rows that no message and no queued message references are deleted (their
   messages were removed, their queue entries finished). While the store runs,
   ``find_unreferenced`` and ``delete_unreferenced`` do the same every sweep interval.
3. Blob files that no row references are deleted: orphans of a crash between a file's
   fsync and the delivery commit, or of step 2.
4. Rows whose file is missing are reported (and logged as errors): that is data loss
   the operator must know about.

When several postel nodes share one database and one blob directory (PostgreSQL), a
starting node must not remove another node's spool files or the blob files it has
installed but not yet committed: then steps 1 and 3 only touch files older than
``SHARED_GRACE_SECONDS``.

Spec: RELIABILITY.md D2.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, exists, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from postel.store.api import RecoveryReport
from postel.store.blobs import BlobFiles
from postel.store.schema import blobs, messages, queue_messages

_log = logging.getLogger(__name__)

SHARED_GRACE_SECONDS = 24 * 3600.0
"""Age a spool or unreferenced blob file must reach before a node sharing the blob
directory removes it; longer than any SMTP transaction (RFC 5321 §4.5.3.2 timeouts)."""
ORPHAN_GRACE_SECONDS = 3600.0
"""While the store runs, a blob file no row names is removed once nobody has written or
reused it for this long (one node; nodes sharing the directory use
SHARED_GRACE_SECONDS). Longer than the step from a blob's commit to its delivery's."""
_SWEEP_CHUNK = 500
"""Keys asked about per query (below every backend's bound on bound parameters)."""


def recover(engine: Engine, files: BlobFiles, *, grace_seconds: float = 0.0) -> RecoveryReport:
    """Repair the blob store as described in the module docstring; returns what was done.

    ``grace_seconds``: 0 for a store used by one process (SQLite), SHARED_GRACE_SECONDS
    when other nodes may be writing to the same blob directory.
    Synchronous: call from the writer thread before the store takes deliveries.
    """
    files.prepare()
    now = time.time()
    temp_removed = files.clear_tmp(older_than=grace_seconds, now=now)
    if temp_removed:
        _log.info("store.recovery.temp_removed count=%d", temp_removed)
    with engine.begin() as conn:
        collected = conn.execute(delete(blobs).where(_unreferenced())).rowcount
        file_keys = set(conn.execute(select(blobs.c.key).where(blobs.c.data.is_(None))).scalars())
    if collected:  # blobs whose last message or queue entry went (not a repair)
        _log.info("store.recovery.blobs_collected count=%d", collected)
    on_disk = set(files.keys())
    orphans = {k for k in on_disk - file_keys if files.age(k, now) >= grace_seconds}
    for key in sorted(orphans):
        files.remove(key)
        _log.info("store.recovery.orphan_removed key=%s", key)
    missing = tuple(sorted(file_keys - on_disk))
    for key in missing:
        _log.error("store.recovery.blob_missing key=%s", key)
    report = RecoveryReport(
        orphan_blobs_removed=len(orphans),
        temp_files_removed=temp_removed,
        missing_blobs=missing,
    )
    _log.info(
        "store.recovery.done collected=%d orphans=%d temp=%d missing=%d",
        collected,
        report.orphan_blobs_removed,
        report.temp_files_removed,
        len(report.missing_blobs),
    )
    return report


def _unreferenced() -> ColumnElement[bool]:
    """A blob row that no message and no queued message names."""
    return ~exists().where(messages.c.blob_key == blobs.c.key) & ~exists().where(
        queue_messages.c.blob_key == blobs.c.key
    )


def find_unreferenced(engine: Engine, after: str) -> list[tuple[str, bool]]:
    """Up to ``_SWEEP_CHUNK`` blob rows past key ``after`` (in key order) that no message
    and no queued message names any more (the last copy of a message was expunged, its
    queue entry finished), as ``(key, in_file)``. A read: call from a reader thread;
    ``delete_unreferenced`` then deletes them. Spec: RELIABILITY.md D2."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(blobs.c.key, blobs.c.data.is_(None))
            .where((blobs.c.key > after) & _unreferenced())
            .order_by(blobs.c.key)
            .limit(_SWEEP_CHUNK)
        ).all()
    return [(str(key), bool(in_file)) for key, in_file in rows]


def delete_unreferenced(engine: Engine, files: BlobFiles, rows: list[tuple[str, bool]]) -> int:
    """Delete the blob rows ``find_unreferenced`` found, in one short transaction that
    checks again that nothing names them, so that their space is given back while the
    store runs (inline bytes go with the row). A file-backed row's file is marked as just
    used first (``BlobFiles.reuse``), so it becomes an orphan that ``sweep_orphans``
    removes only after its grace period: a backup that copies the database and then,
    within that period, the blob directory finds every file the copy names. Returns how
    many rows went.

    A delivery of the same bytes racing with the deletion either sees the row gone and
    inserts it again (SQLite serialises the two; the file is kept by ``BlobFiles.reuse``),
    or, on PostgreSQL, may fail its foreign-key check and be answered with a temporary
    failure that the client retries: no mail is lost either way.
    Synchronous: call from the writer thread. Spec: RELIABILITY.md D2.
    """
    for key, in_file in rows:
        if in_file:
            files.reuse(key)
    keys = [key for key, _ in rows]
    with engine.begin() as conn:
        collected = conn.execute(delete(blobs).where(blobs.c.key.in_(keys) & _unreferenced()))
    return int(collected.rowcount)


def sweep_orphans(engine: Engine, files: BlobFiles, *, grace_seconds: float) -> int:
    """Remove, while the store runs, blob files that no blob row names and that nobody
    wrote or reused for ``grace_seconds``: the files of messages refused after their
    bytes were stored (a size or structure limit, a DMARC reject, a failed delivery), which
    would otherwise wait for the next start. Returns how many were removed.

    A writer that reuses an existing file (content-addressed dedupe) marks it under the
    lock the removal takes (``BlobFiles.reuse``), so a file about to be named by a
    delivery is never removed. Synchronous: call from a worker thread.
    Spec: RELIABILITY.md D2.
    """
    now = time.time()
    on_disk = files.keys()
    stale = [key for key in on_disk if files.age(key, now) >= grace_seconds]
    referenced: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(stale), _SWEEP_CHUNK):
            chunk = stale[start : start + _SWEEP_CHUNK]
            referenced.update(
                conn.execute(select(blobs.c.key).where(blobs.c.key.in_(chunk))).scalars()
            )
    removed = 0
    for key in stale:
        if key not in referenced and files.remove_if_stale(key, grace_seconds):
            removed += 1
            _log.info("store.blob_sweep.orphan_removed key=%s", key)
    return removed
