"""The per-account sender policy of submission, on every store backend."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from postel.errors import NotFound
from postel.store import SenderPolicy, Store
from postel.store.migrate import upgrade

from .conftest import T0, credentials


async def test_accounts_default_to_own(store: Store) -> None:
    await store.add_domain("example.org")
    alice = await store.add_account("alice@example.org", credentials("a"))
    assert alice.sender_policy is SenderPolicy.OWN
    assert await store.get_account("alice@example.org") == alice


async def test_add_account_with_a_policy(store: Store) -> None:
    await store.add_domain("example.org")
    gateway = await store.add_account(
        "gw@example.org", credentials("g"), sender_policy=SenderPolicy.ANY
    )
    assert gateway.sender_policy is SenderPolicy.ANY
    assert await store.get_account_by_id(gateway.id) == gateway
    assert [a.sender_policy for a in await store.list_accounts()] == [SenderPolicy.ANY]


async def test_set_sender_policy_round_trips(store: Store) -> None:
    await store.add_domain("example.org")
    alice = await store.add_account("Alice@example.org", credentials("a"))
    bob = await store.add_account("bob@example.org", credentials("b"))
    version = store.directory_version
    updated = await store.set_sender_policy("ALICE@EXAMPLE.ORG", SenderPolicy.DOMAIN)
    assert store.directory_version != version  # directory caches drop their answers
    assert updated.sender_policy is SenderPolicy.DOMAIN
    assert updated.id == alice.id and updated.credentials == alice.credentials
    assert await store.get_account("alice@example.org") == updated
    assert await store.get_account("bob@example.org") == bob  # the others unchanged
    for policy in (SenderPolicy.ANY, SenderPolicy.OWN):
        assert (await store.set_sender_policy("alice@example.org", policy)).sender_policy is policy
        stored = await store.get_account_by_id(alice.id)
        assert stored is not None and stored.sender_policy is policy


async def test_set_sender_policy_of_an_unknown_account(store: Store) -> None:
    await store.add_domain("example.org")
    with pytest.raises(NotFound):
        await store.set_sender_policy("nobody@example.org", SenderPolicy.ANY)
    with pytest.raises(NotFound):
        await store.set_sender_policy("not an address", SenderPolicy.ANY)


def test_revision_0008_gives_existing_accounts_own(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        upgrade(engine, "0007")
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
        upgrade(engine)
        with engine.connect() as conn:
            policy = conn.execute(text("SELECT sender_policy FROM accounts")).scalar_one()
            assert policy == "own"
    finally:
        engine.dispose()
