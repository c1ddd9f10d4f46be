"""fetch_messages of one UID (a point read on SQLite's own connection) and of one UID
range (SQLite's cursor) answer exactly as the general query (several ranges) does, on
every backend."""

from __future__ import annotations

import datetime as dt

from postel.store import Store
from postel.store.api import FlagMode, UidSet

from .test_contract import delivery, make_accounts, message, put_blob


async def test_one_uid_equals_the_general_fetch(store: Store) -> None:
    (alice,) = await make_accounts(store, "alice")
    for n in range(3):
        await store.deliver([delivery(alice, await put_blob(store, message(n, 300 + n)))])
    box = await store.get_mailbox(alice.id, "INBOX")
    assert box is not None
    await store.store_flags(box.id, UidSet.of([2]), FlagMode.ADD, frozenset({"\\Seen", "$X"}))
    every = await store.fetch_messages(box.id, UidSet.all())
    general = await store.fetch_messages(box.id, UidSet.of([1, 3]))  # two ranges
    assert [m.uid for m in general] == [1, 3]
    assert general == [every[0], every[2]]
    assert len(every) == 3
    for m in every:
        (one,) = await store.fetch_messages(box.id, UidSet.of([m.uid]))
        assert one == m
        assert one.internal_date.tzinfo is not None
        assert one.save_date is None or one.save_date.utcoffset() == dt.timedelta(0)
    assert await store.fetch_messages(box.id, UidSet.of([99])) == []
