"""The delivery batch: fast path, fallback to per-request savepoints, idempotency inside
one batch. ``run_batch`` is driven directly so every batch is exactly the one written
here; both backends."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from postel.errors import NotFound, StoreError
from postel.store import Account, BlobRef, Delivered, Delivery, Store
from postel.store.blobs import BlobFiles
from postel.store.delivery_batch import DeliveryStatements, Outcome, run_batch
from postel.store.delivery_sqlite import ROWS_PER_STATEMENT, SqliteBatchIO
from postel.store.engines import Engines, make_engines
from postel.store.schema import blobs, mailboxes, messages

from .test_contract import delivery, make_accounts, message, put_blob

FALLBACK_EVENT = "store.deliver.fast_path_failed"


@dataclass(frozen=True)
class BatchEngines:
    """The store's engines and which ``BatchIO`` runs the fast path: SQLAlchemy, or
    (SQLite only) the driver's cursor as the group committer uses it."""

    engines: Engines
    io: str

    @property
    def writer(self) -> Engine:
        return self.engines.writer

    @property
    def reader(self) -> Engine:
        return self.engines.reader

    @property
    def dialect(self) -> str:
        return self.engines.dialect


@pytest.fixture(params=["alchemy", "driver"])
def engines(
    store: Store, database_url: str, request: pytest.FixtureRequest
) -> Iterator[BatchEngines]:
    made = make_engines(database_url)
    if request.param == "driver" and made.dialect != "sqlite":
        pytest.skip("the driver-cursor fast path is SQLite's")
    try:
        yield BatchEngines(made, request.param)
    finally:
        made.writer.dispose()
        made.reader.dispose()


def batch(
    engines: BatchEngines, blob_dir: Path, requests: Sequence[Sequence[Delivery]]
) -> list[Outcome]:
    with engines.writer.begin() as conn:
        io = None
        if engines.io == "driver":
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            io = SqliteBatchIO(raw)
        stmts = DeliveryStatements.for_dialect(engines.dialect)
        return run_batch(conn, stmts, BlobFiles(blob_dir), requests, io)


def delivered(outcome: Outcome) -> list[Delivered]:
    assert not isinstance(outcome, StoreError), outcome
    return outcome


def fell_back(caplog: pytest.LogCaptureFixture) -> bool:
    return any(FALLBACK_EVENT in r.getMessage() for r in caplog.records)


def ghost(of: Account) -> Account:
    return Account(
        id=of.id + 1000,  # type: ignore[arg-type]
        address="ghost@example.org",
        domain_id=of.domain_id,
        credentials=of.credentials,
        created=of.created,
    )


