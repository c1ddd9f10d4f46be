"""METADATA entries in the store, on both backends: set, read back by depth, removed by
NIL, kept apart per account and per mailbox, limits (value size, entry count) refused
all-or-none, entries moved by RENAME and removed with their mailbox.
Spec: RFC 5464 §3, §4.2, §4.3."""

from __future__ import annotations

import pytest

from postel.store import Store
from postel.store.metadata_ops import (
    METADATA_ENTRIES_MAX,
    METADATA_VALUE_MAX,
    MetadataDepth,
    MetadataEntry,
    MetadataTooMany,
    MetadataValueTooLarge,
)

from .conftest import credentials

ZERO, ONE, INF = MetadataDepth.ZERO, MetadataDepth.ONE, MetadataDepth.INFINITY


async def test_metadata_set_get_depth_delete(store: Store) -> None:
    await store.add_domain("example.test")
    alice = await store.add_account("alice@example.test", credentials("a"))
    bob = await store.add_account("bob@example.test", credentials("b"))
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None
    binary = bytes(range(256))
    await store.set_metadata(
        alice.id,
        None,
        [
            ("/Private/Comment", b"hello"),
            ("/private/comment/a", b"A"),
            ("/private/comment/a/b", binary),
            ("/shared/comment", b"shared"),
        ],
    )
    got = await store.get_metadata(alice.id, None, ["/PRIVATE/comment"], ZERO)
    assert got == [MetadataEntry("/private/comment", b"hello")]
    one = await store.get_metadata(alice.id, None, ["/private/comment"], ONE)
    assert [e.name for e in one] == ["/private/comment", "/private/comment/a"]
    everything = await store.get_metadata(alice.id, None, ["/private/comment"], INF)
    assert everything[-1] == MetadataEntry("/private/comment/a/b", binary)
    assert await store.get_metadata(alice.id, inbox.id, ["/private/comment"], INF) == []
    assert await store.get_metadata(bob.id, None, ["/private/comment"], INF) == []
    # A name only sharing a prefix is no descendant.
    await store.set_metadata(alice.id, None, [("/private/commentary", b"x")])
    assert len(await store.get_metadata(alice.id, None, ["/private/comment"], INF)) == 3
    await store.set_metadata(alice.id, None, [("/private/comment", b"again")])
    got = await store.get_metadata(alice.id, None, ["/private/comment"], ZERO)
    assert got == [MetadataEntry("/private/comment", b"again")]
    await store.set_metadata(alice.id, None, [("/private/comment", None), ("/nothing", None)])
    assert await store.get_metadata(alice.id, None, ["/private/comment"], ZERO) == []
    shared = await store.get_metadata(alice.id, None, ["/shared/comment"], ZERO)
    assert shared == [MetadataEntry("/shared/comment", b"shared")]


async def test_metadata_limits_all_or_none(store: Store) -> None:
    await store.add_domain("example.test")
    alice = await store.add_account("alice@example.test", credentials("a"))
    with pytest.raises(MetadataValueTooLarge) as too_large:
        await store.set_metadata(
            alice.id,
            None,
            [("/private/a", b"ok"), ("/private/b", b"x" * (METADATA_VALUE_MAX + 1))],
        )
    assert too_large.value.limit == METADATA_VALUE_MAX
    assert await store.get_metadata(alice.id, None, ["/private/a"], ZERO) == []
    await store.set_metadata(alice.id, None, [("/private/big", b"x" * METADATA_VALUE_MAX)])
    batch = [(f"/private/n/{i}", b"v") for i in range(METADATA_ENTRIES_MAX - 1)]
    await store.set_metadata(alice.id, None, batch)
    with pytest.raises(MetadataTooMany):
        await store.set_metadata(alice.id, None, [("/private/one-more", b"v"), ("/private/x", b"")])
    assert await store.get_metadata(alice.id, None, ["/private/one-more"], ZERO) == []
    # Replacing an entry does not count twice; removing one makes room.
    await store.set_metadata(alice.id, None, [("/private/n/0", b"new")])
    await store.set_metadata(alice.id, None, [("/private/n/0", None), ("/private/y", b"")])
    assert await store.get_metadata(alice.id, None, ["/private/y"], ZERO) == [
        MetadataEntry("/private/y", b"")
    ]


async def test_metadata_follows_rename_and_goes_with_delete(store: Store) -> None:
    await store.add_domain("example.test")
    alice = await store.add_account("alice@example.test", credentials("a"))
    work = await store.create_mailbox(alice.id, "Work")
    child = await store.create_mailbox(alice.id, "Work/Sub")
    await store.set_metadata(alice.id, work.id, [("/private/comment", b"w")])
    await store.set_metadata(alice.id, child.id, [("/shared/comment", b"s")])
    renamed = await store.rename_mailbox(alice.id, "Work", "Job")
    assert renamed.id == work.id
    got = await store.get_metadata(alice.id, renamed.id, ["/private/comment"], ZERO)
    assert got == [MetadataEntry("/private/comment", b"w")]
    sub = await store.get_mailbox(alice.id, "Job/Sub")
    assert sub is not None
    assert len(await store.get_metadata(alice.id, sub.id, ["/shared"], INF)) == 1
    await store.delete_mailbox(alice.id, "Job/Sub")
    again = await store.create_mailbox(alice.id, "Job/Sub")
    assert await store.get_metadata(alice.id, again.id, ["/shared"], INF) == []
    assert await store.get_metadata(alice.id, sub.id, ["/shared"], INF) == []
