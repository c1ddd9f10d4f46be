"""SELECT snapshots reused while the mailbox is unchanged and brought up to date from
the changes since otherwise: after every kind of change the next select_mailbox equals
a whole read (on every backend), and the cache keeps its bound."""

from __future__ import annotations

from postel.ids import MailboxId
from postel.store import SqlStore, Store
from postel.store import message_ops as xq
from postel.store.api import FlagMode, MailboxSnapshot, UidSet
from postel.store.snapshot_cache import SnapshotCache

from .test_contract import delivery, make_accounts, message, put_blob


def snapshot(mailbox: int, count: int, modseq: int = 1) -> MailboxSnapshot:
    states = tuple((uid, frozenset(), modseq) for uid in range(1, count + 1))
    return MailboxSnapshot(MailboxId(mailbox), 7, count + 1, modseq, states)


def test_cache_keeps_its_bound_least_recently_used_first() -> None:
    cache = SnapshotCache(max_messages=25)
    a = snapshot(1, 10)
    cache.put(a)
    assert cache.get(MailboxId(1)) is a
    assert cache.get(MailboxId(2)) is None
    cache.put(snapshot(2, 10))
    cache.get(MailboxId(1))  # 1 is now the most recently used
    cache.put(snapshot(3, 10))  # 33 > 25: the least recently used (2) goes
    assert len(cache) == 2
    assert cache.get(MailboxId(2)) is None
    assert cache.get(MailboxId(1)) is a
    cache.put(snapshot(4, 100))  # larger than the whole bound: not kept
    assert cache.get(MailboxId(4)) is None
    newer = snapshot(1, 11, modseq=2)
    cache.put(newer)  # a newer one replaces the older
    assert cache.get(MailboxId(1)) is newer


async def test_every_change_is_seen_by_the_next_select(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    for n in range(3):
        await store.deliver([delivery(alice, await put_blob(store, message(n)))])
    box = await store.get_mailbox(alice.id, "INBOX")
    assert box is not None

    async def fresh() -> MailboxSnapshot:
        got = await store.select_mailbox(box.id)  # from the cache, brought up to date
        again = await store.select_mailbox(box.id)  # the cache at this version
        assert again == got
        if isinstance(store, SqlStore):
            whole = await store._read(xq.select_mailbox, box.id)
            assert got == whole
        return got

    first = await fresh()
    assert [uid for uid, _, _ in first.messages] == [1, 2, 3]
    await store.store_flags(box.id, UidSet.of([2]), FlagMode.ADD, frozenset({"\\Deleted", "$Work"}))
    flagged = await fresh()
    assert flagged.messages[1][1] == frozenset({"\\Deleted", "$Work"})
    assert "$Work" in flagged.flags_in_use
    await store.expunge(box.id)
    assert [uid for uid, _, _ in (await fresh()).messages] == [1, 3]
    await store.deliver([delivery(alice, await put_blob(store, message(9)))])
    assert [uid for uid, _, _ in (await fresh()).messages] == [1, 3, 4]
    await store.claim_recent(box.id, 4)
    assert (await fresh()).recent_uid == 4
    other = await store.create_mailbox(alice.id, "Other")
    await store.move_messages(box.id, UidSet.of([1]), other.id)
    assert [uid for uid, _, _ in (await fresh()).messages] == [3, 4]
    assert [uid for uid, _, _ in (await store.select_mailbox(other.id)).messages] == [1]
    await store.store_flags(box.id, UidSet.of([3]), FlagMode.REMOVE, frozenset({"$Work"}))
    await store.store_flags(box.id, UidSet.of([4]), FlagMode.SET, frozenset({"\\Seen"}))
    assert (await fresh()).flags_in_use == frozenset({"\\Seen"})
    many = [delivery(alice, await put_blob(store, message(100 + n))) for n in range(70)]
    await store.deliver(many)  # 70 added at once
    added = await fresh()
    assert len(added.messages) == 72
    await store.store_flags(box.id, UidSet.all(), FlagMode.ADD, frozenset({"\\Deleted"}))
    await fresh()
    await store.store_flags(box.id, UidSet.of([4]), FlagMode.REMOVE, frozenset({"\\Deleted"}))
    await store.expunge(box.id)  # 71 removed: the whole-filter path
    assert [uid for uid, _, _ in (await fresh()).messages] == [4]
