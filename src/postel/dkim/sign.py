"""Signing outgoing mail with dkimpy: relaxed/relaxed, SHA-256, a fixed list of header
fields with the most important ones over-signed (listed once more than they occur, so
that a field added later breaks the signature).

Spec: RFC 6376 §3.4 (canonicalization), §3.5 (h=), §5.4 (which fields), §8.15
(over-signing); RFC 8463 (ed25519-sha256).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import dkim
from postel.dkim.keys import DkimKey, KeyAlgorithm, load_keys
from postel.mail.address import parse_address_list
from postel.mail.header import split_header

OVERSIGNED = (b"from", b"to", b"subject", b"date")
"""Signed one extra time each (RFC 6376 §8.15)."""
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-id",
    b"list-unsubscribe",
)
"""Fields signed when present. Spec: RFC 6376 §5.4.1."""


class SigningError(Exception):
    """dkimpy refused to sign (e.g. no From: field)."""


_FROM_FIELD = re.compile(rb"(?im)^from[ \t]*:")


def sign_message(message: bytes, key: DkimKey) -> bytes:
    """The ``DKIM-Signature:`` field (CRLF-terminated, folded) for ``message`` (the
    whole message as it will be sent). Raises SigningError. Spec: RFC 6376 §5."""
    if not _FROM_FIELD.search(message.split(b"\r\n\r\n", 1)[0]):
        raise SigningError("no From: field to sign (RFC 6376 §5.4, RFC 5322 §3.6)")
    include = list(SIGNED_HEADERS) + list(OVERSIGNED)
    private = key.private_pem
    if key.algorithm is KeyAlgorithm.ED25519:
        # dkimpy wants the raw 32-octet seed, base64-encoded.
        loaded = serialization.load_pem_private_key(private, password=None)
        assert isinstance(loaded, ed25519.Ed25519PrivateKey)
        seed = loaded.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        private = base64.b64encode(seed)
    try:
        field = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            private,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.signature_algorithm,
            include_headers=include,
        )
    except dkim.DKIMException as exc:
        raise SigningError(str(exc)) from exc
    return bytes(field)


def sign_as_author(message: bytes, dkim_dir: Path) -> bytes:
    """The ``DKIM-Signature`` fields for ``message`` made with every key of the domain
    of its first From: address in ``dkim_dir`` (``b""`` when there is no From: domain
    or no key). For mail postel writes itself (delivery reports, DMARC reports), so
    that receivers can align it with its author domain. Blocking: run it in a thread.
    Raises SigningError. Spec: RFC 6376 §5; RFC 9989 (DKIM alignment)."""
    head = message.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    domain = None
    for field in split_header(head).fields:
        if field.matches(b"from"):
            hosts = [a.host for a in parse_address_list(field.value) if a.host]
            domain = hosts[0].decode("ascii", "replace").lower() if hosts else None
            break
    if domain is None:
        return b""
    return b"".join(sign_message(message, key) for key in load_keys(dkim_dir, domain))
