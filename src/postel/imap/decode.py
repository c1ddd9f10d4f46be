"""Content-Transfer-Encoding decoding for BINARY[...] and SEARCH text.

Real mail is often slightly broken, so both decoders are lenient and never fail on
their input:

* base64: every octet outside the base64 alphabet (line breaks, spaces, garbage) is
  ignored; the first ``=`` ends the data, so text appended after the padding (a
  mailing list footer, say) is not decoded into garbage, as in Dovecot and Python's
  ``email``. A final group of 2 or 3 characters without padding gives 1 or 2 octets; a
  lone final character is dropped. Ignoring octets outside the alphabet is what
  RFC 2045 §6.8 asks of a decoder.
* quoted-printable: trailing whitespace on a line is deleted, ``=`` at the end of a
  line is a soft line break, ``=XX`` (upper- or lower-case hex) is an octet, and any
  other ``=`` is kept as it is. Hard line breaks are kept as written.
* 7bit, 8bit, binary (and no Content-Transfer-Encoding field): the octets unchanged.

Any other encoding is unknown: :func:`decode_transfer` raises
:class:`UnknownTransferEncoding`, which the FETCH BINARY path answers with
``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3).
"""

from __future__ import annotations

import binascii
import re
from enum import StrEnum

from postel.errors import ProtocolError

__all__ = [
    "TransferEncoding",
    "UnknownTransferEncoding",
    "decode_base64",
    "decode_quoted_printable",
    "decode_transfer",
    "transfer_encoding",
]

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_CTE_TOKEN = re.compile(rb"[^\s;()]+")
_QP_TRAILING = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_QP_ESCAPE = re.compile(rb"=(?:([0-9A-Fa-f]{2})|\r?\n|\Z)")


class TransferEncoding(StrEnum):
    """The Content-Transfer-Encoding values postel decodes. Spec: RFC 2045 §6.1."""

    SEVEN_BIT = "7bit"
    EIGHT_BIT = "8bit"
    BINARY = "binary"
    QUOTED_PRINTABLE = "quoted-printable"
    BASE64 = "base64"


class UnknownTransferEncoding(ProtocolError):
    """A part's Content-Transfer-Encoding is not one of RFC 2045's; ``encoding`` is the
    value as written (at most 100 octets). IMAP answers ``NO [UNKNOWN-CTE]``.

    Spec: RFC 3516 §4.3, RFC 9051 §7.1 (UNKNOWN-CTE).
    """

    def __init__(self, encoding: bytes) -> None:
        self.encoding = encoding[:100]
        super().__init__(f"unknown content-transfer-encoding {self.encoding!r}")


def transfer_encoding(value: bytes | None) -> TransferEncoding:
    """The encoding named by a Content-Transfer-Encoding field value.

    ``None`` (no field) is 7bit. Case and surrounding whitespace or comments are ignored.
    Raises UnknownTransferEncoding for any other token (``x-uuencode`` included).

    Spec: RFC 2045 §6.1 (values are case-insensitive; 7bit is the default).
    """
    if value is None:
        return TransferEncoding.SEVEN_BIT
    m = _CTE_TOKEN.search(value)
    if m is None:
        return TransferEncoding.SEVEN_BIT
    token = m.group().lower().decode("latin-1")
    try:
        return TransferEncoding(token)
    except ValueError:
        raise UnknownTransferEncoding(value.strip()) from None


def decode_transfer(data: bytes, encoding: bytes | None) -> bytes:
    """Decode ``data`` (a part's body octets) per its Content-Transfer-Encoding value.

    Raises UnknownTransferEncoding when ``encoding`` is not known (see
    :func:`transfer_encoding`); never fails on the data itself.

    Spec: RFC 2045 §6, RFC 3516 §4.2.
    """
    cte = transfer_encoding(encoding)
    if cte is TransferEncoding.BASE64:
        return decode_base64(data)
    if cte is TransferEncoding.QUOTED_PRINTABLE:
        return decode_quoted_printable(data)
    return data


def decode_base64(data: bytes) -> bytes:
    """Decode base64 body octets leniently (see the module docstring). Never raises.

    Spec: RFC 2045 §6.8 (characters outside the alphabet are to be ignored).
    """
    end = data.find(b"=")
    cleaned = (data if end < 0 else data[:end]).translate(None, delete=_B64_JUNK)
    size = len(cleaned)
    if size % 4 == 1:
        cleaned = cleaned[:-1]
        size -= 1
    return binascii.a2b_base64(cleaned + b"=" * (-size % 4)) if size else b""


def decode_quoted_printable(data: bytes) -> bytes:
    """Decode quoted-printable body octets leniently (see the module docstring).

    Never raises. Spec: RFC 2045 §6.7 (rules 1-5 and note 3: trailing whitespace and a
    malformed ``=`` are handled as a robust decoder should).
    """
    stripped = _QP_TRAILING.sub(b"", data)
    return _QP_ESCAPE.sub(_qp_octet, stripped)


def _qp_octet(m: re.Match[bytes]) -> bytes:
    hexa = m.group(1)
    return b"" if hexa is None else bytes((int(hexa, 16),))
