"""DKIM for postel: signing keys (RSA-2048 and Ed25519) and signing outgoing mail with
dkimpy. Verification comes with inbound sender authentication.

Spec: RFC 6376, RFC 8463 (Ed25519), RFC 8301 (key sizes, SHA-256).
"""

from postel.dkim.keys import (
    DkimKey,
    KeyAlgorithm,
    dns_record,
    generate_key,
    load_keys,
    write_key,
)
from postel.dkim.sign import SIGNED_HEADERS, sign_message

__all__ = [
    "SIGNED_HEADERS",
    "DkimKey",
    "KeyAlgorithm",
    "dns_record",
    "generate_key",
    "load_keys",
    "sign_message",
    "write_key",
]
