"""The self-signed pair of ``tls.generate_self_signed``: made when neither file exists,
kept when both do, and never written over an existing certificate or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from postel.errors import ConfigError
from postel.server.tls import ensure_self_signed, server_context


def test_made_once_then_kept(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert ensure_self_signed(cert, key, "mx.example.org") is True
    assert key.stat().st_mode & 0o777 == 0o600
    before = (cert.read_bytes(), key.read_bytes())
    assert ensure_self_signed(cert, key, "mx.example.org") is False
    assert (cert.read_bytes(), key.read_bytes()) == before
    server_context(cert, key)  # a usable pair


@pytest.mark.parametrize("kept", ["cert", "key"])
def test_one_file_alone_is_never_overwritten(tmp_path: Path, kept: str) -> None:
    """A real certificate whose key is missing (or a key whose certificate is) is
    reported, not replaced by a generated pair."""
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    existing = cert if kept == "cert" else key
    existing.write_bytes(b"-----BEGIN SOMETHING REAL-----\n")
    with pytest.raises(ConfigError) as caught:
        ensure_self_signed(cert, key, "mx.example.org")
    assert str(existing) in str(caught.value)
    assert existing.read_bytes() == b"-----BEGIN SOMETHING REAL-----\n"
    assert not (key if kept == "cert" else cert).exists()
