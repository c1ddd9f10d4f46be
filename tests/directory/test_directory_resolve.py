"""Recipient resolution against the real store (SQLite in tmp_path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postel import limits
from postel.clock import FixedClock
from postel.directory import (
    AliasExpansionError,
    Directory,
    Forwarded,
    LocalRecipients,
    NotLocal,
    Resolution,
    UnknownRecipient,
)
from postel.store import Credentials, Store, open_store

CREDENTIALS = Credentials(
    password_hash="$argon2id$v=19$m=65536,t=3,p=4$fake",
    scram_salt=b"salt",
    scram_iterations=4096,
    scram_stored_key=b"s" * 32,
    scram_server_key=b"k" * 32,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(
        f"sqlite:///{tmp_path / 'postel.db'}",
        tmp_path / "blobs",
        clock=FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    )
    await s.open()
    await s.add_domain("example.org")
    await s.add_domain("xn--bcher-kva.example")
    for address, admin in [
        ("admin@example.org", True),
        ("Alice@example.org", False),
        ("bob@example.org", False),
        ("carol@xn--bcher-kva.example", False),
    ]:
        await s.add_account(address, CREDENTIALS, is_admin=admin)
    try:
        yield s
    finally:
        await s.close()


def addresses(resolution: Resolution) -> list[str]:
    assert isinstance(resolution, LocalRecipients), resolution
    return [target.address for target in resolution.accounts]


async def test_account_case_insensitive(store: Store) -> None:
    directory = Directory(store, "admin@example.org")
    assert sorted(addresses(await directory.resolve("alice@example.org"))) == ["Alice@example.org"]
    assert addresses(await directory.resolve("ALICE@EXAMPLE.ORG")) == ["Alice@example.org"]
    account = await store.get_account("alice@example.org")
    resolution = await directory.resolve("alice@example.org")
    assert isinstance(resolution, LocalRecipients)
    assert account is not None and resolution.accounts[0].account_id == account.id


async def test_idna_domains(store: Store) -> None:
    directory = Directory(store, None)
    expected = ["carol@xn--bcher-kva.example"]
    assert addresses(await directory.resolve("carol@bücher.example")) == expected
    assert addresses(await directory.resolve("carol@BÜCHER.example")) == expected
    assert addresses(await directory.resolve("carol@xn--BCHER-kva.example")) == expected
    assert await directory.is_local_domain("Bücher.example")


async def test_not_local_and_unknown(store: Store) -> None:
    directory = Directory(store, None)
    assert await directory.resolve("alice@example.net") == NotLocal("example.net")
    assert await directory.resolve("nobody@example.org") == UnknownRecipient("nobody@example.org")
    assert await directory.resolve("x@[127.0.0.1]") == NotLocal("[127.0.0.1]")
    assert await directory.resolve("alice") == UnknownRecipient("alice")
    long_local = "a" * 65 + "@example.org"
    assert await directory.resolve(long_local) == UnknownRecipient(long_local)


@pytest.mark.parametrize(
    "address",
    [
        "alice%example.net@example.org",
        "example.net!alice@example.org",
        '"alice@example.net"@example.org',
        "@example.net:alice@example.org",
        "alice@example.net@example.org",
    ],
)
async def test_relay_tricks_are_unknown_local_parts(store: Store, address: str) -> None:
    assert await Directory(store, None).resolve(address) == UnknownRecipient(address)


async def test_subaddressing(store: Store) -> None:
    directory = Directory(store, None)
    assert addresses(await directory.resolve("alice+lists@example.org")) == ["Alice@example.org"]
    assert addresses(await directory.resolve("Alice+a+b@example.org")) == ["Alice@example.org"]
    assert isinstance(await directory.resolve("+lists@example.org"), UnknownRecipient)
    await store.add_alias("team@example.org", ["alice@example.org", "bob@example.org"])
    assert addresses(await directory.resolve("team+x@example.org")) == [
        "Alice@example.org",
        "bob@example.org",
    ]


async def test_exact_alias_wins_over_account_and_subaddress(store: Store) -> None:
    directory = Directory(store, None)
    await store.add_alias("bob@example.org", ["alice@example.org"])
    await store.add_alias("alice+special@example.org", ["bob@example.org"])
    assert sorted(addresses(await directory.resolve("bob@example.org"))) == ["Alice@example.org"]
    # alice+special is an alias to bob, which is itself an alias to alice.
    assert addresses(await directory.resolve("alice+special@example.org")) == ["Alice@example.org"]


async def test_alias_expansion_recursive_deduplicated(store: Store) -> None:
    directory = Directory(store, None)
    await store.add_alias("team@example.org", ["alice@example.org", "ops@example.org"])
    await store.add_alias("ops@example.org", ["bob@example.org", "ALICE@example.org"])
    await store.add_alias("all@example.org", ["team@example.org", "ops@example.org"])
    assert addresses(await directory.resolve("all@example.org")) == [
        "Alice@example.org",
        "bob@example.org",
    ]


async def test_alias_loop_is_detected(store: Store) -> None:
    directory = Directory(store, None)
    await store.add_alias("a@example.org", ["b@example.org", "bob@example.org"])
    await store.add_alias("b@example.org", ["a@example.org"])
    assert addresses(await directory.resolve("a@example.org")) == ["bob@example.org"]
    await store.add_alias("x@example.org", ["y@example.org"])
    await store.add_alias("y@example.org", ["x@example.org"])
    assert await directory.resolve("x@example.org") == UnknownRecipient("x@example.org")


async def test_an_address_met_again_in_its_own_expansion_keeps_its_copy(store: Store) -> None:
    """An account's address named among its own alias's targets (forward and keep a
    copy), directly or through a loop, is delivered to that account, not dropped as
    already visited; one copy per account still."""
    directory = Directory(store, None)
    await store.add_alias("alice@example.org", ["alice@example.org", "bob@example.org"])
    assert sorted(addresses(await directory.resolve("alice@example.org"))) == [
        "Alice@example.org",
        "bob@example.org",
    ]
    await store.add_alias("bob@example.org", ["list@example.org"])
    await store.add_alias("list@example.org", ["bob@example.org", "admin@example.org"])
    assert sorted(addresses(await directory.resolve("bob@example.org"))) == [
        "admin@example.org",
        "bob@example.org",
    ]
    assert sorted(addresses(await directory.resolve("alice+tag@example.org"))) == [
        "Alice@example.org",
        "admin@example.org",
        "bob@example.org",
    ]


async def test_alias_depth_limit(store: Store) -> None:
    depth = limits.ALIAS_EXPANSION_DEPTH_MAX
    for i in range(depth):
        await store.add_alias(f"hop{i}@example.org", [f"hop{i + 1}@example.org"])
    await store.add_alias(f"hop{depth}@example.org", ["bob@example.org"])
    directory = Directory(store, None)
    assert addresses(await directory.resolve("hop1@example.org")) == ["bob@example.org"]
    with pytest.raises(AliasExpansionError):
        await directory.resolve("hop0@example.org")


async def test_alias_targets_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.add_alias("many@example.org", [f"u{i}@example.org" for i in range(5)])
    monkeypatch.setattr(limits, "ALIAS_EXPANSION_TARGETS_MAX", 3)
    with pytest.raises(AliasExpansionError):
        await Directory(store, None).resolve("many@example.org")


async def test_alias_target_outside_our_domains_is_forwarded(store: Store) -> None:
    await store.add_alias("fwd@example.org", ["Someone@example.net", "bob@example.org"])
    resolution = await Directory(store, None).resolve("fwd@example.org")
    assert isinstance(resolution, LocalRecipients)
    assert addresses(resolution) == ["bob@example.org"]
    assert resolution.remote == ("Someone@example.net",)
    # Plain accounts forward nowhere.
    plain = await Directory(store, None).resolve("bob@example.org")
    assert isinstance(plain, LocalRecipients) and plain.remote == ()


async def test_alias_with_only_remote_targets(store: Store) -> None:
    await store.add_alias("out@example.org", ["a@example.net", "A@Example.NET", "b@bücher.test"])
    await store.add_alias("both@example.org", ["out@example.org", "c@example.net"])
    await store.add_alias("@xn--bcher-kva.example", ["catch@example.net"])
    directory = Directory(store, None)
    assert await directory.resolve("out@example.org") == Forwarded(
        ("a@example.net", "b@xn--bcher-kva.test")
    )
    assert await directory.resolve("both+tag@example.org") == Forwarded(
        ("a@example.net", "b@xn--bcher-kva.test", "c@example.net")
    )
    assert await directory.resolve("anyone@bücher.example") == Forwarded(("catch@example.net",))


async def test_remote_targets_count_against_the_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.add_alias("wide@example.org", [f"u{i}@example.net" for i in range(5)])
    monkeypatch.setattr(limits, "ALIAS_EXPANSION_TARGETS_MAX", 3)
    with pytest.raises(AliasExpansionError):
        await Directory(store, None).resolve("wide@example.org")


async def test_postmaster_and_abuse(store: Store) -> None:
    directory = Directory(store, "bob@example.org")
    for address in [
        "postmaster@example.org",
        "PostMaster@example.org",
        "abuse@example.org",
        "postmaster@bücher.example",
        "postmaster",
        "POSTMASTER",
    ]:
        assert addresses(await directory.resolve(address)) == ["bob@example.org"], address
    # An alias or account of that name wins.
    await store.add_alias("abuse@example.org", ["alice@example.org"])
    assert addresses(await directory.resolve("abuse@example.org")) == ["Alice@example.org"]
    # Without admin_address, the first admin account.
    assert addresses(await Directory(store, None).resolve("postmaster")) == ["admin@example.org"]
    assert addresses(await Directory(store, "gone@example.org").resolve("postmaster")) == [
        "admin@example.org"
    ]


async def test_postmaster_without_any_admin(tmp_path: Path) -> None:
    s = open_store(
        f"sqlite:///{tmp_path / 'p.db'}",
        tmp_path / "b",
        clock=FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    )
    await s.open()
    try:
        await s.add_domain("example.org")
        directory = Directory(s, None)
        assert await directory.resolve("postmaster") == UnknownRecipient("postmaster")
        assert isinstance(await directory.resolve("postmaster@example.org"), UnknownRecipient)
    finally:
        await s.close()


async def test_catch_all(store: Store) -> None:
    directory = Directory(store, "admin@example.org")
    await store.add_alias("@example.org", ["bob@example.org"])
    assert addresses(await directory.resolve("anything@example.org")) == ["bob@example.org"]
    # Relay tricks in the local part reach the catch-all, i.e. stay local.
    assert addresses(await directory.resolve("x%example.net@example.org")) == ["bob@example.org"]
    # Accounts, subaddresses and postmaster come before the catch-all.
    assert addresses(await directory.resolve("alice+x@example.org")) == ["Alice@example.org"]
    assert addresses(await directory.resolve("postmaster@example.org")) == ["admin@example.org"]
    # The catch-all of one domain does not apply to another.
    assert isinstance(await directory.resolve("nobody@bücher.example"), UnknownRecipient)


async def test_catch_all_to_missing_address_does_not_loop(store: Store) -> None:
    await store.add_alias("@example.org", ["nobody@example.org"])
    directory = Directory(store, None)
    assert isinstance(await directory.resolve("x@example.org"), UnknownRecipient)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "@",
        "@@",
        "a@",
        "@example.org",
        "\x00@example.org",
        "a\r\n@example.org",
        "\udcff@example.org",
        "a@\udcff.example",
        "a@" + "x" * 300,
        "a@exa mple.org",
        "a@.",
        "a@..",
        "a@-x.example",
        "ü" * 40 + "@example.org",
    ],
)
async def test_odd_addresses_never_raise(store: Store, address: str) -> None:
    resolution = await Directory(store, None).resolve(address)
    assert isinstance(resolution, NotLocal | UnknownRecipient)
