"""Quotas (RFC 9208 STORAGE and MESSAGE) in the store, on both backends: limits exact at
the boundary, one caller of a delivery batch refused alone with nothing stored,
unlimited accounts untouched, APPEND, COPY and MOVE refused inside their transaction,
usage always equal to a recount."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from postel.errors import NotFound, StoreError
from postel.ids import AccountId, MailboxId
from postel.store import (
    Account,
    AppendItem,
    Delivery,
    OverQuota,
    QuotaResource,
    QuotaUsage,
    Store,
    UidSet,
    exceeded,
    storage_octets,
    storage_units,
)
from postel.store.blobs import BlobFiles
from postel.store.delivery_batch import DeliveryStatements, Outcome, run_batch
from postel.store.delivery_sqlite import SqliteBatchIO
from postel.store.engines import Engines, make_engines
from postel.store.quota_ops import USAGE_SQL

from .conftest import T0, credentials
from .test_contract import delivery, make_accounts, message, put_blob

SUMMARY = '{"subject": "x"}'


def size_of(d: Delivery) -> int:
    """RFC822.SIZE of the stored delivery."""
    return len(d.trace_prefix) + d.blob.size


async def recount(store: Store, account: Account) -> tuple[int, int]:
    """``(octets, messages)`` over every mailbox, from the messages themselves."""
    octets = count = 0
    for box in await store.list_mailboxes(account.id):
        for m in await store.list_messages(box.id):
            octets += m.size
            count += 1
    return octets, count


async def inbox_id(store: Store, account: Account, name: str = "INBOX") -> MailboxId:
    box = await store.get_mailbox(account.id, name)
    assert box is not None
    return box.id


# -- pure rules ----------------------------------------------------------------------------


def test_exceeded_is_exact_and_only_for_growth() -> None:
    usage = QuotaUsage(AccountId(1), 900, 1000, 9, 10)
    assert exceeded(usage, octets=100, messages=1) is None  # exactly at both limits
    assert exceeded(usage, octets=101, messages=1) is QuotaResource.STORAGE
    assert exceeded(usage, octets=1, messages=2) is QuotaResource.MESSAGE
    over = QuotaUsage(AccountId(1), 2000, 1000, 20, 10)  # a limit lowered below usage
    assert exceeded(over, octets=0, messages=0) is None  # MOVE within the account
    assert exceeded(over, octets=-5, messages=-1) is None  # EXPUNGE
    assert over.full and not usage.full
    assert not QuotaUsage(AccountId(1), 10**12, None, 10**6, None).full
    assert storage_units(0) == 0 and storage_units(1) == 1 and storage_units(2048) == 2
    assert storage_octets(3) == 3072


# -- limits --------------------------------------------------------------------------------


async def test_limits_are_set_read_and_checked(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    assert (alice.storage_limit, alice.message_limit) == (None, None)
    assert await store.quota_usage(alice.id) == QuotaUsage(alice.id, 0, None, 0, None)
    assert await store.quota_usages([alice.id], limited_only=True) == {}
    usage = await store.set_quota(alice.id, 5000, 3)
    assert usage == QuotaUsage(alice.id, 0, 5000, 0, 3)
    again = await store.get_account(alice.address)
    assert again is not None and (again.storage_limit, again.message_limit) == (5000, 3)
    assert await store.quota_usages([alice.id], limited_only=True) == {alice.id: usage}
    for bad in ((-1, None), (None, -1), (2**63, None)):
        with pytest.raises(StoreError):
            await store.set_quota(alice.id, *bad)
    with pytest.raises(NotFound):
        await store.set_quota(AccountId(alice.id + 1000), 1, 1)
    with pytest.raises(NotFound):
        await store.quota_usage(AccountId(alice.id + 1000))
    bob = await store.add_account(
        "bob@example.org", credentials("b"), storage_limit=10, message_limit=None
    )
    assert (bob.storage_limit, bob.message_limit) == (10, None)
    assert set(await store.quota_usages()) == {alice.id, bob.id}
    assert await store.quota_usages([]) == {}


# -- delivery ------------------------------------------------------------------------------


async def test_delivery_storage_limit_is_exact(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    refs = [await put_blob(store, message(i, size=400)) for i in range(3)]
    ds = [delivery(alice, r, queue_id=f"Q{i}") for i, r in enumerate(refs)]
    await store.set_quota(alice.id, size_of(ds[0]) + size_of(ds[1]), None)
    await store.deliver([ds[0]])
    await store.deliver([ds[1]])  # exactly at the limit
    with pytest.raises(OverQuota) as caught:
        await store.deliver([ds[2]])
    assert caught.value.account_id == alice.id
    assert caught.value.resource is QuotaResource.STORAGE
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and (inbox.uidnext, inbox.highestmodseq) == (3, 3)
    assert await recount(store, alice) == (size_of(ds[0]) + size_of(ds[1]), 2)
    usage = await store.quota_usage(alice.id)
    assert usage.full and usage.storage_used == usage.storage_limit
    # A replay of a stored delivery stores nothing and is not refused.
    (dup,) = await store.deliver([ds[1]])
    assert dup.duplicate


async def test_delivery_message_limit_is_exact(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    await store.set_quota(alice.id, None, 3)
    refs = [await put_blob(store, message(i)) for i in range(4)]
    await store.deliver([delivery(alice, refs[0]), delivery(alice, refs[1], mailbox="Archive")])
    await store.deliver([delivery(alice, refs[2], mailbox="Junk")])
    with pytest.raises(OverQuota) as caught:
        await store.deliver([delivery(alice, refs[3])])
    assert caught.value.resource is QuotaResource.MESSAGE
    assert (await store.quota_usage(alice.id)).messages_used == 3
    await store.set_quota(alice.id, None, None)
    await store.deliver([delivery(alice, refs[3])])
    assert (await recount(store, alice))[1] == 4


async def test_a_caller_over_quota_fails_alone_and_stores_nothing(store: Store) -> None:
    alice, bob, carol = await make_accounts(store, "alice", "bob", "carol")
    ref = await put_blob(store, message(1, size=2000))
    small = await put_blob(store, message(2, size=100))
    await store.set_quota(alice.id, size_of(delivery(alice, ref)) + 10, None)
    # Concurrent callers share one group commit; alice can take only one large copy.
    calls = [
        store.deliver([delivery(alice, ref, queue_id="A1")]),
        store.deliver([delivery(bob, ref, queue_id="B"), delivery(alice, ref, queue_id="A2")]),
        store.deliver(
            [delivery(carol, small, queue_id="C"), delivery(alice, small, queue_id="A3")]
        ),
    ]
    first, both, third = await asyncio.gather(*calls, return_exceptions=True)
    assert not isinstance(first, BaseException)
    assert isinstance(both, OverQuota) and both.account_id == alice.id
    assert isinstance(third, OverQuota)  # 10 octets left, the small one is larger
    assert await recount(store, bob) == (0, 0)  # nothing of the refused caller
    assert await recount(store, carol) == (0, 0)
    assert (await recount(store, alice))[1] == 1
    box = await store.get_mailbox(bob.id, "INBOX")
    assert box is not None and box.uidnext == 1


async def test_unlimited_accounts_are_not_limited(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    await store.set_quota(bob.id, 0, 0)  # a limit of zero allows nothing
    refs = [await put_blob(store, message(i, size=3000)) for i in range(20)]
    await store.deliver([delivery(alice, r) for r in refs])
    assert (await store.quota_usage(alice.id)).messages_used == 20
    with pytest.raises(OverQuota):
        await store.deliver([delivery(bob, refs[0])])
    assert await store.quota_usages([alice.id, bob.id], limited_only=True) == {
        bob.id: QuotaUsage(bob.id, 0, 0, 0, 0)
    }


# -- the batch directly (fast path and per-request path) ------------------------------------


@pytest.fixture(params=["alchemy", "driver"])
def engines(
    store: Store, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Engines, bool]]:
    """The store's engines, and whether the fast path runs on the sqlite3 cursor."""
    made = make_engines(database_url)
    if request.param == "driver" and made.dialect != "sqlite":
        pytest.skip("the driver-cursor fast path is SQLite's")
    try:
        yield made, request.param == "driver"
    finally:
        made.writer.dispose()
        made.reader.dispose()


