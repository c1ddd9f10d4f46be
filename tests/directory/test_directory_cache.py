"""Store reads per RCPT TO and the directory cache: one read per address, answers
(unknown names too) reused for the TTL, writes of this process seen at once, writes of
another process (a second store on the same database, as the CLI is) within the TTL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from postel.clock import FixedClock
from postel.directory import Directory, LocalRecipients, NotLocal, UnknownRecipient
from postel.directory.cache import DIRECTORY_CACHE_TTL_S
from postel.store import Account, Credentials, DirectoryLookup, Store, open_store

CREDENTIALS = Credentials(
    password_hash="$argon2id$v=19$m=65536,t=3,p=4$fake",
    scram_salt=b"salt",
    scram_iterations=4096,
    scram_stored_key=b"s" * 32,
    scram_server_key=b"k" * 32,
)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class CountingStore:
    """The directory's view of a store, counting reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lookups: list[tuple[str, ...]] = []
        self.listings = 0

    async def lookup_addresses(self, keys: Sequence[str]) -> DirectoryLookup:
        self.lookups.append(tuple(keys))
        return await self.store.lookup_addresses(keys)

    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]:
        self.listings += 1
        return await self.store.list_accounts(domain)

    @property
    def directory_version(self) -> int:
        return self.store.directory_version


def open_test_store(tmp_path: Path) -> Store:
    return open_store(
        f"sqlite:///{tmp_path / 'postel.db'}", tmp_path / "blobs", clock=FixedClock(T0)
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_test_store(tmp_path)
    await s.open()
    await s.add_domain("example.org")
    await s.add_account("admin@example.org", CREDENTIALS, is_admin=True)
    await s.add_account("alice@example.org", CREDENTIALS)
    await s.add_account("bob@example.org", CREDENTIALS)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def other_process(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    """A second store on the same database: its writes are invisible to
    ``store.directory_version``, like those of ``postel account add``."""
    s = open_test_store(tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def names(resolution: object) -> list[str]:
    assert isinstance(resolution, LocalRecipients), resolution
    return [t.address for t in resolution.accounts]


async def test_one_store_read_per_address_then_none(store: Store) -> None:
    counting = CountingStore(store)
    directory = Directory(counting, None, clock=FixedClock(T0))
    assert names(await directory.resolve("alice+tag@example.org")) == ["alice@example.org"]
    assert counting.lookups == [("alice+tag@example.org", "alice@example.org", "@example.org")]
    assert names(await directory.resolve("Alice+tag@Example.org")) == ["alice@example.org"]
    assert names(await directory.resolve("alice@example.org")) == ["alice@example.org"]
    assert len(counting.lookups) == 1  # the second and third came from the cache
    assert await directory.resolve("x@example.net") == NotLocal("example.net")
    assert await directory.resolve("x@example.net") == NotLocal("example.net")
    assert len(counting.lookups) == 2


async def test_alias_targets_are_read_together(store: Store) -> None:
    await store.add_alias("team@example.org", ["alice@example.org", "bob@example.org"])
    counting = CountingStore(store)
    directory = Directory(counting, None, clock=FixedClock(T0))
    assert names(await directory.resolve("team@example.org")) == [
        "alice@example.org",
        "bob@example.org",
    ]
    assert len(counting.lookups) == 2  # the address, then both targets at once


async def test_unknown_recipients_are_cached_too(store: Store) -> None:
    counting = CountingStore(store)
    directory = Directory(counting, None, clock=FixedClock(T0))
    for _ in range(5):
        assert isinstance(await directory.resolve("nobody@example.org"), UnknownRecipient)
    assert len(counting.lookups) == 1


async def test_writes_of_this_process_are_seen_at_once(store: Store) -> None:
    directory = Directory(store, None, clock=FixedClock(T0))
    assert isinstance(await directory.resolve("carol@example.org"), UnknownRecipient)
    await store.add_account("carol@example.org", CREDENTIALS)
    assert names(await directory.resolve("carol@example.org")) == ["carol@example.org"]
    await store.add_alias("carol+x@example.org", ["bob@example.org"])
    assert names(await directory.resolve("carol+x@example.org")) == ["bob@example.org"]


async def test_writes_of_another_process_are_seen_within_the_ttl(
    store: Store, other_process: Store
) -> None:
    clock = FixedClock(T0)
    directory = Directory(store, None, clock=clock)
    assert isinstance(await directory.resolve("dave@example.org"), UnknownRecipient)
    assert names(await directory.resolve("alice@example.org")) == ["alice@example.org"]
    await other_process.add_account("dave@example.org", CREDENTIALS)
    await other_process.add_alias("alice@example.org", ["bob@example.org"])
    # Stale, but only until the TTL has passed.
    assert isinstance(await directory.resolve("dave@example.org"), UnknownRecipient)
    clock.advance(DIRECTORY_CACHE_TTL_S - 0.5)
    assert names(await directory.resolve("alice@example.org")) == ["alice@example.org"]
    clock.advance(0.5)
    assert names(await directory.resolve("dave@example.org")) == ["dave@example.org"]
    assert names(await directory.resolve("alice@example.org")) == ["bob@example.org"]
    assert not await directory.is_local_domain("example.com")
    await other_process.add_domain("example.com")
    await other_process.add_account("erin@example.com", CREDENTIALS)
    assert not await directory.is_local_domain("example.com")
    clock.advance(DIRECTORY_CACHE_TTL_S)
    assert names(await directory.resolve("erin@example.com")) == ["erin@example.com"]
    assert await directory.is_local_domain("example.com")


async def test_admin_is_cached_and_follows_changes(store: Store, other_process: Store) -> None:
    clock = FixedClock(T0)
    counting = CountingStore(store)
    directory = Directory(counting, None, clock=clock)
    for _ in range(3):
        assert names(await directory.resolve("postmaster")) == ["admin@example.org"]
        assert names(await directory.resolve("abuse@example.org")) == ["admin@example.org"]
    assert counting.listings == 1
    await other_process.remove_account("admin@example.org")
    clock.advance(DIRECTORY_CACHE_TTL_S)
    assert isinstance(await directory.resolve("postmaster"), UnknownRecipient)


async def test_cache_is_bounded(store: Store) -> None:
    directory = Directory(store, None, clock=FixedClock(T0), cache_max=8)
    for i in range(50):
        assert isinstance(await directory.resolve(f"probe{i}@example.org"), UnknownRecipient)
        assert isinstance(await directory.resolve(f"probe{i}@example{i}.net"), NotLocal)
    assert len(directory.cache) <= 16


async def test_ttl_zero_turns_the_cache_off(store: Store) -> None:
    counting = CountingStore(store)
    directory = Directory(counting, None, clock=FixedClock(T0), cache_ttl=0)
    for _ in range(3):
        assert names(await directory.resolve("bob@example.org")) == ["bob@example.org"]
    assert len(counting.lookups) == 3
    assert len(directory.cache) == 0
