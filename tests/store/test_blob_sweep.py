"""Blob space given back while the store runs (RELIABILITY.md D2): the file of a
message refused after its bytes were stored goes once nobody has used it for the grace
period; a delivered message's file and a file reused by a new message stay; a blob whose
last message was expunged loses its row (inline bytes included) and then its file, while
a blob another message or a queue entry still names stays, on both backends."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from postel import limits
from postel.store import FlagMode, Store
from postel.store.api import UidSet
from postel.store.blobs import BlobFiles
from postel.store.queue_api import NewQueuedMessage, NewRecipient
from postel.store.recovery import SHARED_GRACE_SECONDS
from postel.store.schema import blobs

from .test_contract import TRACE, delivery, make_accounts, message, put_blob

OLD = 2 * SHARED_GRACE_SECONDS  # older than the grace of either backend


def large(n: int) -> bytes:
    """A message stored as a file (over BLOB_INLINE_MAX), different for each ``n``."""
    return message(n, size=1024) + bytes([n]) * (limits.BLOB_INLINE_MAX + 1)


def age(blob_dir: Path, key: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(blob_dir / key[:2] / key[2:], (then, then))


def exists(blob_dir: Path, key: str) -> bool:
    return (blob_dir / key[:2] / key[2:]).is_file()


async def test_a_refused_message_s_file_goes_and_a_delivered_one_stays(
    store: Store, blob_dir: Path
) -> None:
    (alice,) = await make_accounts(store, "alice")
    kept = await put_blob(store, large(1))
    refused = await put_blob(store, large(2))  # e.g. a 552 after DATA: never delivered
    (out,) = await store.deliver([delivery(alice, kept)])
    fresh = await put_blob(store, large(3))  # refused a moment ago: within the grace
    for ref in (kept, refused):
        age(blob_dir, ref.key, OLD)
    assert await store.sweep_orphan_blobs() == 1
    assert not exists(blob_dir, refused.key)
    assert exists(blob_dir, kept.key) and exists(blob_dir, fresh.key)
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert await store.read_message(out.mailbox_id, out.uid) == prefix + large(1)
    assert await store.sweep_orphan_blobs() == 0


async def test_an_old_orphan_reused_by_a_new_message_is_kept(store: Store, blob_dir: Path) -> None:
    """Content-addressed dedupe: the same bytes again reuse the old file, which is then
    marked as just used, so the sweep leaves it to the delivery that names it."""
    (alice,) = await make_accounts(store, "alice")
    orphan = await put_blob(store, large(4))
    age(blob_dir, orphan.key, OLD)
    again = await put_blob(store, large(4))
    assert again.key == orphan.key
    assert await store.sweep_orphan_blobs() == 0
    (out,) = await store.deliver([delivery(alice, again)])
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert await store.read_message(out.mailbox_id, out.uid) == prefix + large(4)


async def test_a_file_swept_before_its_reuse_is_written_again(store: Store, blob_dir: Path) -> None:
    (alice,) = await make_accounts(store, "alice")
    orphan = await put_blob(store, large(5))
    age(blob_dir, orphan.key, OLD)
    assert await store.sweep_orphan_blobs() == 1
    again = await put_blob(store, large(5))
    assert exists(blob_dir, again.key)
    (out,) = await store.deliver([delivery(alice, again)])
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert await store.read_message(out.mailbox_id, out.uid) == prefix + large(5)


def blob_keys(database_url: str) -> set[str]:
    """The keys of every blob row, read over a connection of the test's own."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(blobs.c.key)).scalars())
    finally:
        engine.dispose()


async def test_an_expunged_message_s_blob_goes_once_nothing_names_it(
    store: Store, blob_dir: Path, database_url: str
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    shared = await put_blob(store, large(6))  # a file, delivered to both
    small = await put_blob(store, message(7))  # inline, in its row
    queued = await put_blob(store, large(8))  # a file, waiting in the queue only
    await store.enqueue(
        NewQueuedMessage("Q8", queued, "alice@example.org", trace_prefix=TRACE),
        [NewRecipient("x@example.net", "example.net")],
    )
    in_alice = await store.deliver([delivery(alice, shared), delivery(alice, small)])
    (in_bob,) = await store.deliver([delivery(bob, shared)])
    for ref in (shared, queued):
        age(blob_dir, ref.key, OLD)
    assert {shared.key, small.key, queued.key} <= blob_keys(database_url)

    box = in_alice[0].mailbox_id
    uids = UidSet.of([d.uid for d in in_alice])
    await store.store_flags(box, uids, FlagMode.ADD, frozenset({"\\Deleted"}))
    assert sorted(await store.expunge(box)) == sorted(d.uid for d in in_alice)
    assert await store.sweep_orphan_blobs() == 0  # bob's copy still names the file
    assert blob_keys(database_url) == {shared.key, queued.key}  # the inline one went
    assert exists(blob_dir, shared.key) and exists(blob_dir, queued.key)

    await store.store_flags(
        in_bob.mailbox_id, UidSet.of([in_bob.uid]), FlagMode.ADD, frozenset({"\\Deleted"})
    )
    await store.expunge(in_bob.mailbox_id)
    # The row goes now; the file waits out the grace period (for backups), then goes.
    assert await store.sweep_orphan_blobs() == 0
    assert blob_keys(database_url) == {queued.key}
    assert exists(blob_dir, shared.key)
    age(blob_dir, shared.key, OLD)
    assert await store.sweep_orphan_blobs() == 1
    assert not exists(blob_dir, shared.key) and exists(blob_dir, queued.key)

    # The same bytes again: stored anew, read back whole.
    again = await put_blob(store, large(6))
    (out,) = await store.deliver([delivery(alice, again)])
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert await store.read_message(out.mailbox_id, out.uid) == prefix + large(6)
    assert await store.sweep_orphan_blobs() == 0
    assert again.key in blob_keys(database_url)


async def test_collecting_walks_past_one_chunk(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postel.store import recovery

    monkeypatch.setattr(recovery, "_SWEEP_CHUNK", 3)
    (alice,) = await make_accounts(store, "alice")
    refs = [await put_blob(store, message(100 + n)) for n in range(8)]
    out = await store.deliver([delivery(alice, ref) for ref in refs])
    keep = {refs[0].key, refs[5].key}
    gone = [d.uid for d, ref in zip(out, refs, strict=True) if ref.key not in keep]
    box = out[0].mailbox_id
    await store.store_flags(box, UidSet.of(gone), FlagMode.ADD, frozenset({"\\Deleted"}))
    await store.expunge(box)
    await store.sweep_orphan_blobs()
    assert blob_keys(database_url) == keep


def test_reuse_and_stale_removal(tmp_path: Path) -> None:
    files = BlobFiles(tmp_path)
    files.prepare()
    key = "ab" * 32
    (tmp_path / "ab").mkdir()
    path = tmp_path / "ab" / key[2:]
    path.write_bytes(b"x")
    then = time.time() - 100
    os.utime(path, (then, then))
    assert not files.remove_if_stale(key, 200)  # used 100 s ago: within 200 s
    assert files.reuse(key) and time.time() - path.stat().st_mtime < 5
    assert not files.remove_if_stale(key, 50)
    os.utime(path, (then, then))
    assert files.remove_if_stale(key, 50) and not path.exists()
    assert not files.reuse(key) and not files.remove_if_stale(key, 0)
    assert list(files.keys()) == []  # the lock file is not a blob
