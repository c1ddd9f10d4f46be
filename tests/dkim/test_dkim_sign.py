"""DKIM keys and signing: what postel signs verifies with dkimpy against the published
record, for RSA-2048 and Ed25519, and a changed or added over-signed field breaks it.

Spec: RFC 6376 §3.5, §3.6.1, §8.15; RFC 8463; RFC 8301.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dkim
from postel.dkim import (
    KeyAlgorithm,
    dns_record,
    generate_key,
    load_keys,
    sign_as_author,
    sign_message,
    write_key,
)

MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello\r\n"
    b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n"
    b"Hello Bob.\r\n"
)


def verify(message: bytes, records: dict[str, str]) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signature_verifies_and_breaks_on_tampering(
    algorithm: KeyAlgorithm, tmp_path: Path
) -> None:
    key = generate_key("example.test", f"s{algorithm.value[:3]}", algorithm)
    name, value = dns_record(key)
    assert name == f"{key.selector}._domainkey.example.test"
    assert value.startswith(f"v=DKIM1; k={algorithm.value}; p=")
    write_key(tmp_path, key)
    (loaded,) = load_keys(tmp_path, "example.test")
    assert loaded.algorithm is algorithm and loaded.public_b64 == key.public_b64
    field = sign_message(MESSAGE, loaded)
    assert field.startswith(b"DKIM-Signature:") and b"c=relaxed/relaxed" in field
    assert verify(field + MESSAGE, {name: value})
    assert not verify(field + MESSAGE.replace(b"hello", b"hullo"), {name: value})
    # Over-signing: a second Subject added in transit breaks the signature.
    assert not verify(field + b"Subject: injected\r\n" + MESSAGE, {name: value})


def test_keys_are_private_and_never_replaced(tmp_path: Path) -> None:
    key = generate_key("example.test", "one", KeyAlgorithm.ED25519)
    path = write_key(tmp_path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_key(tmp_path, generate_key("example.test", "one", KeyAlgorithm.ED25519))
    with pytest.raises(ValueError):
        generate_key("example.test", "bad selector", KeyAlgorithm.RSA)
    assert load_keys(tmp_path, "other.test") == []


def test_mail_postel_writes_is_signed_by_its_author_domain(tmp_path: Path) -> None:
    """``sign_as_author``: every key of the first From: domain; nothing without one."""
    key = generate_key("example.test", "rep", KeyAlgorithm.RSA)
    write_key(tmp_path, key)
    name, value = dns_record(key)
    fields = sign_as_author(MESSAGE, tmp_path)
    assert fields.count(b"DKIM-Signature:") == 1 and verify(fields + MESSAGE, {name: value})
    assert sign_as_author(MESSAGE.replace(b"example.test>", b"other.test>"), tmp_path) == b""
    assert sign_as_author(b"To: x@y.test\r\n\r\nno author\r\n", tmp_path) == b""
