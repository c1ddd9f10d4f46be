"""The Store contract, run on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select

from postel import limits
from postel.clock import FixedClock
from postel.errors import AlreadyExists, NotFound, StoreError
from postel.ids import AccountId, QueueId
from postel.store import (
    DEFAULT_MAILBOXES,
    Account,
    BlobRef,
    Delivery,
    SpecialUse,
    SqlStore,
    Store,
    open_store,
)
from postel.store.fulltext_sql import include_in_schema_compare
from postel.store.recovery import SHARED_GRACE_SECONDS
from postel.store.schema import blobs, metadata

from .conftest import T0, credentials

TRACE = b"Return-Path: <sender@example.net>\r\nDelivered-To: {rcpt}\r\n"


def message(n: int, size: int = 1024) -> bytes:
    head = f"From: sender@example.net\r\nSubject: message {n}\r\n\r\n".encode()
    body = (f"line {n} " * (size // 8 + 1)).encode()[: max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


async def put_blob(store: Store, data: bytes, piece: int = 4096) -> BlobRef:
    writer = store.blob_writer()
    for i in range(0, len(data), piece):
        writer.write(data[i : i + piece])
    assert writer.size == len(data)
    return await writer.commit()


def delivery(
    account: Account,
    ref: BlobRef,
    *,
    mailbox: str = "INBOX",
    queue_id: str | None = None,
    flags: frozenset[str] = frozenset(),
) -> Delivery:
    return Delivery(
        account_id=account.id,
        mailbox=mailbox,
        blob=ref,
        trace_prefix=TRACE.replace(b"{rcpt}", account.address.encode()),
        internal_date=T0,
        summary='{"subject": "x"}',
        flags=flags,
        queue_id=None if queue_id is None else QueueId(queue_id),
    )


async def make_accounts(store: Store, *names: str) -> list[Account]:
    await store.add_domain("example.org")
    return [await store.add_account(f"{n}@example.org", credentials(n)) for n in names]


# -- directory -------------------------------------------------------------------------


async def test_domain_names_are_lower_case_and_unique(store: Store) -> None:
    domain = await store.add_domain("Example.ORG")
    assert domain.name == "example.org"
    assert await store.get_domain("EXAMPLE.org") == domain
    with pytest.raises(AlreadyExists):
        await store.add_domain("example.org")
    for odd in ("", ".", "a@b", "x" * 300):
        assert await store.get_domain(odd) is None
    await store.add_domain("example.net")
    assert [d.name for d in await store.list_domains()] == ["example.net", "example.org"]
    await store.remove_domain("example.net")
    assert await store.get_domain("example.net") is None
    with pytest.raises(NotFound):
        await store.remove_domain("example.net")


async def test_account_gets_default_mailboxes(store: Store) -> None:
    await store.add_domain("example.org")
    account = await store.add_account("Alice@Example.ORG", credentials("a"), is_admin=True)
    assert account.address == "Alice@example.org"
    assert account.is_admin
    assert account.created == T0
    boxes = await store.list_mailboxes(account.id)
    assert [(b.name, b.special_use) for b in boxes] == list(DEFAULT_MAILBOXES)
    assert {b.special_use for b in boxes} >= {SpecialUse.SENT, SpecialUse.TRASH}
    for b in boxes:
        assert b.uidnext == 1 and b.subscribed and b.account_id == account.id
        assert 0 < b.uidvalidity < 2**32
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    inbox = await store.get_mailbox(account.id, "inbox")
    assert inbox is not None and inbox.name == "INBOX"
    assert await store.get_mailbox(account.id, "Nope") is None


async def test_account_lookup_is_case_insensitive(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    assert await store.get_account("ALICE@EXAMPLE.ORG") == alice
    assert await store.get_account_by_id(alice.id) == alice
    for odd in ("alice", "a@.", "a@..", "@", "alice@example.org" + "x" * 400):
        assert await store.get_account(odd) is None
        assert await store.get_alias(odd) is None
    assert await store.get_account_by_id(AccountId(alice.id + 1000)) is None
    with pytest.raises(AlreadyExists):
        await store.add_account("Alice@example.org", credentials())
    with pytest.raises(NotFound):
        await store.add_account("bob@unknown.example", credentials())
    with pytest.raises(StoreError):
        await store.remove_domain("example.org")
    new = credentials("changed")
    await store.set_credentials("alice@example.org", new)
    got = await store.get_account("alice@example.org")
    assert got is not None and got.credentials == new
    await store.add_domain("example.net")
    await store.add_account("zed@example.net", credentials())
    assert [a.address for a in await store.list_accounts("example.org")] == ["alice@example.org"]
    assert len(await store.list_accounts()) == 2


async def test_uidvalidity_grows_when_a_mailbox_is_recreated(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    first = {b.uidvalidity for b in await store.list_mailboxes(alice.id)}
    await store.remove_account("alice@example.org")
    again = await store.add_account("alice@example.org", credentials())
    second = {b.uidvalidity for b in await store.list_mailboxes(again.id)}
    assert min(second) > max(first)


async def test_aliases(store: Store) -> None:
    await make_accounts(store, "alice", "bob")
    alias = await store.add_alias("Postmaster@Example.org", ["alice@example.org", "x@ext.example"])
    assert alias.source == "Postmaster@example.org"
    assert alias.targets == ("alice@example.org", "x@ext.example")
    catch_all = await store.add_alias("@example.org", ["bob@example.org"])
    assert await store.get_alias("@EXAMPLE.ORG") == catch_all
    assert await store.get_alias("POSTMASTER@example.org") == alias
    with pytest.raises(AlreadyExists):
        await store.add_alias("postmaster@example.org", ["bob@example.org"])
    with pytest.raises(NotFound):
        await store.add_alias("a@unknown.example", ["bob@example.org"])
    assert len(await store.list_aliases("example.org")) == 2
    assert await store.list_aliases("example.net") == []
    # Removing an account drops it from alias targets; an alias left empty goes away.
    await store.remove_account("ALICE@example.org")
    left = await store.get_alias("postmaster@example.org")
    assert left is not None and left.targets == ("x@ext.example",)
    await store.remove_account("bob@example.org")
    assert await store.get_alias("@example.org") is None
    await store.remove_alias("postmaster@example.org")
    with pytest.raises(NotFound):
        await store.remove_alias("postmaster@example.org")


# -- delivery --------------------------------------------------------------------------


async def test_deliver_to_several_accounts_in_one_call(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    inbox_a = await store.get_mailbox(alice.id, "INBOX")
    assert inbox_a is not None
    refs = [await put_blob(store, message(i)) for i in range(3)]
    for ref in refs:
        out = await store.deliver(
            [delivery(alice, ref), delivery(bob, ref), delivery(alice, ref, mailbox="Archive")]
        )
        assert [d.account_id for d in out] == [alice.id, bob.id, alice.id]
        assert not any(d.duplicate for d in out)
    a_msgs = await store.list_messages(inbox_a.id)
    assert [m.uid for m in a_msgs] == [1, 2, 3]
    assert [m.modseq for m in a_msgs] == [2, 3, 4]
    assert await store.list_messages(inbox_a.id, uid_from=3) == [a_msgs[2]]
    after = await store.get_mailbox(alice.id, "INBOX")
    assert after is not None
    assert (after.uidnext, after.highestmodseq) == (4, 4)
    assert after.uidvalidity == inbox_a.uidvalidity
    bob_inbox = await store.get_mailbox(bob.id, "INBOX")
    archive = await store.get_mailbox(alice.id, "Archive")
    assert bob_inbox is not None and bob_inbox.uidnext == 4
    assert archive is not None and archive.uidnext == 4
    first = a_msgs[0]
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert first.size == len(prefix) + len(message(0))
    assert first.blob == refs[0]
    assert first.internal_date == T0
    assert first.summary == '{"subject": "x"}'
    assert await store.read_message(inbox_a.id, 1) == prefix + message(0)
    with pytest.raises(NotFound):
        await store.read_message(inbox_a.id, 99)


async def test_flags_and_queue_id_are_stored(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    ref = await put_blob(store, message(1))
    flags = frozenset({"\\Seen", "$Junk"})
    (got,) = await store.deliver([delivery(alice, ref, mailbox="Junk", flags=flags, queue_id="Q1")])
    (stored,) = await store.list_messages(got.mailbox_id)
    assert stored.flags == flags
    assert stored.queue_id == "Q1"
    assert (stored.uid, stored.modseq) == (got.uid, got.modseq)


async def test_idempotent_replay_of_a_queue_id(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    ref = await put_blob(store, message(7))
    first = await store.deliver([delivery(alice, ref, queue_id="7KQ2M9XH4T"), delivery(bob, ref)])
    again = await store.deliver(
        [delivery(alice, ref, queue_id="7KQ2M9XH4T"), delivery(alice, ref, queue_id="OTHER")]
    )
    assert again[0].duplicate and not again[1].duplicate
    assert (again[0].uid, again[0].modseq) == (first[0].uid, first[0].modseq)
    assert again[1].uid == 2
    assert len(await store.list_messages(first[0].mailbox_id)) == 2
    # Same queue id twice in one call: stored once.
    twice = await store.deliver(
        [delivery(bob, ref, queue_id="DUP"), delivery(bob, ref, queue_id="DUP")]
    )
    assert [d.duplicate for d in twice] == [False, True]
    assert twice[0].uid == twice[1].uid


async def test_concurrent_deliveries_get_dense_unique_uids(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    refs = [await put_blob(store, message(i)) for i in range(50)]

    async def one(i: int) -> list[int]:
        out = await store.deliver([delivery(alice, refs[i]), delivery(bob, refs[i])])
        return [d.uid for d in out]

    results = await asyncio.gather(*(one(i) for i in range(50)))
    for column in (0, 1):
        uids = sorted(r[column] for r in results)
        assert uids == list(range(1, 51))
    for account in (alice, bob):
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        assert (inbox.uidnext, inbox.highestmodseq) == (51, 51)
        msgs = await store.list_messages(inbox.id)
        assert len({m.modseq for m in msgs}) == 50
        by_uid = {r[0 if account is alice else 1]: i for i, r in enumerate(results)}
        for m in msgs:
            assert m.blob == refs[by_uid[m.uid]]


async def test_concurrent_callers_share_commits(store: Store) -> None:
    assert isinstance(store, SqlStore)
    (alice,) = await make_accounts(store, "alice")
    refs = [await put_blob(store, message(i)) for i in range(50)]
    before = store.group_commit_batches
    await asyncio.gather(*(store.deliver([delivery(alice, r)]) for r in refs))
    assert store.group_commit_batches - before < 50


async def test_two_stores_on_one_database_allocate_uids_safely(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    other = open_store(database_url, blob_dir, clock=clock)
    await other.open()
    try:
        refs = [await put_blob(store, message(i)) for i in range(40)]
        calls = [
            (store if i % 2 else other).deliver([delivery(alice, ref), delivery(bob, ref)])
            for i, ref in enumerate(refs)
        ]
        results = await asyncio.gather(*calls)
    finally:
        await other.close()
    for column in (0, 1):
        assert sorted(r[column].uid for r in results) == list(range(1, 41))
        assert sorted(r[column].modseq for r in results) == list(range(2, 42))


async def test_failed_delivery_does_not_affect_the_batch(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    ref = await put_blob(store, message(1))
    ghost = Account(
        id=AccountId(alice.id + bob.id + 1000),
        address="ghost@example.org",
        domain_id=alice.domain_id,
        credentials=credentials(),
        created=T0,
    )
    calls = [
        store.deliver([delivery(alice, ref)]),
        store.deliver([delivery(bob, ref), delivery(ghost, ref)]),
        store.deliver([delivery(alice, ref, mailbox="No Such Box")]),
        store.deliver([delivery(bob, ref)]),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], NotFound)
    ok_a, ok_b = results[0], results[3]
    assert not isinstance(ok_a, BaseException) and not isinstance(ok_b, BaseException)
    assert ok_a[0].uid == 1 and ok_b[0].uid == 1
    bob_inbox = await store.get_mailbox(bob.id, "INBOX")
    assert bob_inbox is not None and bob_inbox.uidnext == 2
    naive = dataclasses.replace(delivery(bob, ref), internal_date=dt.datetime(2026, 1, 1))
    bad, good = await asyncio.gather(
        store.deliver([naive]), store.deliver([delivery(bob, ref)]), return_exceptions=True
    )
    assert isinstance(bad, StoreError)
    assert not isinstance(good, BaseException) and good[0].uid == 2
    assert len(await store.list_messages(bob_inbox.id)) == 2


async def test_unknown_blob_is_refused(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    never = BlobRef(key="ab" * 32, size=200_000)
    with pytest.raises(NotFound):
        await store.deliver([delivery(alice, never)])
    assert await store.deliver([]) == []


# -- blobs -------------------------------------------------------------------------------


def blob_files(blob_dir: Path) -> list[Path]:
    return [p for p in blob_dir.glob("??/*") if p.is_file()]


async def test_small_inline_and_large_file_blobs_read_back(store: Store, blob_dir: Path) -> None:
    (alice,) = await make_accounts(store, "alice")
    small = message(1, size=limits.BLOB_INLINE_MAX)
    large = message(2, size=limits.BLOB_INLINE_MAX + 1) + bytes(range(256)) * 5000
    small_ref = await put_blob(store, small)
    large_ref = await put_blob(store, large, piece=65_537)
    assert small_ref.inline == small and small_ref.size == len(small)
    assert large_ref.inline is None and large_ref.size == len(large)
    assert large_ref.key == hashlib.sha256(large).hexdigest()
    assert blob_files(blob_dir) == [blob_dir / large_ref.key[:2] / large_ref.key[2:]]
    out = await store.deliver([delivery(alice, small_ref), delivery(alice, large_ref)])
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert await store.read_message(out[0].mailbox_id, 1) == prefix + small
    assert await store.read_message(out[0].mailbox_id, 2) == prefix + large
    chunks = [c async for c in store.open_message(out[0].mailbox_id, 2)]
    assert b"".join(chunks) == prefix + large
    assert max(len(c) for c in chunks) <= 64 * 1024
    assert b"".join([c async for c in store.open_message(out[0].mailbox_id, 1)]) == prefix + small
    with pytest.raises(NotFound):
        async for _ in store.open_message(out[0].mailbox_id, 3):
            pass


async def test_identical_bytes_are_stored_once(
    store: Store, blob_dir: Path, database_url: str
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    large = b"L" * (limits.BLOB_INLINE_MAX + 10)
    small = b"S" * 100
    for data in (large, large, small, small):
        ref = await put_blob(store, data)
        await store.deliver([delivery(alice, ref), delivery(bob, ref)])
    assert len(blob_files(blob_dir)) == 1
    assert list((blob_dir / "tmp").iterdir()) == []
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(blobs)).scalar_one() == 2
    finally:
        engine.dispose()


async def test_aborted_writer_leaves_nothing(store: Store, blob_dir: Path) -> None:
    writer = store.blob_writer()
    writer.write(b"x" * (limits.BLOB_SPILL_THRESHOLD + 1))
    assert len(list((blob_dir / "tmp").iterdir())) == 1
    writer.abort()
    assert list((blob_dir / "tmp").iterdir()) == []
    with pytest.raises(StoreError):
        writer.write(b"more")


# -- recovery and schema -------------------------------------------------------------------


def age_files(blob_dir: Path, seconds: float = SHARED_GRACE_SECONDS + 60) -> None:
    """Make every file under ``blob_dir`` look ``seconds`` old (past any grace period)."""
    then = time.time() - seconds
    for path in blob_dir.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


async def test_recovery_spares_fresh_files_when_the_blob_dir_is_shared(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    """PostgreSQL: another node may be spooling or about to commit; SQLite: one node."""
    fresh = await put_blob(store, b"F" * (limits.BLOB_INLINE_MAX + 5))  # not yet delivered
    (blob_dir / "tmp" / "blob-spooling").write_bytes(b"arriving")
    again = open_store(database_url, blob_dir, clock=clock)
    report = await again.open()
    await again.close()
    shared = database_url.startswith("postgresql")
    assert report.temp_files_removed == (0 if shared else 1)
    assert report.orphan_blobs_removed == (0 if shared else 1)
    assert (blob_dir / fresh.key[:2] / fresh.key[2:]).exists() == shared


async def test_recovery_removes_orphans_and_tmp(
    store: Store,
    database_url: str,
    blob_dir: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="postel.store")
    (alice,) = await make_accounts(store, "alice")
    kept = await put_blob(store, b"K" * (limits.BLOB_INLINE_MAX + 1))
    lost = await put_blob(store, b"M" * (limits.BLOB_INLINE_MAX + 2))
    await store.deliver([delivery(alice, kept), delivery(alice, lost)])
    orphan = await put_blob(store, b"O" * (limits.BLOB_INLINE_MAX + 3))  # never delivered
    await store.close()
    (blob_dir / "tmp" / "blob-torn").write_bytes(b"half a message")
    (blob_dir / lost.key[:2] / lost.key[2:]).unlink()
    age_files(blob_dir)

    again = open_store(database_url, blob_dir, clock=clock)
    report = await again.open()
    try:
        assert report.orphan_blobs_removed == 1
        assert report.temp_files_removed == 1
        assert report.missing_blobs == (lost.key,)
        names = {p.parent.name + p.name for p in blob_files(blob_dir)}
        assert names == {kept.key}
        assert orphan.key not in names
        inbox = await again.get_mailbox(alice.id, "INBOX")
        assert inbox is not None
        read = await again.read_message(inbox.id, 1)
        assert read.endswith(b"K" * (limits.BLOB_INLINE_MAX + 1))
        with pytest.raises(NotFound):
            await again.read_message(inbox.id, 2)
    finally:
        await again.close()
    events = {r.getMessage().split()[0] for r in caplog.records}
    assert {
        "store.recovery.orphan_removed",
        "store.recovery.temp_removed",
        "store.recovery.blob_missing",
    } <= events


async def test_removed_account_blobs_are_collected_at_start(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    (alice,) = await make_accounts(store, "alice")
    ref = await put_blob(store, b"G" * (limits.BLOB_INLINE_MAX + 1))
    await store.deliver([delivery(alice, ref)])
    await store.remove_account("alice@example.org")
    await store.close()
    age_files(blob_dir)
    again = open_store(database_url, blob_dir, clock=clock)
    report = await again.open()
    await again.close()
    assert report.orphan_blobs_removed == 1
    assert blob_files(blob_dir) == []


async def test_migrated_schema_matches_metadata(store: Store, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "include_name": include_in_schema_compare},
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


async def test_open_twice_is_idempotent(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    await make_accounts(store, "alice")
    other = open_store(database_url, blob_dir, clock=clock)
    await other.open()
    try:
        assert [a.address for a in await other.list_accounts()] == ["alice@example.org"]
    finally:
        await other.close()


def test_bad_urls_are_refused(tmp_path: Path) -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(StoreError):
        open_store("sqlite://", tmp_path, clock=clock)
    with pytest.raises(StoreError):
        open_store("mysql://localhost/x", tmp_path, clock=clock)
