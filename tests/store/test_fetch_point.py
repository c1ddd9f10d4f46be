"""fetch_messages of one UID (a point read on SQLite's own connection) and of one UID
range (SQLite's cursor) answer exactly as the general query (several ranges) does, on
every backend."""

from __future__ import annotations

import datetime as dt

from postel.mail import parse_message
from postel.mail.summary import imap_envelope
from postel.store import Store
from postel.store.api import FlagMode, MessageAttributes, UidSet

from .conftest import T0
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


async def test_fetch_attributes_equal_fetch_messages(store: Store) -> None:
    """fetch_attributes (one range on SQLite: a cursor read with the summary cut after
    its ENVELOPE) gives the attributes of fetch_messages, and a summary head from which
    imap_envelope reads the same ENVELOPE as from the whole summary; a summary without
    a pre-rendered ENVELOPE reads as none."""
    (alice,) = await make_accounts(store, "alice")
    box = await store.get_mailbox(alice.id, "INBOX")
    assert box is not None
    tricky = [
        b'Subject: ","size": in the subject\r\nFrom: "a\\",\\"size\\":" <a@b.c>\r\n\r\nx\r\n',
        b"Subject: plain\r\n\r\nbody\r\n",
        b"Subject: nul \x00 here\r\nTo: x@y.z\r\n\r\nbody\r\n",
    ]
    for data in tricky:
        ref = await put_blob(store, data)
        await store.append(box.id, ref, internal_date=T0, summary=parse_message(data).to_json())
    old = '{"v":1,"size":5,"env":{},"body":{"t":"text","s":"plain","size":5}}'
    await store.append(box.id, await put_blob(store, b"x\r\n"), internal_date=T0, summary=old)
    await store.store_flags(box.id, UidSet.of([2]), FlagMode.ADD, frozenset({"\\Seen", "$X"}))
    for uids in (UidSet.all(), UidSet.of([2, 3]), UidSet.of([1, 4]), UidSet.of([9])):
        whole = await store.fetch_messages(box.id, uids)
        got = await store.fetch_attributes(box.id, uids)
        assert [a[:5] for a in got] == [
            MessageAttributes(m.uid, m.modseq, m.flags, m.internal_date, m.size, "")[:5]
            for m in whole
        ]
        for a, m in zip(got, whole, strict=True):
            assert imap_envelope(a.summary_head) == imap_envelope(m.summary)
    heads = {a.uid: a.summary_head for a in await store.fetch_attributes(box.id, UidSet.all())}
    assert imap_envelope(heads[4]) is None
    assert all(imap_envelope(heads[u]) is not None for u in (1, 2, 3))


async def test_fetch_message_data_equals_row_and_read(store: Store) -> None:
    """fetch_message_data (one point read on SQLite) gives fetch_messages's row and
    read_message's octets, for inline and file blobs and delivered (trace prefix) and
    appended messages; None for a UID that does not exist."""
    from postel.limits import BLOB_INLINE_MAX

    (alice,) = await make_accounts(store, "alice")
    box = await store.get_mailbox(alice.id, "INBOX")
    assert box is not None
    await store.deliver([delivery(alice, await put_blob(store, message(1, 500)))])
    big = message(2, BLOB_INLINE_MAX + 5000)
    await store.deliver([delivery(alice, await put_blob(store, big))])
    await store.append(
        box.id, await put_blob(store, message(3, 700)), internal_date=T0, summary="{}"
    )
    for uid in (1, 2, 3):
        got = await store.fetch_message_data(box.id, uid)
        assert got is not None
        (row,) = await store.fetch_messages(box.id, UidSet.of([uid]))
        assert got == (row, await store.read_message(box.id, uid))
    assert await store.fetch_message_data(box.id, 99) is None