def run(
    engines: tuple[Engines, bool], blob_dir: Path, requests: Sequence[Sequence[Delivery]]
) -> list[Outcome]:
    made, driver = engines
    with made.writer.begin() as conn:
        io = None
        if driver:
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            io = SqliteBatchIO(raw)
        stmts = DeliveryStatements.for_dialect(made.dialect)
        return run_batch(conn, stmts, BlobFiles(blob_dir), requests, io)


@pytest.mark.parametrize("broken", [False, True], ids=["fast", "per-request"])
async def test_one_batch_admits_callers_in_order(
    store: Store, engines: tuple[Engines, bool], blob_dir: Path, broken: bool
) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    refs = [await put_blob(store, message(i, size=500)) for i in range(5)]
    one = size_of(delivery(alice, refs[0]))
    await store.set_quota(alice.id, 2 * one, None)
    if broken:  # bob's next UID is taken: the fast path fails, every request runs alone
        await store.deliver([delivery(bob, refs[4])])
        with engines[0].writer.begin() as conn:
            conn.execute(
                text("UPDATE mailboxes SET uidnext = 1 WHERE account_id = :a"), {"a": bob.id}
            )
    requests = [
        [delivery(alice, refs[0], queue_id="A")],
        [delivery(alice, refs[1], queue_id="B"), delivery(alice, refs[2], queue_id="C")],
        [delivery(alice, refs[1], queue_id="B2")],
        [delivery(alice, refs[3], queue_id="A")],  # a duplicate of the first: free
        [delivery(alice, refs[3], queue_id="D")],
    ]
    if broken:
        requests.append([delivery(bob, refs[4], queue_id="X")])
    out = run(engines, blob_dir, requests)
    assert not isinstance(out[0], StoreError)
    assert isinstance(out[1], OverQuota)  # two more would make three
    assert not isinstance(out[2], StoreError)  # the second fits exactly
    assert not isinstance(out[3], StoreError) and out[3][0].duplicate
    assert isinstance(out[4], OverQuota)
    if broken:
        assert isinstance(out[5], StoreError) and not isinstance(out[5], OverQuota)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None and inbox.uidnext == 3
    assert [m.queue_id for m in await store.list_messages(inbox.id)] == ["A", "B2"]
    assert await store.quota_usage(alice.id) == QuotaUsage(alice.id, 2 * one, 2 * one, 2, None)


