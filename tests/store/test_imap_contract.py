"""The IMAP part of the Store contract, run on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from postel import limits
from postel.clock import FixedClock
from postel.errors import AlreadyExists, NotFound, StoreError
from postel.ids import AccountId, MailboxId
from postel.store import (
    UID_MAX,
    Account,
    FlagMode,
    InvalidFlag,
    InvalidMailboxName,
    Mailbox,
    MailboxRefused,
    SpecialUse,
    Store,
    UidSet,
    open_store,
)

from .conftest import T0
from .test_contract import TRACE, delivery, make_accounts, message, put_blob

SUMMARY = '{"subject": "appended"}'


async def box(store: Store, account: Account, name: str) -> Mailbox:
    got = await store.get_mailbox(account.id, name)
    assert got is not None
    return got


async def fill(store: Store, account: Account, n: int, mailbox: str = "INBOX") -> MailboxId:
    """Deliver ``n`` messages to ``mailbox``; returns its id."""
    refs = [await put_blob(store, message(i)) for i in range(n)]
    out = await store.deliver([delivery(account, r, mailbox=mailbox) for r in refs])
    return out[0].mailbox_id


# -- UidSet --------------------------------------------------------------------------------


def test_uid_set_normalises() -> None:
    s = UidSet.from_ranges([(7, 9), (1, 2), (3, 3), (9, 5), (20, 20)])
    assert s.ranges == ((1, 3), (5, 9), (20, 20))
    assert 3 in s and 7 in s and 20 in s and 4 not in s and 10 not in s and 0 not in s
    assert UidSet.of([5, 3, 4, 10]).ranges == ((3, 5), (10, 10))
    assert not UidSet.of([])
    assert UidSet.all().ranges == ((1, UID_MAX),)
    with pytest.raises(StoreError):
        UidSet.of([0])
    with pytest.raises(StoreError):
        UidSet.of([UID_MAX + 1])


# -- mailboxes -----------------------------------------------------------------------------


async def test_create_mailbox(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    before = max(b.uidvalidity for b in await store.list_mailboxes(alice.id))
    made = await store.create_mailbox(alice.id, "Lists/Ünïcode", SpecialUse.ARCHIVE)
    assert (made.uidnext, made.highestmodseq) == (1, 1)
    assert made.uidvalidity > before
    assert made.special_use is SpecialUse.ARCHIVE and not made.subscribed
    assert await store.get_mailbox(alice.id, "Lists/Ünïcode") == made
    assert await store.get_mailbox_by_id(made.id) == made
    assert await store.get_mailbox(alice.id, "Lists") is None  # no superior created
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice.id, "Lists/Ünïcode")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice.id, "inbox")
    child = await store.create_mailbox(alice.id, "inbox/Child")
    assert child.name == "INBOX/Child"
    assert await store.get_mailbox(alice.id, "Inbox/Child") == child
    bad = [
        "",
        "/a",
        "a/",
        "a//b",
        "a\x00b",
        "a\nb",
        "a\u2028b",
        "a\u2029b",
        "a\x85b",
        "a*",
        "50%",
        "x" * 1025,
        "a/" * 64 + "a",
    ]
    for name in bad:
        with pytest.raises(InvalidMailboxName):
            await store.create_mailbox(alice.id, name)
    with pytest.raises(InvalidMailboxName):
        await store.create_mailbox(alice.id, "\udcff")
    with pytest.raises(NotFound):
        await store.create_mailbox(AccountId(alice.id + 999), "X")
    assert await store.get_mailbox_by_id(MailboxId(made.id + 999)) is None


async def test_delete_mailbox(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    parent = await store.create_mailbox(alice.id, "P")
    await store.create_mailbox(alice.id, "P/child")
    await store.set_subscribed(alice.id, "P", True)
    await fill(store, alice, 3, mailbox="P")
    await store.delete_mailbox(alice.id, "P")
    assert await store.get_mailbox(alice.id, "P") is None
    assert await store.get_mailbox(alice.id, "P/child") is not None
    assert "P" in await store.list_subscriptions(alice.id)
    assert await store.list_messages(parent.id) == []
    with pytest.raises(NotFound):
        await store.mailbox_status(parent.id)
    with pytest.raises(NotFound):
        await store.delete_mailbox(alice.id, "P")
    for inbox in ("INBOX", "inbox"):
        with pytest.raises(MailboxRefused):
            await store.delete_mailbox(alice.id, inbox)
    again = await store.create_mailbox(alice.id, "P")
    assert again.uidvalidity > parent.uidvalidity and again.subscribed


async def test_rename_with_children_keeps_uidvalidity(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    a = await store.create_mailbox(alice.id, "a")
    ab = await store.create_mailbox(alice.id, "a/b")
    abc = await store.create_mailbox(alice.id, "a/b/c")
    other = await store.create_mailbox(alice.id, "ab")
    await fill(store, alice, 2, mailbox="a/b")
    await store.set_subscribed(alice.id, "c/b", True)
    renamed = await store.rename_mailbox(alice.id, "a", "c")
    assert (renamed.id, renamed.name, renamed.uidvalidity) == (a.id, "c", a.uidvalidity)
    cb = await box(store, alice, "c/b")
    assert (cb.id, cb.uidvalidity, cb.uidnext, cb.subscribed) == (ab.id, ab.uidvalidity, 3, True)
    assert (await box(store, alice, "c/b/c")).id == abc.id
    assert await store.get_mailbox(alice.id, "a/b") is None
    assert (await box(store, alice, "ab")).id == other.id  # not an inferior of "a"
    assert [m.uid for m in await store.list_messages(cb.id)] == [1, 2]
    with pytest.raises(NotFound):
        await store.rename_mailbox(alice.id, "a", "d")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(alice.id, "c", "ab")
    await store.create_mailbox(alice.id, "e/b")  # "e" does not exist but "e/b" does
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(alice.id, "c", "e")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(alice.id, "c", "INBOX")
    with pytest.raises(InvalidMailboxName):
        await store.rename_mailbox(alice.id, "c", "c//x")
    assert (await box(store, alice, "c/b")).id == ab.id  # failed renames changed nothing


async def test_rename_inbox_moves_its_messages(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    inbox = await box(store, alice, "INBOX")
    child = await store.create_mailbox(alice.id, "INBOX/kept")
    await fill(store, alice, 3)
    seen = await store.select_mailbox(inbox.id)
    old = await store.rename_mailbox(alice.id, "inbox", "Old Inbox")
    assert old.name == "Old Inbox" and old.id != inbox.id
    assert old.uidvalidity > inbox.uidvalidity and old.uidnext == 4
    assert [m.uid for m in await store.list_messages(old.id)] == [1, 2, 3]
    assert await store.read_message(old.id, 2) == TRACE.replace(
        b"{rcpt}", b"alice@example.org"
    ) + message(1)
    after = await store.select_mailbox(inbox.id)
    assert after.messages == () and after.uidvalidity == inbox.uidvalidity
    assert after.uidnext == 4 and after.highestmodseq > seen.highestmodseq
    changes = await store.changes_since(inbox.id, seen.highestmodseq)
    assert changes.expunged == (1, 2, 3) and changes.changed == ()
    assert (await box(store, alice, "INBOX/kept")).id == child.id
    # New mail still reaches INBOX, with UIDs above the old ones.
    (d,) = await store.deliver([delivery(alice, await put_blob(store, message(9)))])
    assert d.mailbox_id == inbox.id and d.uid == 4
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(alice.id, "INBOX", "Old Inbox")


async def test_subscriptions(store: Store) -> None:
    alice, bob = await make_accounts(store, "alice", "bob")
    defaults = sorted(b.name for b in await store.list_mailboxes(alice.id))
    assert sorted(await store.list_subscriptions(alice.id)) == defaults
    await store.set_subscribed(alice.id, "Not/There", True)
    await store.set_subscribed(alice.id, "Not/There", True)
    await store.set_subscribed(alice.id, "inbox", True)
    await store.set_subscribed(alice.id, "Trash", False)
    await store.set_subscribed(alice.id, "Never", False)  # no-op
    subs = await store.list_subscriptions(alice.id)
    assert "Not/There" in subs and "Trash" not in subs and subs.count("INBOX") == 1
    assert subs == sorted(subs)
    assert not (await box(store, alice, "Trash")).subscribed
    made = await store.create_mailbox(alice.id, "Not/There")
    assert made.subscribed
    assert "Not/There" not in await store.list_subscriptions(bob.id)
    with pytest.raises(InvalidMailboxName):
        await store.set_subscribed(alice.id, "a//b", True)
    with pytest.raises(NotFound):
        await store.set_subscribed(AccountId(alice.id + bob.id + 999), "x", True)


async def test_subscriptions_are_bounded_per_account(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postel.store import names

    alice, bob = await make_accounts(store, "alice", "bob")
    have = len(await store.list_subscriptions(alice.id))
    monkeypatch.setattr(names, "SUBSCRIPTIONS_PER_ACCOUNT_MAX", have + 2)
    await store.set_subscribed(alice.id, "one", True)
    await store.set_subscribed(alice.id, "two", True)
    with pytest.raises(MailboxRefused):
        await store.set_subscribed(alice.id, "three", True)
    await store.set_subscribed(alice.id, "two", True)  # already there: not a new one
    await store.set_subscribed(alice.id, "one", False)  # removing makes room
    await store.set_subscribed(alice.id, "three", True)
    await store.set_subscribed(bob.id, "bobs", True)  # per account
    assert "three" in await store.list_subscriptions(alice.id)
    assert len(await store.list_subscriptions(alice.id)) == have + 2


async def test_mailbox_status(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 4)
    await store.store_flags(mailbox_id, UidSet.of([1, 2]), FlagMode.ADD, frozenset({"\\seen"}))
    await store.store_flags(mailbox_id, UidSet.of([2, 3]), FlagMode.ADD, frozenset({"\\Deleted"}))
    status = await store.mailbox_status(mailbox_id)
    listed = await store.list_messages(mailbox_id)
    sizes = sum(m.size for m in listed)
    assert (status.messages, status.unseen, status.deleted, status.size) == (4, 2, 2, sizes)
    assert status.deleted_size == sum(m.size for m in listed if m.uid in (2, 3))
    assert (status.uidnext, status.highestmodseq) == (5, 7)
    empty = await store.mailbox_status((await box(store, alice, "Sent")).id)
    assert (empty.messages, empty.unseen, empty.deleted, empty.size) == (0, 0, 0, 0)
    assert empty.deleted_size == 0
    await store.expunge(mailbox_id)
    assert (await store.mailbox_status(mailbox_id)).deleted_size == 0


# -- messages ------------------------------------------------------------------------------


async def test_select_and_fetch(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 6)
    snap = await store.select_mailbox(mailbox_id)
    assert (snap.uidnext, snap.highestmodseq) == (7, 7)
    assert snap.messages == tuple((u, frozenset(), u + 1) for u in range(1, 7))
    got = await store.fetch_messages(mailbox_id, UidSet.of([2, 4, 5, 99]))
    assert [m.uid for m in got] == [2, 4, 5]
    prefix = TRACE.replace(b"{rcpt}", b"alice@example.org")
    assert got[0].trace_prefix == prefix and got[0].size == len(prefix) + len(message(1))
    assert [m.uid for m in await store.fetch_messages(mailbox_id, UidSet.of([3]))] == [3]
    assert len(await store.fetch_messages(mailbox_id, UidSet.all())) == 6
    assert await store.fetch_messages(mailbox_id, UidSet.of([])) == []
    with pytest.raises(NotFound):
        await store.select_mailbox(MailboxId(mailbox_id + 999))
    empty = await store.select_mailbox((await box(store, alice, "Junk")).id)
    assert empty.messages == () and empty.uidnext == 1


async def test_store_flags(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 4)
    r = await store.store_flags(
        mailbox_id, UidSet.of([1, 3]), FlagMode.ADD, frozenset({"\\SEEN", "$Work", "\\Recent"})
    )
    assert r.highestmodseq == 6 and r.modified == ()
    assert r.messages == (
        (1, frozenset({"\\Seen", "$Work"}), 6),
        (3, frozenset({"\\Seen", "$Work"}), 6),
    )
    # Adding what is there (keyword in another case) changes nothing, keeps MODSEQ.
    same = await store.store_flags(mailbox_id, UidSet.of([1]), FlagMode.ADD, frozenset({"$work"}))
    assert same.highestmodseq == 6 and same.messages == ((1, frozenset({"\\Seen", "$Work"}), 6),)
    removed = await store.store_flags(
        mailbox_id, UidSet.from_ranges([(1, 4)]), FlagMode.REMOVE, frozenset({"$WORK"})
    )
    assert removed.highestmodseq == 7
    assert removed.messages == (
        (1, frozenset({"\\Seen"}), 7),
        (2, frozenset(), 3),
        (3, frozenset({"\\Seen"}), 7),
        (4, frozenset(), 5),
    )
    replaced = await store.store_flags(
        mailbox_id, UidSet.of([2]), FlagMode.SET, frozenset({"\\Flagged", "\\Answered"})
    )
    assert replaced.messages == ((2, frozenset({"\\Flagged", "\\Answered"}), 8),)
    for bad in ("\\Bogus", "a b", "", "x(", "caf\u00e9", "x" * 300):
        with pytest.raises(InvalidFlag):
            await store.store_flags(mailbox_id, UidSet.of([1]), FlagMode.ADD, frozenset({bad}))
    with pytest.raises(NotFound):
        await store.store_flags(
            MailboxId(mailbox_id + 999), UidSet.all(), FlagMode.ADD, frozenset()
        )
    snap = await store.select_mailbox(mailbox_id)
    assert snap.highestmodseq == 8


async def test_store_unchangedsince(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 3)  # modseqs 2, 3, 4
    r = await store.store_flags(
        mailbox_id, UidSet.all(), FlagMode.ADD, frozenset({"\\Seen"}), unchanged_since=3
    )
    assert r.modified == (3,)
    assert [(u, m) for u, _, m in r.messages] == [(1, 5), (2, 5)]
    (msg3,) = await store.fetch_messages(mailbox_id, UidSet.of([3]))
    assert msg3.flags == frozenset() and msg3.modseq == 4


async def test_expunge(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 6)
    assert await store.expunge(mailbox_id) == []
    assert (await store.select_mailbox(mailbox_id)).highestmodseq == 7
    deleted = frozenset({"\\Deleted"})
    await store.store_flags(mailbox_id, UidSet.of([2, 3, 5]), FlagMode.ADD, deleted)  # 8
    assert await store.expunge(mailbox_id, UidSet.of([3, 4, 5])) == [3, 5]  # 9
    snap = await store.select_mailbox(mailbox_id)
    assert [u for u, _, _ in snap.messages] == [1, 2, 4, 6] and snap.highestmodseq == 9
    assert await store.expunge(mailbox_id) == [2]  # 10
    assert await store.expunge(mailbox_id, UidSet.of([])) == []
    changes = await store.changes_since(mailbox_id, 7)
    assert changes.expunged == (2, 3, 5) and changes.highestmodseq == 10
    assert (await store.changes_since(mailbox_id, 9)).expunged == (2,)
    # UIDs are never reused after an expunge.
    (d,) = await store.deliver([delivery(alice, await put_blob(store, message(7)))])
    assert d.uid == 7 and d.modseq == 11


async def test_append(store: Store, database_url: str, blob_dir: Path, clock: FixedClock) -> None:
    (alice,) = await make_accounts(store, "alice")
    drafts = await box(store, alice, "Drafts")
    small = message(1)
    large = message(2, size=limits.BLOB_INLINE_MAX + 100)
    when = T0.replace(year=2020)
    a1 = await store.append(
        drafts.id,
        await put_blob(store, small),
        internal_date=when,
        summary=SUMMARY,
        flags=frozenset({"\\draft", "\\Recent"}),
    )
    a2 = await store.append(
        drafts.id, await put_blob(store, large), internal_date=when, summary=SUMMARY
    )
    assert (a1.uid, a1.modseq, a2.uid, a2.modseq) == (1, 2, 2, 3)
    assert a1.uidvalidity == drafts.uidvalidity and a1.mailbox_id == drafts.id
    first, second = await store.list_messages(drafts.id)
    assert first.flags == frozenset({"\\Draft"}) and first.internal_date == when
    assert first.size == len(small) and first.trace_prefix == b"" and first.summary == SUMMARY
    assert second.queue_id is None
    # Durable and visible to another store on the same database.
    other = open_store(database_url, blob_dir, clock=clock)
    await other.open(recovery=False)
    try:
        assert await other.read_message(drafts.id, 1) == small
        assert await other.read_message(drafts.id, 2) == large
    finally:
        await other.close()
    with pytest.raises(NotFound):
        await store.append(
            MailboxId(drafts.id + 999),
            await put_blob(store, small),
            internal_date=when,
            summary=SUMMARY,
        )
    from postel.store import BlobRef

    with pytest.raises(NotFound):
        await store.append(
            drafts.id, BlobRef("ab" * 32, 200_000), internal_date=when, summary=SUMMARY
        )
    with pytest.raises(InvalidFlag):
        await store.append(
            drafts.id,
            await put_blob(store, small),
            internal_date=when,
            summary=SUMMARY,
            flags=frozenset({"\\Nope"}),
        )
    assert (await store.select_mailbox(drafts.id)).uidnext == 3


async def test_copy_and_move(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    inbox_id = await fill(store, alice, 5)  # modseq 6
    archive = await box(store, alice, "Archive")
    await fill(store, alice, 2, mailbox="Archive")  # archive UIDs 1, 2; modseq 3
    await store.store_flags(inbox_id, UidSet.of([4]), FlagMode.ADD, frozenset({"$Keep"}))  # 7
    copied = await store.copy_messages(inbox_id, UidSet.of([4, 2, 99]), archive.id)
    assert copied.uidvalidity == archive.uidvalidity
    assert copied.pairs == ((2, 3), (4, 4)) and copied.modseq == 4
    got = {m.uid: m for m in await store.list_messages(archive.id)}
    src = {m.uid: m for m in await store.list_messages(inbox_id)}
    assert got[4].flags == frozenset({"$Keep"}) and got[4].blob == src[4].blob
    assert got[4].trace_prefix == src[4].trace_prefix and got[4].queue_id is None
    assert await store.read_message(archive.id, 3) == await store.read_message(inbox_id, 2)
    moved = await store.move_messages(inbox_id, UidSet.from_ranges([(1, 1), (3, 5)]), archive.id)
    assert moved.pairs == ((1, 5), (3, 6), (4, 7), (5, 8))
    assert moved.modseq == 5 and moved.source_modseq == 8
    assert [u for u, _, _ in (await store.select_mailbox(inbox_id)).messages] == [2]
    assert (await store.changes_since(inbox_id, 7)).expunged == (1, 3, 4, 5)
    nothing = await store.move_messages(inbox_id, UidSet.of([77]), archive.id)
    assert nothing.pairs == () and nothing.source_modseq == 8
    # COPY and MOVE within one mailbox.
    again = await store.copy_messages(archive.id, UidSet.all(), archive.id)
    assert [p[1] for p in again.pairs] == list(range(9, 17))
    inside = await store.move_messages(inbox_id, UidSet.of([2]), inbox_id)
    assert inside.pairs == ((2, 6),) and inside.source_modseq == 10
    with pytest.raises(NotFound):
        await store.copy_messages(inbox_id, UidSet.all(), MailboxId(archive.id + 999))


async def test_changes_since_is_exact(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    mailbox_id = await fill(store, alice, 3)  # 2, 3, 4
    base = (await store.select_mailbox(mailbox_id)).highestmodseq
    assert base == 4
    nothing = await store.changes_since(mailbox_id, base)
    assert (nothing.changed, nothing.expunged, nothing.uidnext) == ((), (), 4)
    await store.store_flags(mailbox_id, UidSet.of([1]), FlagMode.ADD, frozenset({"\\Deleted"}))
    await store.expunge(mailbox_id)
    await fill(store, alice, 1)  # UID 4
    await store.store_flags(mailbox_id, UidSet.of([2]), FlagMode.ADD, frozenset({"\\Seen"}))
    changes = await store.changes_since(mailbox_id, base)
    assert changes.expunged == (1,)
    assert changes.changed == ((2, frozenset({"\\Seen"}), 8), (4, frozenset(), 7))
    assert changes.highestmodseq == 8 and changes.uidnext == 5
    everything = await store.changes_since(mailbox_id, 0)
    assert [u for u, _, _ in everything.changed] == [2, 3, 4]
    with pytest.raises(NotFound):
        await store.changes_since(MailboxId(mailbox_id + 999), 0)


# -- change signals ------------------------------------------------------------------------


async def test_change_hub_wakes_sessions(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    inbox = await box(store, alice, "INBOX")
    junk = await box(store, alice, "Junk")
    async with store.changes.subscribe(inbox.id) as sub, store.changes.subscribe(junk.id) as other:
        assert not await sub.wait(0.01)
        await fill(store, alice, 2)
        assert await sub.wait(1.0) and sub.highestmodseq == 3
        assert not await sub.wait(0.01)  # coalesced: one signal for one commit
        await store.store_flags(inbox.id, UidSet.of([1]), FlagMode.ADD, frozenset({"\\Seen"}))
        await store.store_flags(inbox.id, UidSet.of([2]), FlagMode.ADD, frozenset({"\\Seen"}))
        assert sub.pending and await sub.wait(0) and sub.highestmodseq == 5
        await store.store_flags(inbox.id, UidSet.of([1]), FlagMode.ADD, frozenset({"\\Seen"}))
        assert not sub.pending  # nothing changed, nothing published
        await store.store_flags(inbox.id, UidSet.of([1]), FlagMode.ADD, frozenset({"\\Deleted"}))
        await sub.wait(0)
        await store.expunge(inbox.id)
        assert await sub.wait(0) and sub.highestmodseq == 7
        await store.move_messages(inbox.id, UidSet.all(), junk.id)
        assert await sub.wait(0) and await other.wait(0)
        waiter = asyncio.create_task(sub.wait(5.0))
        await asyncio.sleep(0)
        await store.append(
            inbox.id, await put_blob(store, message(5)), internal_date=T0, summary=SUMMARY
        )
        assert await waiter
        assert store.changes.subscriber_count(inbox.id) == 1
    assert store.changes.subscriber_count(inbox.id) == 0


# -- concurrency ---------------------------------------------------------------------------


async def test_concurrent_writers_keep_uids_and_modseqs_monotonic(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    inbox = await box(store, alice, "INBOX")
    archive = await box(store, alice, "Archive")
    refs = [await put_blob(store, message(i)) for i in range(8)]
    rng = random.Random(7)
    seen_modseqs: list[int] = []

    async def deliverer(n: int) -> list[int]:
        uids = []
        for i in range(n):
            (d,) = await store.deliver([delivery(alice, refs[i % len(refs)])])
            uids.append(d.uid)
        return uids

    async def flagger() -> None:
        for _ in range(15):
            flag = rng.choice(["\\Seen", "\\Deleted", "$A"])
            mode = rng.choice(list(FlagMode))
            r = await store.store_flags(inbox.id, UidSet.all(), mode, frozenset({flag}))
            seen_modseqs.append(r.highestmodseq)
            await asyncio.sleep(0)

    async def expunger() -> None:
        for _ in range(10):
            await store.expunge(inbox.id)
            await store.move_messages(inbox.id, UidSet.of([rng.randint(1, 40)]), archive.id)
            await asyncio.sleep(0)

    results = await asyncio.gather(deliverer(20), deliverer(20), flagger(), expunger())
    uids = results[0] + results[1]
    assert sorted(uids) == list(range(1, 41))
    assert results[0] == sorted(results[0]) and results[1] == sorted(results[1])
    assert seen_modseqs == sorted(seen_modseqs)
    snap = await store.select_mailbox(inbox.id)
    assert snap.uidnext == 41
    assert all(m <= snap.highestmodseq for _, _, m in snap.messages)
    gone = (await store.changes_since(inbox.id, 0)).expunged
    present = {u for u, _, _ in snap.messages}
    assert present.isdisjoint(gone) and present | set(gone) == set(range(1, 41))
    archived = await store.select_mailbox(archive.id)
    assert [u for u, _, _ in archived.messages] == list(range(1, archived.uidnext))


# -- migration -----------------------------------------------------------------------------


def test_revision_0002_copies_subscriptions(database_url: str) -> None:
    from sqlalchemy import create_engine, text

    from postel.store.migrate import upgrade

    engine = create_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO domains (id, name, created) VALUES (1, 'e.org', :t)"),
                {"t": T0.replace(tzinfo=None)},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (id, domain_id, address, address_key, password_hash,"
                    " scram_salt, scram_iterations, scram_stored_key, scram_server_key,"
                    " is_admin, created) VALUES (1, 1, 'a@e.org', 'a@e.org', 'h', :b, 1, :b,"
                    " :b, false, :t)"
                ),
                {"b": b"x", "t": T0.replace(tzinfo=None)},
            )
            for i, (name, sub) in enumerate([("INBOX", True), ("Old", False), ("Kept", True)]):
                conn.execute(
                    text(
                        "INSERT INTO mailboxes (id, account_id, name, uidvalidity, uidnext,"
                        " highestmodseq, subscribed) VALUES (:i, 1, :n, :i, 1, 1, :s)"
                    ),
                    {"i": i + 1, "n": name, "s": sub},
                )
        upgrade(engine)
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM subscriptions ORDER BY name")).scalars()
            assert list(names) == ["INBOX", "Kept"]
    finally:
        engine.dispose()


async def test_append_many_is_all_or_nothing(store: Store) -> None:
    from postel.store import AppendItem
    from postel.store.api import InvalidFlag

    (alice,) = await make_accounts(store, "alice")
    drafts = await box(store, alice, "Drafts")
    refs = [await put_blob(store, message(i)) for i in range(3)]
    good = [AppendItem(drafts.id, ref, T0, SUMMARY) for ref in refs]
    done = await store.append_many(good)
    assert [a.uid for a in done] == [1, 2, 3]
    assert [a.modseq for a in done] == [2, 3, 4]
    bad = [*good[:2], AppendItem(drafts.id, refs[2], T0, SUMMARY, frozenset({"\\Bogus"}))]
    with pytest.raises(InvalidFlag):
        await store.append_many(bad)
    assert [m.uid for m in await store.list_messages(drafts.id)] == [1, 2, 3]
    status = await store.mailbox_status(drafts.id)
    assert (status.messages, status.uidnext) == (3, 4)


async def test_pop3_delete_sizes_and_maildrop_lease(store: Store, clock: FixedClock) -> None:
    (alice,) = await make_accounts(store, "alice")
    inbox = await box(store, alice, "INBOX")
    refs = [await put_blob(store, message(i)) for i in range(3)]
    for ref in refs:
        await store.deliver([delivery(alice, ref)])
    sizes = await store.message_sizes(inbox.id)
    assert [uid for uid, _ in sizes] == [1, 2, 3]
    assert all(size > 0 for _, size in sizes)
    # Deleting needs no \Deleted flag; unknown UIDs are ignored; expunges are recorded.
    assert await store.delete_messages(inbox.id, UidSet.of([1, 3, 9])) == [1, 3]
    assert [uid for uid, _ in await store.message_sizes(inbox.id)] == [2]
    assert (await store.changes_since(inbox.id, 0)).expunged == (1, 3)
    # One holder at a time; the same holder renews; a lapsed lease can be taken over.
    assert await store.acquire_maildrop(alice.id, "node-a:1", 60)
    assert not await store.acquire_maildrop(alice.id, "node-b:7", 60)
    assert await store.acquire_maildrop(alice.id, "node-a:1", 60)
    await store.release_maildrop(alice.id, "node-b:7")  # not the holder: no effect
    assert not await store.acquire_maildrop(alice.id, "node-b:7", 60)
    await store.release_maildrop(alice.id, "node-a:1")
    assert await store.acquire_maildrop(alice.id, "node-b:7", 0.0)
    assert await store.acquire_maildrop(alice.id, "node-a:1", 60)  # the lease of 0 s lapsed
