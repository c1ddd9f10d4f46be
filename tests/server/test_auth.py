"""The Authenticator: one login path for every protocol (passwords and SASL), the
verified-password cache, and failures counted by the abuse tracker.

Spec: RFC 4422 §3; RFC 4616; RFC 7677; RELIABILITY.md D6.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import scramp

from postel import sasl
from postel.abuse import AbuseTracker
from postel.clock import FixedClock
from postel.config import AbuseConfig
from postel.directory import make_credentials
from postel.server import auth as auth_module
from postel.server.auth import Authenticator
from postel.store import Store, open_store

PASSWORD = "correct horse battery"
SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "blobs", clock=FixedClock(T0))
    await s.open()
    await s.add_domain("example.test")
    await s.add_account("alice@example.test", make_credentials(PASSWORD))
    try:
        yield s
    finally:
        await s.close()


T0 = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def make(
    store: Store, clock: FixedClock, cache: float = 300.0
) -> tuple[Authenticator, AbuseTracker]:
    abuse = AbuseTracker(AbuseConfig(max_auth_failures_per_ip=3), clock)
    return Authenticator(store, abuse, SECRET, clock=clock, cache_seconds=cache), abuse


async def test_unknown_user_and_wrong_password_look_the_same(store: Store) -> None:
    clock = FixedClock(T0)
    authenticator, _ = make(store, clock)
    ok = await authenticator.login("192.0.2.1", "alice@example.test", PASSWORD)
    assert ok.account is not None and ok.account.address == "alice@example.test"
    wrong = await authenticator.login("192.0.2.2", "alice@example.test", "nope")
    unknown = await authenticator.login("192.0.2.3", "bob@example.test", "nope")
    assert wrong == unknown == auth_module.AuthResult(None, banned=False)


async def test_failures_ban_the_address_at_the_threshold(store: Store) -> None:
    clock = FixedClock(T0)
    authenticator, abuse = make(store, clock)
    results = []
    for _ in range(3):
        results.append(await authenticator.login("192.0.2.9", "alice@example.test", "bad"))
    assert results[-1].banned
    assert abuse.banned("192.0.2.9")


async def test_verified_passwords_are_cached_until_they_expire_or_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = auth_module.verify_password

    def counting(credentials: object, password: str) -> bool:
        calls.append(password)
        return real(credentials, password)  # type: ignore[arg-type]

    monkeypatch.setattr(auth_module, "verify_password", counting)
    clock = FixedClock(T0)
    authenticator, _ = make(store, clock, cache=60.0)
    for _ in range(3):
        assert (await authenticator.login("192.0.2.1", "alice@example.test", PASSWORD)).account
    assert len(calls) == 1
    assert not (await authenticator.login("192.0.2.1", "alice@example.test", "other")).account
    assert len(calls) == 2  # a different password is always checked
    clock.advance(61.0)
    assert (await authenticator.login("192.0.2.1", "alice@example.test", PASSWORD)).account
    assert len(calls) == 3  # expired
    await store.set_credentials("alice@example.test", make_credentials("a new password!"))
    assert not (await authenticator.login("192.0.2.1", "alice@example.test", PASSWORD)).account
    assert len(calls) == 4  # the old password no longer works at once


async def test_scram_exchange_with_an_independent_client(store: Store) -> None:
    clock = FixedClock(T0)
    authenticator, _ = make(store, clock)
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice@example.test", PASSWORD)
    first = client.get_client_first().encode()

    async def ask(challenge: bytes) -> bytes | sasl.Cancelled:
        client.set_server_first(challenge.decode())
        return client.get_client_final().encode()

    result = await authenticator.authenticate("192.0.2.1", "SCRAM-SHA-256", first, ask)
    assert result.account is not None and result.server_final is not None
    client.set_server_final(result.server_final.decode())  # raises if the signature is wrong


async def test_plain_with_initial_response_and_cancel(store: Store) -> None:
    clock = FixedClock(T0)
    authenticator, _ = make(store, clock)

    async def never(challenge: bytes) -> bytes | sasl.Cancelled:
        raise AssertionError("no challenge expected")

    initial = b"\0alice@example.test\0" + PASSWORD.encode()
    assert (await authenticator.authenticate("192.0.2.1", "plain", initial, never)).account

    async def cancel(challenge: bytes) -> bytes | sasl.Cancelled:
        return sasl.CANCELLED

    cancelled = await authenticator.authenticate("192.0.2.1", "PLAIN", None, cancel)
    assert cancelled.cancelled and cancelled.account is None
    with pytest.raises(sasl.UnsupportedMechanism):
        await authenticator.authenticate("192.0.2.1", "CRAM-MD5", None, cancel)