# -- APPEND, COPY, MOVE ------------------------------------------------------------------------


async def test_append_is_refused_over_quota(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    drafts = await inbox_id(store, alice, "Drafts")
    a, b = message(1, size=700), message(2, size=700)
    await store.set_quota(alice.id, len(a) + len(b), 5)
    ref_a = await put_blob(store, a)
    await store.append(drafts, ref_a, internal_date=T0, summary=SUMMARY)
    ref_b = await put_blob(store, b + b"x")
    with pytest.raises(OverQuota) as caught:
        await store.append(drafts, ref_b, internal_date=T0, summary=SUMMARY)
    assert caught.value.resource is QuotaResource.STORAGE
    ref_b = await put_blob(store, b)
    await store.append(drafts, ref_b, internal_date=T0, summary=SUMMARY)
    assert await recount(store, alice) == (len(a) + len(b), 2)
    # MULTIAPPEND: all or nothing, counted within its own transaction.
    await store.set_quota(alice.id, None, 4)
    items = [AppendItem(drafts, await put_blob(store, message(i)), T0, SUMMARY) for i in range(3)]
    with pytest.raises(OverQuota):
        await store.append_many(items)
    assert (await recount(store, alice))[1] == 2
    await store.append_many(items[:2])
    assert (await recount(store, alice))[1] == 4


async def test_copy_and_move_are_refused_exactly(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    refs = [await put_blob(store, message(i, size=300)) for i in range(3)]
    done = await store.deliver([delivery(alice, r) for r in refs])
    inbox, archive = done[0].mailbox_id, await inbox_id(store, alice, "Archive")
    used, count = await recount(store, alice)
    await store.set_quota(alice.id, None, count + 2)
    with pytest.raises(OverQuota):
        await store.copy_messages(inbox, UidSet.all(), archive)
    assert (await recount(store, alice))[1] == 3
    copied = await store.copy_messages(inbox, UidSet.of([1, 2]), archive)
    assert len(copied.pairs) == 2
    # At the limit: a MOVE within the account changes nothing and is allowed.
    moved = await store.move_messages(inbox, UidSet.of([3]), archive)
    assert len(moved.pairs) == 1
    await store.set_quota(alice.id, None, 1)  # lowered below the usage: nothing removed
    await store.move_messages(archive, UidSet.all(), inbox)
    assert (await recount(store, alice))[1] == 5
    # Between accounts the target's limit counts (the IMAP layer never does this).
    bob_inbox = await inbox_id(store, bob)
    await store.set_quota(bob.id, used // 3 * 2, None)
    with pytest.raises(OverQuota):
        await store.move_messages(inbox, UidSet.all(), bob_inbox)
    assert (await recount(store, alice))[1] == 5 and await recount(store, bob) == (0, 0)
    # Removing messages is always allowed.
    await store.delete_messages(inbox, UidSet.all())
    assert (await recount(store, alice))[1] == 0


# -- usage is a recount ------------------------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "append", "copy", "move", "delete", "limit"]),
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=50, max_value=3000),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPERATIONS)
async def test_usage_equals_a_recount_after_any_operations(
    store: Store, ops: list[tuple[str, int, int]]
) -> None:
    domain = f"d{uuid.uuid4().hex[:12]}.example"
    await store.add_domain(domain)
    alice = await store.add_account(f"alice@{domain}", credentials("a"))
    boxes = [await inbox_id(store, alice, n) for n in ("INBOX", "Archive", "Junk")]
    for n, (op, k, size) in enumerate(ops):
        box, other = boxes[k % 3], boxes[(k + 1) % 3]
        before = await store.quota_usage(alice.id)
        try:
            if op == "deliver":
                ref = await put_blob(store, message(n, size=size))
                await store.deliver(
                    [delivery(alice, ref, mailbox=("INBOX", "Archive", "Junk")[k % 3])]
                )
            elif op == "append":
                ref = await put_blob(store, message(n, size=size))
                await store.append(box, ref, internal_date=T0, summary=SUMMARY)
            elif op == "copy":
                await store.copy_messages(box, UidSet.all(), other)
            elif op == "move":
                await store.move_messages(box, UidSet.all(), other)
            elif op == "delete":
                await store.delete_messages(box, UidSet.of([1, 2, 3, k + 1]))
            else:
                limit = before.storage_used + size if k % 2 else None
                await store.set_quota(alice.id, limit, before.messages_used + k if k > 2 else None)
        except OverQuota:
            assert await store.quota_usage(alice.id) == before  # nothing partial
        usage = await store.quota_usage(alice.id)
        assert (usage.storage_used, usage.messages_used) == await recount(store, alice)
        if usage.storage_limit is not None and op != "limit":
            assert usage.storage_used <= max(usage.storage_limit, before.storage_used)
        if usage.messages_limit is not None and op != "limit":
            assert usage.messages_used <= max(usage.messages_limit, before.messages_used)


# -- the usage statement uses the covering index --------------------------------------------


async def test_usage_is_read_from_the_covering_index(store: Store, database_url: str) -> None:
    (alice,) = await make_accounts(store, "alice")
    engines = make_engines(database_url)
    try:
        with engines.writer.connect() as conn:
            if engines.dialect == "sqlite":
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + USAGE_SQL.format(marks="?"), (int(alice.id),)
                ).all()
                details = " ".join(str(row[-1]) for row in plan)
                assert "COVERING INDEX ix_messages_mailbox_id_size" in details
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = conn.exec_driver_sql(
                    "EXPLAIN " + USAGE_SQL.format(marks="%s"), (int(alice.id),)
                ).all()
                details = " ".join(str(row[0]) for row in plan)
                assert "Index Only Scan using ix_messages_mailbox_id_size" in details
    finally:
        engines.writer.dispose()
        engines.reader.dispose()
