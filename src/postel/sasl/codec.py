"""The base64 framing of SASL challenges and responses in IMAP, POP3 and SMTP.

A client response is one line of base64, ``*`` to cancel, or ``=`` for an empty initial
response (an empty line is an empty response later in the exchange). Decoding is
strict: only the base64 alphabet, correct padding, and the canonical encoding.

Spec: RFC 4954 §4, RFC 4959 §3, RFC 5034 §4, RFC 9051 §6.2.2, RFC 4648 §4.
"""

from __future__ import annotations

import base64
import binascii
import re

from postel.sasl.steps import CANCELLED, Cancelled, SaslError

SASL_LINE_MAX = 12288
"""Longest base64 response line accepted, without CRLF: what RFC 4954 §4 calls a
sufficient limit for deployed mechanisms (a longer line fails AUTH with 500 5.5.6); also
used for IMAP and POP3. Spec: RFC 4954 §4."""
SASL_RESPONSE_MAX = SASL_LINE_MAX // 4 * 3
"""Longest decoded response: what SASL_LINE_MAX base64 characters carry.
Spec: RFC 4648 §4."""

_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def decode_response(line: bytes) -> bytes | Cancelled:
    """Decode one client response line (without its CRLF): ``*`` gives CANCELLED, ``=``
    or an empty line gives b"", anything else must be canonical base64.

    Raises SaslError for a line longer than SASL_LINE_MAX, characters outside the base64
    alphabet, bad padding or non-zero trailing bits.
    Spec: RFC 4954 §4, RFC 4959 §3, RFC 5034 §4, RFC 4648 §3.5.
    """
    if len(line) > SASL_LINE_MAX:
        raise SaslError(f"SASL response longer than {SASL_LINE_MAX} octets")
    if line == b"*":
        return CANCELLED
    if line in (b"", b"="):
        return b""
    return strict_b64decode(line)


def strict_b64decode(text: bytes) -> bytes:
    """Decode canonical base64: alphabet only, padding to a multiple of four, zero
    trailing bits. Raises SaslError. Spec: RFC 4648 §3.3, §3.5, §4."""
    if _BASE64.fullmatch(text) is None:
        raise SaslError("not valid base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SaslError("not valid base64") from None
    if base64.b64encode(data) != text:
        raise SaslError("not canonical base64")
    return data


def encode_challenge(data: bytes) -> bytes:
    """Base64 of a server challenge (or of additional data with success); an empty
    challenge is an empty string. The caller adds ``334 ``, ``+ `` and CRLF.
    Spec: RFC 4954 §4, RFC 9051 §7.5, RFC 5034 §4, RFC 4648 §4.
    """
    return base64.b64encode(data)