async def test_fast_path_allocates_dense_uids_in_request_order(
    store: Store, engines: BatchEngines, blob_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postel.store")
    alice, bob = await make_accounts(store, "alice", "bob")
    refs = [await put_blob(store, message(i)) for i in range(3)]
    requests = [
        [delivery(alice, refs[0], queue_id="A"), delivery(bob, refs[0], queue_id="A")],
        [delivery(alice, refs[1], queue_id="B")],
        [delivery(bob, refs[2]), delivery(alice, refs[2], queue_id="C")],
    ]
    out = [delivered(o) for o in batch(engines, blob_dir, requests)]
    assert [[(d.uid, d.modseq) for d in o] for o in out] == [
        [(1, 2), (1, 2)],
        [(2, 3)],
        [(2, 3), (3, 4)],
    ]
    assert not fell_back(caplog)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and (inbox.uidnext, inbox.highestmodseq) == (4, 4)
    stored = await store.list_messages(inbox.id)
    assert [(m.uid, m.blob, m.queue_id) for m in stored] == [
        (1, refs[0], "A"),
        (2, refs[1], "B"),
        (3, refs[2], "C"),
    ]


async def test_a_batch_wider_than_one_statement_across_mailboxes(
    store: Store, engines: BatchEngines, blob_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More rows than one multi-row statement takes (ROWS_PER_STATEMENT), and blobs,
    into INBOX (named in any case), Junk and Archive of three accounts: every UID dense
    per mailbox, every mailbox's UIDNEXT and HIGHESTMODSEQ right, nothing lost."""
    caplog.set_level(logging.INFO, logger="postel.store")
    accounts = await make_accounts(store, "alice", "bob", "carol")
    boxes = ["INBOX", "inbox", "Junk", "Archive"]
    count = 2 * ROWS_PER_STATEMENT + 7
    refs = [await put_blob(store, message(i)) for i in range(count)]
    requests = [
        [delivery(accounts[i % 3], refs[i], mailbox=boxes[i % 4], queue_id=f"Q{i}")]
        for i in range(count)
    ]
    outcomes = [delivered(o) for o in batch(engines, blob_dir, requests)]
    assert not fell_back(caplog)
    expected: dict[tuple[int, str], list[int]] = {}
    for i, out in enumerate(outcomes):
        key = (int(accounts[i % 3].id), "INBOX" if boxes[i % 4] == "inbox" else boxes[i % 4])
        expected.setdefault(key, []).append(out[0].uid)
    for (account_id, name), uids in expected.items():
        assert uids == list(range(1, len(uids) + 1))
        box = await store.get_mailbox(account_id, name)  # type: ignore[arg-type]
        assert box is not None and box.uidnext == len(uids) + 1
        stored = await store.list_messages(box.id)
        assert [m.uid for m in stored] == uids
        assert box.highestmodseq == max(m.modseq for m in stored)
    assert sum(len(u) for u in expected.values()) == count


async def test_duplicates_within_one_batch_are_stored_once(
    store: Store, engines: BatchEngines, blob_dir: Path
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    ref = await put_blob(store, message(1))
    (first,) = delivered(batch(engines, blob_dir, [[delivery(alice, ref, queue_id="OLD")]])[0])
    requests = [
        [delivery(alice, ref, queue_id="Q"), delivery(alice, ref, queue_id="Q")],
        [delivery(alice, ref, queue_id="Q"), delivery(bob, ref, queue_id="Q")],
        [delivery(alice, ref, queue_id="OLD")],
    ]
    one, two, three = (delivered(o) for o in batch(engines, blob_dir, requests))
    assert [d.duplicate for d in one] == [False, True]
    assert [d.duplicate for d in two] == [True, False]
    assert one[0].uid == one[1].uid == two[0].uid == 2
    assert two[1].uid == 1  # bob's INBOX is another mailbox
    assert three[0].duplicate and (three[0].uid, three[0].modseq) == (first.uid, first.modseq)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and inbox.uidnext == 3
    assert len(await store.list_messages(inbox.id)) == 2


async def test_a_failed_request_leaves_no_trace_for_the_next(
    store: Store, engines: BatchEngines, blob_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postel.store")
    (alice,) = await make_accounts(store, "alice")
    ref = await put_blob(store, message(1))
    requests = [
        [delivery(alice, ref, queue_id="Q"), delivery(ghost(alice), ref)],
        [delivery(alice, ref, mailbox="Nope")],
        [delivery(alice, ref, queue_id="Q")],
    ]
    bad, nope, good = batch(engines, blob_dir, requests)
    assert isinstance(bad, NotFound) and isinstance(nope, NotFound)
    (d,) = delivered(good)
    assert (d.uid, d.duplicate) == (1, False)
    assert not fell_back(caplog)  # failures the plan foresees need no fallback


async def test_database_refusal_falls_back_to_one_savepoint_per_request(
    store: Store, engines: BatchEngines, blob_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postel.store")
    alice, bob = await make_accounts(store, "alice", "bob")
    refs = [await put_blob(store, message(i)) for i in range(3)]
    delivered(batch(engines, blob_dir, [[delivery(bob, refs[0])]])[0])
    # Break bob's INBOX: its next UID is taken, so the database refuses the insert.
    with engines.writer.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.account_id == bob.id, mailboxes.c.name == "INBOX")
            .values(uidnext=1)
        )
    requests = [
        [delivery(alice, refs[1], queue_id="A")],
        [delivery(alice, refs[2]), delivery(bob, refs[2])],
        [delivery(alice, refs[2], queue_id="C")],
    ]
    first, broken, third = batch(engines, blob_dir, requests)
    assert fell_back(caplog)
    assert isinstance(broken, StoreError)
    assert [d.uid for d in delivered(first)] == [1]
    assert [d.uid for d in delivered(third)] == [2]
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and (inbox.uidnext, inbox.highestmodseq) == (3, 3)
    assert [m.queue_id for m in await store.list_messages(inbox.id)] == ["A", "C"]


async def test_one_blob_row_per_key_and_missing_files_refused(
    store: Store, engines: BatchEngines, blob_dir: Path, tmp_path: Path
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    small = await put_blob(store, message(1))
    large = await put_blob(store, b"L" * 200_000)
    assert small.inline is not None and large.inline is None
    requests = [
        [delivery(alice, small), delivery(bob, small)],
        [delivery(alice, large), delivery(bob, small)],
        [delivery(bob, large)],
    ]
    assert all(not isinstance(o, StoreError) for o in batch(engines, blob_dir, requests))
    with engines.reader.connect() as conn:
        assert conn.execute(select(func.count()).select_from(blobs)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 5
    # The file-backed blob row exists now, so its file is not needed for a new batch;
    # a blob that is neither a row nor a file is refused.
    missing = BlobRef(key="cd" * 32, size=10)
    requests = [[delivery(alice, large)], [delivery(bob, missing)]]
    ok, refused = batch(engines, tmp_path / "empty", requests)
    assert delivered(ok)[0].uid == 3
    assert isinstance(refused, NotFound)
