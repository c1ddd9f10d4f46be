"""Fixtures for the SASL tests: a fixed fake-salt secret and SCRAM credentials made the
way the directory makes them."""

from __future__ import annotations

import pytest

from postel.directory.passwords import scram_keys
from postel.sasl import ScramCredentials

FAKE_SECRET = b"0123456789abcdef0123456789abcdef"
"""fake_salt_secret used throughout the tests."""


def scram_credentials(password: str, salt: bytes, iterations: int = 4096) -> ScramCredentials:
    """What the store would hold for ``password`` (already SASLprep'd)."""
    stored_key, server_key = scram_keys(password, salt, iterations)
    return ScramCredentials(salt, iterations, stored_key, server_key)


@pytest.fixture
def fake_secret() -> bytes:
    return FAKE_SECRET
