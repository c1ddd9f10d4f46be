"""Store.lookup_addresses (one read for a recipient), directory_version, and reads in
autocommit mode on WAL snapshots; every backend where it applies."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from postel.store import DirectoryEntry, SqlStore, Store
from postel.store.directory_lookup import LOOKUP_CHUNK

from .conftest import credentials


async def test_lookup_names_domains_aliases_accounts_and_catch_all(store: Store) -> None:
    await store.add_domain("example.org")
    alice = await store.add_account("Alice@example.org", credentials())
    await store.add_alias("team@example.org", ["alice@example.org", "bob@example.net"])
    await store.add_alias("@example.org", ["alice@example.org"])
    await store.add_alias("alice@example.org", ["team@example.org"])
    keys = [
        "alice@example.org",
        "TEAM@example.org",
        "@example.org",
        "nobody@example.org",
        "x@example.net",
        "not-an-address",
        "a" * 400 + "@example.org",
    ]
    lookup = await store.lookup_addresses(keys)
    assert lookup.domains == frozenset({"example.org"})
    assert lookup.entries == (
        DirectoryEntry(
            "alice@example.org",
            alias_targets=("team@example.org",),
            account_id=alice.id,
            account_address="Alice@example.org",
        ),
        DirectoryEntry("team@example.org", alias_targets=("alice@example.org", "bob@example.net")),
        DirectoryEntry("@example.org", alias_targets=("alice@example.org",)),
        DirectoryEntry("nobody@example.org"),
        DirectoryEntry("x@example.net"),
        DirectoryEntry("not-an-address"),
        DirectoryEntry("a" * 400 + "@example.org"),
    )
    empty = await store.lookup_addresses([])
    assert empty.domains == frozenset() and empty.entries == ()


async def test_lookup_of_many_keys(store: Store) -> None:
    await store.add_domain("example.org")
    await store.add_account("u7@example.org", credentials())
    keys = [f"u{i}@example.org" for i in range(LOOKUP_CHUNK * 2 + 3)]
    lookup = await store.lookup_addresses(keys)
    assert [e.key for e in lookup.entries] == keys
    assert [e.key for e in lookup.entries if e.account_id is not None] == ["u7@example.org"]
    assert lookup.domains == frozenset({"example.org"})


async def test_directory_version_changes_on_directory_writes_only(store: Store) -> None:
    seen = [store.directory_version]
    await store.add_domain("example.org")
    seen.append(store.directory_version)
    account = await store.add_account("a@example.org", credentials())
    seen.append(store.directory_version)
    await store.add_alias("b@example.org", ["a@example.org"])
    seen.append(store.directory_version)
    await store.list_mailboxes(account.id)
    await store.lookup_addresses(["a@example.org"])
    seen.append(store.directory_version)
    assert len(set(seen)) == 4


async def test_sqlite_reads_send_no_begin_and_read_committed_snapshots(
    tmp_path: Path, blob_dir: Path
) -> None:
    from postel.clock import SystemClock

    path = tmp_path / "postel.db"
    store = SqlStore(f"sqlite:///{path}", blob_dir, clock=SystemClock())
    await store.open()
    statements: list[str] = []

    @event.listens_for(store._engines.reader, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    store._engines.reader.dispose()
    try:
        await store.add_domain("example.org")
        # Another connection holds an open write transaction: readers are not blocked
        # and do not see its rows (WAL snapshot of the last commit).
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO domains (name, created) VALUES ('pending.example', '2026-01-01')"
        )
        assert await store.get_domain("pending.example") is None
        assert await store.get_domain("example.org") is not None
        lookup = await store.lookup_addresses(["x@pending.example", "x@example.org"])
        assert lookup.domains == frozenset({"example.org"})
        other.execute("COMMIT")
        other.close()
        assert await store.get_domain("pending.example") is not None
    finally:
        await store.close()
    assert statements, "the trace saw no statement"
    verbs = {s.split()[0].upper() for s in statements}
    assert verbs == {"SELECT"}, statements
