"""DKIM signing keys on disk: ``<data>/dkim/<domain>/<selector>.pem``, one PEM private
key per selector (RSA-2048 or Ed25519), readable by postel only, and the DNS TXT
record that publishes each public key.

Spec: RFC 6376 §3.6.1 (key record), RFC 8463 §4 (Ed25519 keys), RFC 8301 §3.2 (RSA
keys of at least 1024 bits; 2048 here).
"""

from __future__ import annotations

import base64
import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_BITS = 2048
"""RSA key size. Spec: RFC 8301 §3.2 (signers MUST use at least 1024 bits)."""
SELECTOR_MAX = 63
"""A selector is one DNS label here (RFC 6376 §3.1 allows dotted selectors)."""
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class KeyAlgorithm(enum.StrEnum):
    """The key type, and the ``a=`` signing algorithm it signs with."""

    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def signature_algorithm(self) -> bytes:
        """``rsa-sha256`` or ``ed25519-sha256``. Spec: RFC 6376 §3.3, RFC 8463 §3."""
        return b"rsa-sha256" if self is KeyAlgorithm.RSA else b"ed25519-sha256"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One signing key of ``domain`` under ``selector``. ``private_pem`` is what dkimpy
    signs with (PKCS#8 PEM for RSA; for Ed25519 the raw 32-octet seed, base64, as
    dkimpy expects); ``public_b64`` the ``p=`` value of the DNS record."""

    domain: str
    selector: str
    algorithm: KeyAlgorithm
    private_pem: bytes
    public_b64: str


def generate_key(domain: str, selector: str, algorithm: KeyAlgorithm) -> DkimKey:
    """A new key. Raises ValueError for a selector that is not one DNS label."""
    if not _SELECTOR.match(selector):
        raise ValueError(f"selector {selector!r} must be one DNS label (a-z, 0-9, -)")
    if algorithm is KeyAlgorithm.RSA:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey(domain, selector, algorithm, pem, base64.b64encode(public).decode())
    seed = ed25519.Ed25519PrivateKey.generate()
    pem = seed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = seed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return DkimKey(domain, selector, algorithm, pem, base64.b64encode(raw).decode())


def dns_record(key: DkimKey) -> tuple[str, str]:
    """``(name, TXT value)`` publishing ``key``. Spec: RFC 6376 §3.6.1, §3.6.2.1."""
    return (
        f"{key.selector}._domainkey.{key.domain}",
        f"v=DKIM1; k={key.algorithm.value}; p={key.public_b64}",
    )


def write_key(dkim_dir: Path, key: DkimKey) -> Path:
    """Store ``key`` as ``dkim_dir/<domain>/<selector>.pem`` (mode 0600, fsync'd).
    Raises FileExistsError rather than replace a key DNS may already publish."""
    folder = dkim_dir / key.domain
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{key.selector}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def load_keys(dkim_dir: Path, domain: str) -> list[DkimKey]:
    """Every key stored for ``domain``, by selector name; [] when there is none.
    A file that is not a supported private key is skipped."""
    folder = dkim_dir / domain
    if not folder.is_dir():
        return []
    keys: list[DkimKey] = []
    for path in sorted(folder.glob("*.pem")):
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(private, rsa.RSAPrivateKey):
            public = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            keys.append(
                DkimKey(
                    domain,
                    path.stem,
                    KeyAlgorithm.RSA,
                    path.read_bytes(),
                    base64.b64encode(public).decode(),
                )
            )
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            raw = private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            keys.append(
                DkimKey(
                    domain,
                    path.stem,
                    KeyAlgorithm.ED25519,
                    path.read_bytes(),
                    base64.b64encode(raw).decode(),
                )
            )
    return keys
