"""The compiled replacements of dkimpy's RSA verification and key parsing give
dkimpy's own answers (docs/adr/0004-dkimpy-hot-spots.md)."""

from __future__ import annotations

import base64
import hashlib

import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

import dkim
from postel.dkim import accel

_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_DER = _PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
RECORD = b"v=DKIM1; k=rsa; p=" + base64.b64encode(_DER)


def _hash(data: bytes) -> dkim.HashThrough:
    h = dkim.HashThrough(hashlib.sha256())
    h.update(data)
    return h


def _signature(data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return _PRIVATE.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_installed_when_postel_dkim_is_imported() -> None:
    assert dkim.RSASSA_PKCS1_v1_5_verify is accel.verify_rsa
    assert dkim.evaluate_pk is accel.evaluate_key


PUBLIC = accel._dkimpy_evaluate_pk("", RECORD)[0]
GOOD = _signature(b"signed data")


@pytest.mark.parametrize(
    "signature",
    [
        GOOD,
        GOOD[:-1] + bytes([GOOD[-1] ^ 1]),  # altered
        GOOD[1:],  # one octet short
        b"\xff" * len(GOOD),  # above the modulus
        b"",
        _signature(b"other data"),
    ],
    ids=["valid", "altered", "short", "above-modulus", "empty", "other-data"],
)
def test_rsa_verification_agrees_with_dkimpy(signature: bytes) -> None:
    expected = accel._dkimpy_verify(_hash(b"signed data"), signature, PUBLIC)
    assert accel.verify_rsa(_hash(b"signed data"), signature, PUBLIC) == expected


MODULUS = PUBLIC["modulus"]
_GOOD_INT = int.from_bytes(GOOD, "big")


@pytest.mark.parametrize(
    "signature",
    [b"\x00" + GOOD, b"\x00\x00" + GOOD, (_GOOD_INT + MODULUS).to_bytes(257, "big")],
    ids=["zero-padded", "two-zeros", "plus-modulus"],
)
def test_a_signature_not_exactly_modulus_long_is_invalid(signature: bytes) -> None:
    """dkimpy reads the signature as an integer and accepts these; RFC 8017 §8.2.2
    step 1 (length k) and §5.2.2 step 1 (s < n) make them invalid."""
    assert accel._dkimpy_verify(_hash(b"signed data"), signature, PUBLIC)
    assert not accel.verify_rsa(_hash(b"signed data"), signature, PUBLIC)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_rsa_verification_agrees_on_any_signature_bytes(signature: bytes) -> None:
    expected = accel._dkimpy_verify(_hash(b"x"), signature, PUBLIC)
    assert accel.verify_rsa(_hash(b"x"), signature, PUBLIC) == expected


@pytest.mark.parametrize(
    "record",
    [
        RECORD,
        RECORD.decode(),
        b"v=DKIM1; k=rsa; p=",
        b"v=DKIM2; p=" + base64.b64encode(_DER),
        b"k=rsa; p=AAAA",
        b"k=rsa; p=" + base64.b64encode(_DER)[:40],
        b"k=foo; p=" + base64.b64encode(_DER),
        b"not a tag list",
        b"",
        None,
    ],
)
def test_key_evaluation_agrees_with_dkimpy(record: bytes | str | None) -> None:
    try:
        expected = accel._dkimpy_evaluate_pk("n", record)
    except Exception as exc:  # dkimpy's error, type and text
        with pytest.raises(type(exc)) as info:
            accel.evaluate_key("n", record)
        assert str(info.value) == str(exc)
        return
    for _ in range(2):  # the second answer comes from the cache
        assert accel.evaluate_key("n", record) == expected
