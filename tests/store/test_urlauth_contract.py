"""URLAUTH mailbox access keys in the store, on both backends: made once (the first key
wins), read back, reset per mailbox or per account, gone with their mailbox.
Spec: RFC 4467 §3, §6.1, §6.2."""

from __future__ import annotations

from postel.store import Store

from .conftest import credentials


async def test_urlauth_keys_lifecycle(store: Store) -> None:
    await store.add_domain("example.test")
    alice = await store.add_account("alice@example.test", credentials("a"))
    bob = await store.add_account("bob@example.test", credentials("b"))
    inbox = await store.get_mailbox(alice.id, "INBOX")
    sent = await store.create_mailbox(alice.id, "Work")
    bob_inbox = await store.get_mailbox(bob.id, "INBOX")
    assert inbox is not None and bob_inbox is not None
    assert await store.urlauth_key(inbox.id) is None
    assert await store.create_urlauth_key(alice.id, inbox.id, b"k" * 32) == b"k" * 32
    assert await store.create_urlauth_key(alice.id, inbox.id, b"z" * 32) == b"k" * 32
    await store.create_urlauth_key(alice.id, sent.id, b"s" * 32)
    await store.create_urlauth_key(bob.id, bob_inbox.id, b"b" * 32)
    assert await store.reset_urlauth_keys(alice.id, inbox.id) == 1
    assert await store.urlauth_key(inbox.id) is None
    assert await store.urlauth_key(sent.id) == b"s" * 32
    assert await store.reset_urlauth_keys(alice.id, None) == 1
    assert await store.urlauth_key(sent.id) is None
    assert await store.urlauth_key(bob_inbox.id) == b"b" * 32
    work = await store.create_mailbox(bob.id, "Tmp")
    await store.create_urlauth_key(bob.id, work.id, b"t" * 32)
    await store.delete_mailbox(bob.id, "Tmp")
    assert await store.urlauth_key(work.id) is None
