"""Shared fixtures: a throwaway PostgreSQL cluster for the whole session.

- ``pg_cluster`` (session): the running ``tests.pgcluster.PgCluster``.
- ``pg_url`` (session): SQLAlchemy URL of a database ``postel`` on it, shared by the session.
- ``pg_db_url`` (function): URL of a fresh, empty database for one test (dropped after).

Without PostgreSQL binaries these fixtures FAIL with a clear message, unless
``POSTEL_TEST_NO_POSTGRES=1`` is set, in which case tests using them are skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgcluster import PgCluster, PostgresMissing

NO_POSTGRES_ENV = "POSTEL_TEST_NO_POSTGRES"


class _DatabaseNames:
    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"postel_t{os.getpid()}_{self.count}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if os.environ.get(NO_POSTGRES_ENV) == "1":
        pytest.skip(f"{NO_POSTGRES_ENV}=1: PostgreSQL tests skipped")
    try:
        cluster = PgCluster.start()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database("postel")


@pytest.fixture(scope="session")
def _pg_names() -> _DatabaseNames:
    return _DatabaseNames()


@pytest.fixture
def pg_db_url(pg_cluster: PgCluster, _pg_names: _DatabaseNames) -> Iterator[str]:
    name = _pg_names.next()
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)
