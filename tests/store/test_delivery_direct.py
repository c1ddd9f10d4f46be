"""SQLite's direct commit path (postel.store.delivery, docs/adr/0009): a batch's
statements run on the event loop's thread and only COMMIT on the commit thread; when
another writer holds the database, the batch waits on the writer thread instead, and the
event loop never waits for the lock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postel.clock import FixedClock
from postel.errors import StoreBusy
from postel.store import Store, open_store
from postel.store.delivery import GroupCommitter
from postel.store.sql import SqlStore

from .test_contract import delivery, make_accounts, message, put_blob


@pytest.fixture
async def sqlite_store(tmp_path: Path, blob_dir: Path, clock: FixedClock) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'postel.db'}", blob_dir, clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def _committer(store: Store) -> GroupCommitter:
    assert isinstance(store, SqlStore)
    return store._committer


async def test_deliveries_take_the_direct_path(sqlite_store: Store) -> None:
    (alice,) = await make_accounts(sqlite_store, "alice")
    refs = [await put_blob(sqlite_store, message(i)) for i in range(5)]
    out = await asyncio.gather(
        *(
            sqlite_store.deliver([delivery(alice, ref, queue_id=f"Q{i}")])
            for i, ref in enumerate(refs)
        )
    )
    assert sorted(d[0].uid for d in out) == [1, 2, 3, 4, 5]
    committer = _committer(sqlite_store)
    assert committer.batches_direct == committer.batches_committed >= 1
    inbox = await sqlite_store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and inbox.uidnext == 6


async def test_a_locked_database_waits_on_the_writer_thread_not_the_loop(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Another connection holds SQLite's write lock: the delivery waits for it (on the
    writer thread, whose busy timeout allows it), the event loop keeps running
    meanwhile, and the message is stored once the lock is released."""
    (alice,) = await make_accounts(sqlite_store, "alice")
    ref = await put_blob(sqlite_store, message(1))
    committer = _committer(sqlite_store)
    direct_before = committer.batches_direct
    other = sqlite3.connect(tmp_path / "postel.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    delivering = asyncio.create_task(sqlite_store.deliver([delivery(alice, ref, queue_id="L")]))
    await asyncio.sleep(0.5)
    assert not delivering.done()
    assert ticks >= 20, "the event loop waited for the lock"
    other.execute("COMMIT")
    other.close()
    delivered = await asyncio.wait_for(delivering, 10)
    ticking.cancel()
    assert delivered[0].uid == 1
    assert committer.batches_direct == direct_before  # this batch ran on the writer thread
    # The next batch takes the direct path again.
    ref2 = await put_blob(sqlite_store, message(2))
    assert (await sqlite_store.deliver([delivery(alice, ref2, queue_id="M")]))[0].uid == 2
    assert committer.batches_direct == direct_before + 1


async def test_a_failed_direct_batch_leaves_nothing_and_runs_per_request(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """A value the database refuses fails the direct path's fast path: it rolls back,
    the batch runs again on the writer thread, where only the refused caller fails."""
    alice, bob = await make_accounts(sqlite_store, "alice", "bob")
    refs = [await put_blob(sqlite_store, message(i)) for i in range(2)]
    db = sqlite3.connect(tmp_path / "postel.db", isolation_level=None)
    # A trigger refusing one queue id stands for any refusal by the database.
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN new.queue_id = 'BAD' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    db.close()
    good = sqlite_store.deliver([delivery(alice, refs[0], queue_id="GOOD")])
    bad = sqlite_store.deliver([delivery(bob, refs[1], queue_id="BAD")])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert not isinstance(results[0], BaseException) and results[0][0].uid == 1
    assert isinstance(results[1], Exception)
    box = await sqlite_store.get_mailbox(bob.id, "INBOX")
    assert box is not None and box.uidnext == 1
    direct = _committer(sqlite_store)._direct
    assert direct is not None and not direct.in_transaction


async def test_a_direct_connection_that_cannot_open_leaves_the_writer_thread_in_charge(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong opening the direct path's connection, deliveries go on
    through the writer thread (the committer never stops)."""
    committer = _committer(sqlite_store)

    def broken() -> sqlite3.Connection:
        raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(committer, "_direct_connection", broken)
    (alice,) = await make_accounts(sqlite_store, "alice")
    for n in range(3):
        ref = await put_blob(sqlite_store, message(n))
        delivered = await sqlite_store.deliver([delivery(alice, ref, queue_id=f"B{n}")])
        assert delivered[0].uid == n + 1
    assert committer.batches_direct == 0


async def test_a_lock_held_past_the_busy_timeout_is_store_busy(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Another writer keeps the database locked past the writer thread's busy timeout:
    the caller gets StoreBusy (a temporary failure the SMTP session answers 451 without
    an error traceback), and the next delivery after the lock goes through."""
    (alice,) = await make_accounts(sqlite_store, "alice")
    ref = await put_blob(sqlite_store, message(1))
    assert isinstance(sqlite_store, SqlStore)
    # The writer thread's (pooled) connection waits 100 ms, not the store's busy timeout.
    with sqlite_store._engines.writer.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=100")
    other = sqlite3.connect(tmp_path / "postel.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy):
            await asyncio.wait_for(sqlite_store.deliver([delivery(alice, ref, queue_id="X")]), 30)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (await sqlite_store.deliver([delivery(alice, ref, queue_id="Y")]))[0].uid == 1
