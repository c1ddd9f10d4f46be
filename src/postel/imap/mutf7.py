"""Modified UTF-7, the mailbox name encoding of IMAP4rev1 sessions.

Printable US-ASCII other than ``&`` stands for itself, ``&`` is written ``&-``, and any
run of other characters is UTF-16BE in modified BASE64 (``,`` for ``/``, no padding)
between ``&`` and ``-``. Decoding is strict: only the one canonical form of each name is
accepted, so two spellings never name the same mailbox.

Spec: RFC 3501 §5.1.3.
"""

from __future__ import annotations

import binascii

from postel.errors import ProtocolError

__all__ = ["MUtf7Error", "decode", "encode"]


class MUtf7Error(ProtocolError):
    """Text that is not canonical modified UTF-7. Spec: RFC 3501 §5.1.3."""


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_B64_SET = frozenset(_B64)


def _direct(ch: str) -> bool:
    return "\x20" <= ch <= "\x7e"


def encode(name: str) -> str:
    """``name`` in modified UTF-7 (ASCII only). Spec: RFC 3501 §5.1.3."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be", "surrogatepass")
            b64 = binascii.b2a_base64(raw, newline=False).rstrip(b"=")
            out.append("&" + b64.replace(b"/", b",").decode("ascii") + "-")
            run.clear()

    for ch in name:
        if _direct(ch):
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(text: str | bytes) -> str:
    """Decode a modified UTF-7 name, refusing every non-canonical form.

    Raises MUtf7Error for octets outside 0x20-0x7E, an unterminated ``&``, bad or
    non-zero-padded BASE64, incomplete or ill-formed UTF-16, a shifted run that encodes
    printable ASCII or follows another shifted run directly. Spec: RFC 3501 §5.1.3.
    """
    data = text.encode("latin-1", "replace") if isinstance(text, str) else text
    if isinstance(text, str) and not text.isascii():
        raise MUtf7Error("mailbox name is not 7-bit")
    out: list[str] = []
    i = 0
    last_shift_end = -1
    while i < len(data):
        c = data[i]
        if not 0x20 <= c <= 0x7E:
            raise MUtf7Error("mailbox name has a non-printable or 8-bit octet")
        if c != 0x26:  # "&"
            out.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise MUtf7Error("unterminated '&' shift in mailbox name")
        if end == i + 1:
            out.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            raise MUtf7Error("adjacent shifted runs in mailbox name")
        out.append(_decode_run(data[i + 1 : end]))
        i = end + 1
        last_shift_end = i
    return "".join(out)


def _decode_run(b64: bytes) -> str:
    if any(c not in _B64_SET for c in b64):
        raise MUtf7Error("bad modified BASE64 in mailbox name")
    if len(b64) % 4 == 1:
        raise MUtf7Error("truncated modified BASE64 in mailbox name")
    padded = b64.replace(b",", b"/") + b"=" * (-len(b64) % 4)
    raw = binascii.a2b_base64(padded)
    bits = len(b64) * 6
    if bits - len(raw) * 8 >= 6 or len(raw) % 2:
        raise MUtf7Error("modified BASE64 does not hold whole UTF-16 units")
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=") != b64.replace(b",", b"/"):
        raise MUtf7Error("non-zero padding bits in modified BASE64")
    try:
        chars = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise MUtf7Error("ill-formed UTF-16 in mailbox name") from exc
    if any(_direct(ch) for ch in chars):
        raise MUtf7Error("shifted run encodes printable ASCII")
    return chars
