"""The ``store`` fixture: one open Store per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postel.clock import FixedClock
from postel.store import Credentials, Store, open_store

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def credentials(tag: str = "x") -> Credentials:
    """Credentials with recognisable fake values (no real hashing needed here)."""
    return Credentials(
        password_hash=f"$argon2id$v=19$m=65536,t=3,p=4${tag}",
        scram_salt=b"salt-" + tag.encode(),
        scram_iterations=4096,
        scram_stored_key=b"s" * 32,
        scram_server_key=b"k" * 32,
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'postel.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
async def store(database_url: str, blob_dir: Path, clock: FixedClock) -> AsyncIterator[Store]:
    s = open_store(database_url, blob_dir, clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
