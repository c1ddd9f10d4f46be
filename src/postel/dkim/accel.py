"""dkimpy's two per-signature hot spots, done by compiled code with the same results.

dkimpy verifies an RSA signature in Python (``dkim.crypto.RSASSA_PKCS1_v1_5_verify``:
byte-by-byte integer conversions around ``pow``) and parses the key record, with the
public key's ASN.1, again for every signature it checks (``dkim.evaluate_pk``).
``install`` replaces the names dkimpy's verifier calls with:

- ``verify_rsa``: RSASSA-PKCS1-v1_5 verification by ``cryptography`` (OpenSSL), the
  public key object built once per (modulus, exponent) and kept in a bounded cache;
  a digest ``cryptography`` cannot name falls back to dkimpy's own function;
- ``evaluate_key``: ``dkim.evaluate_pk`` with its successful results kept per key
  record (bounded); records that fail are evaluated afresh, so every error text stays
  dkimpy's.

Both return what the replaced functions return, with one deliberate difference:
dkimpy reads the signature as an integer, so it also accepts a signature padded with
leading zero octets (longer than the modulus) or one plus the modulus; RFC 8017
§8.2.2 step 1 and §5.2.2 step 1 call both invalid, and so does this verifier. The DKIM
and ARC vectors run through both replacements. Why replacing names is acceptable here, and not a
fork: docs/adr/0004-dkimpy-hot-spots.md.

Spec: RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5 verification); RFC 6376 §3.6.1, §6.1.2.
"""

from __future__ import annotations

import functools
from typing import Any

import dkim.crypto
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

import dkim

__all__ = ["DKIM_KEY_CACHE_ENTRIES", "evaluate_key", "install", "verify_rsa"]

DKIM_KEY_CACHE_ENTRIES = 512
"""Parsed public keys (and key records) kept; least recently used dropped first.
Postel policy: a busy receiver sees a few hundred signing keys a day."""

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha1": hashes.SHA1,
}
_dkimpy_verify = dkim.crypto.RSASSA_PKCS1_v1_5_verify
_dkimpy_evaluate_pk = dkim.evaluate_pk


@functools.lru_cache(maxsize=DKIM_KEY_CACHE_ENTRIES)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey | None:
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def verify_rsa(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """Whether ``signature`` is a valid RSASSA-PKCS1-v1_5 signature of the digest held
    by ``hash`` (a dkimpy ``HashThrough``) under ``public_key`` (dkimpy's dict with
    ``modulus`` and ``publicExponent``). dkimpy's contract, except that a signature
    that is not exactly as long as the modulus is invalid. Spec: RFC 8017 §8.2.2."""
    digest = _DIGESTS.get(str(getattr(hash, "name", "")).lower())
    key = _public_key(public_key["modulus"], public_key["publicExponent"])
    if digest is None or key is None:
        return bool(_dkimpy_verify(hash, signature, public_key))
    try:
        key.verify(signature, hash.digest(), padding.PKCS1v15(), utils.Prehashed(digest()))
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=DKIM_KEY_CACHE_ENTRIES)
def _evaluate_cached(record: bytes) -> tuple[Any, int, bytes, bool]:
    result: tuple[Any, int, bytes, bool] = _dkimpy_evaluate_pk("", record)
    return result


def evaluate_key(name: Any, record: Any) -> tuple[Any, int, bytes, bool]:
    """``dkim.evaluate_pk(name, record)``: (public key, bits, key type, tlsrpt) of a key
    record; raises what dkimpy raises (``dkim.KeyFormatError``...). Successful results
    are cached per record. Spec: RFC 6376 §3.6.1."""
    if isinstance(record, str):
        record = record.encode("ascii")
    if not isinstance(record, bytes) or not record:
        result: tuple[Any, int, bytes, bool] = _dkimpy_evaluate_pk(name, record)
        return result
    try:
        return _evaluate_cached(record)
    except Exception:
        result = _dkimpy_evaluate_pk(name, record)  # the error with dkimpy's own text
        return result


def install() -> None:
    """Point dkimpy's verifier at ``verify_rsa`` and ``evaluate_key``; idempotent."""
    dkim.RSASSA_PKCS1_v1_5_verify = verify_rsa
    dkim.evaluate_pk = evaluate_key
