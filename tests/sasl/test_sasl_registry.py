"""Mechanism names, advertising and the sans-IO import rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import postel.sasl
from postel.sasl import (
    MECHANISMS,
    Login,
    Plain,
    SaslError,
    ScramSha256,
    UnsupportedMechanism,
    mechanisms_for,
    start,
)

from .conftest import FAKE_SECRET

FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "time", "sqlalchemy", "postel.store"}
ALLOWED_POSTEL = ("postel.sasl", "postel.errors", "postel.limits")


def test_mechanisms_in_preference_order() -> None:
    assert MECHANISMS == ("SCRAM-SHA-256", "PLAIN", "LOGIN")


def test_mechanisms_without_tls_exclude_clear_passwords() -> None:
    assert mechanisms_for(tls=True) == MECHANISMS
    assert mechanisms_for(tls=False) == ("SCRAM-SHA-256",)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("PLAIN", Plain),
        ("plain", Plain),
        ("Login", Login),
        ("scram-sha-256", ScramSha256),
    ],
)
def test_start_is_case_insensitive(name: str, cls: type) -> None:
    mech = start(name, nonce_source=lambda: "n", fake_salt_secret=FAKE_SECRET)
    assert isinstance(mech, cls)
    assert mech.name == name.upper()
    assert not mech.done


@pytest.mark.parametrize(
    "name", ["CRAM-MD5", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "", "X" * 1000, "PLAIN "]
)
def test_unknown_mechanism(name: str) -> None:
    with pytest.raises(UnsupportedMechanism):
        start(name, nonce_source=lambda: "n", fake_salt_secret=FAKE_SECRET)
    assert issubclass(UnsupportedMechanism, SaslError)


def test_sans_io_imports() -> None:
    package = Path(postel.sasl.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, (source.name, name)
                if name.startswith("postel"):
                    assert name.startswith(ALLOWED_POSTEL), (source.name, name)
