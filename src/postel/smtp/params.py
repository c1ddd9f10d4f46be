"""MAIL and RCPT parameters (ESMTP keywords), parsed into typed values.

Bounds defined here: ``ENVID_MAX = 100`` characters (RFC 3461 §4.4), ``ORCPT_MAX = 500``
characters (RFC 3461 §4.2), ``SIZE_DIGITS_MAX = 20`` digits (RFC 1870 §3).

Spec: RFC 5321 §4.1.2 (Mail-parameters), RFC 1870, RFC 6152, RFC 3030, RFC 6531, RFC 3461.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeVar

from postel.smtp.grammar import SmtpSyntaxError
from postel.smtp.reply import MESSAGE_TOO_BIG, Reply

ENVID_MAX = 100
"""ENVID length in characters (after xtext decoding). Spec: RFC 3461 §4.4."""
ORCPT_MAX = 500
"""ORCPT length in characters. Spec: RFC 3461 §4.2."""
SIZE_DIGITS_MAX = 20
"""Digits accepted in SIZE=. Spec: RFC 1870 §3 (size-value = 1*20DIGIT)."""

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_VALUE_UTF8 = re.compile(r"(?:[\x21-\x3c\x3e-\x7e]|[^\x00-\x7f])+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_XTEXT_UTF8 = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|[^\x00-\x7f]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
_UTF8_ADDR = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]|\\x\{[0-9A-Fa-f]{2,6}\})+")
_UTF8_ADDR_UNITEXT = re.compile(
    r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\x\{[0-9A-Fa-f]{2,6}\})+"
)
_EMBEDDED_UNICODE = re.compile(r"\\x\{([0-9A-Fa-f]{2,6})\}")
_E = TypeVar("_E", bound=enum.StrEnum)


class Body(enum.StrEnum):
    """BODY= values. Spec: RFC 6152 §2, RFC 3030 §3."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"
    BINARY_MIME = "BINARYMIME"


class Ret(enum.StrEnum):
    """RET= values. Spec: RFC 3461 §4.3."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(enum.StrEnum):
    """NOTIFY= values. Spec: RFC 3461 §4.1."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


DEFAULT_NOTIFY = frozenset({Notify.FAILURE, Notify.DELAY})
"""What a recipient without NOTIFY asks for. Spec: RFC 3461 §4.1."""


def asks_for(notify: frozenset[Notify] | None, kind: Notify) -> bool:
    """Whether a recipient's NOTIFY (None: none given, so DEFAULT_NOTIFY) asks for a
    report of ``kind``. Spec: RFC 3461 §4.1."""
    asked = DEFAULT_NOTIFY if notify is None else notify
    return kind in asked and Notify.NEVER not in asked


@dataclass(frozen=True, slots=True)
class Offered:
    """Which parameters the session offers (from the EHLO reply); none after HELO."""

    size_max: int
    eight_bit_mime: bool
    binary_mime: bool
    smtputf8: bool
    dsn: bool
    requiretls: bool = False


@dataclass(frozen=True, slots=True)
class MailParams:
    """Parameters of MAIL FROM. ``envid`` is xtext-decoded.

    Spec: RFC 1870 §3 (SIZE), RFC 6152 (BODY), RFC 6531 §3.4 (SMTPUTF8), RFC 3461 §4.3-4.4,
    RFC 8689 §4.1 (REQUIRETLS).
    """

    size: int | None = None
    body: Body | None = None
    smtputf8: bool = False
    ret: Ret | None = None
    envid: str | None = None
    requiretls: bool = False


@dataclass(frozen=True, slots=True)
class Orcpt:
    """ORCPT=addr-type;xtext, decoded. Spec: RFC 3461 §4.2."""

    addr_type: str
    address: str


@dataclass(frozen=True, slots=True)
class RcptParams:
    """Parameters of RCPT TO. ``notify`` None means the client gave no NOTIFY.

    Spec: RFC 3461 §4.1-4.2.
    """

    notify: frozenset[Notify] | None = None
    orcpt: Orcpt | None = None


def _unknown(keyword: str) -> SmtpSyntaxError:
    return SmtpSyntaxError(Reply(555, "5.5.4", f"Unsupported parameter {keyword[:20]}"))


def _invalid(keyword: str) -> SmtpSyntaxError:
    return SmtpSyntaxError(Reply(501, "5.5.4", f"Invalid {keyword} parameter"))


def split_params(text: str, smtputf8: bool) -> list[tuple[str, str | None]]:
    """Split ``esmtp-param *(SP esmtp-param)`` into (KEYWORD, value) pairs.

    Runs of spaces are tolerated. Duplicate keywords are refused (501 5.5.4).
    Spec: RFC 5321 §4.1.2, RFC 6531 §3.3 (UTF-8 in esmtp-value).
    """
    pairs: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    value_re = _VALUE_UTF8 if smtputf8 else _VALUE
    for token in text.split():
        keyword, eq, value = token.partition("=")
        if _KEYWORD.fullmatch(keyword) is None or (eq and value_re.fullmatch(value) is None):
            raise SmtpSyntaxError(Reply(501, "5.5.4", "Syntax error in parameters"))
        keyword = keyword.upper()
        if keyword in seen:
            raise _invalid(keyword)
        seen.add(keyword)
        pairs.append((keyword, value if eq else None))
    return pairs


def decode_xtext(text: str, smtputf8: bool = False) -> str:
    """Decode xtext (``+XX`` hex escapes). Raises SmtpSyntaxError 501 5.5.4, also when
    the decoded text has control characters (RFC 3461 §4: xtext carries printable text).

    Spec: RFC 3461 §4 (xtext), RFC 6533 §3 (UTF-8 in it with SMTPUTF8).
    """
    if (_XTEXT_UTF8 if smtputf8 else _XTEXT).fullmatch(text) is None:
        raise SmtpSyntaxError(Reply(501, "5.5.4", "Invalid xtext"))
    decoded = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)
    if not decoded.isprintable():
        # ENVID and ORCPT end up in DSN header fields: no CR, LF, NUL or other controls.
        raise SmtpSyntaxError(Reply(501, "5.5.4", "Control character in xtext"))
    return decoded


def decode_utf8_addr(text: str, smtputf8: bool = False) -> str:
    """Decode an ORCPT address of type ``utf-8``: utf-8-addr-xtext, or with SMTPUTF8
    utf-8-addr-unitext, whose only escape is ``\\x{HEX}`` (a Unicode scalar value; no
    ``+``, ``=`` or other backslash). Raises SmtpSyntaxError 501 5.5.4 for anything
    else, and when the decoded text has control characters.

    Spec: RFC 6533 §3 (utf-8-addr-xtext, utf-8-addr-unitext, EmbeddedUnicodeChar).
    """
    if (_UTF8_ADDR_UNITEXT if smtputf8 else _UTF8_ADDR).fullmatch(text) is None:
        raise SmtpSyntaxError(Reply(501, "5.5.4", "Invalid utf-8-addr-xtext"))
    points = [int(m.group(1), 16) for m in _EMBEDDED_UNICODE.finditer(text)]
    if any(p > 0x10FFFF or 0xD800 <= p <= 0xDFFF for p in points):
        raise SmtpSyntaxError(Reply(501, "5.5.4", "Invalid code point in utf-8-addr-xtext"))
    decoded = _EMBEDDED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if not decoded.isprintable():
        raise SmtpSyntaxError(Reply(501, "5.5.4", "Control character in utf-8-addr-xtext"))
    return decoded


def encode_utf8_addr(address: str) -> str:
    """``address`` as utf-8-addr-xtext: every character outside QCHAR (non-ASCII,
    controls, space, ``+``, ``=``, ``\\``) becomes ``\\x{HEX}``, so the result is ASCII.
    The inverse of ``decode_utf8_addr``. Spec: RFC 6533 §3."""
    return "".join(
        c if 0x21 <= ord(c) <= 0x7E and c not in "+=\\" else f"\\x{{{ord(c):02X}}}" for c in address
    )


def parse_mail_params(text: str, offered: Offered | None) -> MailParams:
    """Parse the parameters after ``MAIL FROM:<path>``.

    Args:
        text: everything after the path's ``>``.
        offered: the session's extensions; None after HELO (then any parameter is 555).

    Raises:
        SmtpSyntaxError: 555 5.5.4 unknown or not offered (REQUIRETLS is offered only
            over TLS), 501 5.5.4 bad value, 552 5.3.4 SIZE over the limit (RFC 1870 §6.1).

    Spec: RFC 5321 §4.1.1.2, RFC 1870, RFC 6152, RFC 3030 §3, RFC 6531 §3.4, RFC 3461 §4,
    RFC 8689 §4.1.
    """
    utf8 = offered is not None and offered.smtputf8 and "SMTPUTF8" in text.upper().split()
    result: dict[str, str | None] = dict(split_params(text, utf8))
    if offered is None:
        if result:
            raise _unknown(next(iter(result)))
        return MailParams()
    size: int | None = None
    body: Body | None = None
    ret: Ret | None = None
    envid: str | None = None
    smtputf8 = requiretls = False
    for keyword, value in result.items():
        if keyword == "SIZE":
            size = _size(value, offered)
        elif keyword == "BODY" and (offered.eight_bit_mime or offered.binary_mime):
            body = _body(value, offered)
        elif keyword == "SMTPUTF8" and offered.smtputf8:
            if value is not None:
                raise _invalid(keyword)
            smtputf8 = True
        elif keyword == "REQUIRETLS" and offered.requiretls:
            if value is not None:
                raise _invalid(keyword)
            requiretls = True
        elif keyword == "RET" and offered.dsn:
            ret = _enum(Ret, keyword, value)
        elif keyword == "ENVID" and offered.dsn:
            envid = decode_xtext(value or "", utf8)
            if not envid or len(envid) > ENVID_MAX:
                raise _invalid(keyword)
        else:
            raise _unknown(keyword)
    return MailParams(
        size=size, body=body, smtputf8=smtputf8, ret=ret, envid=envid, requiretls=requiretls
    )


def _size(value: str | None, offered: Offered) -> int:
    if value is None or not value.isdigit() or not value.isascii():
        raise _invalid("SIZE")
    if len(value) > SIZE_DIGITS_MAX:
        raise _invalid("SIZE")
    size = int(value)
    if size > offered.size_max:
        raise SmtpSyntaxError(MESSAGE_TOO_BIG)
    return size


def _body(value: str | None, offered: Offered) -> Body:
    body = _enum(Body, "BODY", value)
    if body is Body.BINARY_MIME and not offered.binary_mime:
        raise _invalid("BODY")
    return body


def _enum(kind: type[_E], keyword: str, value: str | None) -> _E:
    try:
        return kind((value or "").upper())
    except ValueError:
        raise _invalid(keyword) from None


def parse_rcpt_params(text: str, offered: Offered | None, smtputf8: bool) -> RcptParams:
    """Parse the parameters after ``RCPT TO:<path>``.

    Args:
        text: everything after the path's ``>``.
        offered: the session's extensions; None after HELO.
        smtputf8: the transaction's MAIL carried SMTPUTF8 (UTF-8 allowed in ORCPT).

    Raises:
        SmtpSyntaxError: 555 5.5.4 unknown or not offered, 501 5.5.4 bad value.

    Spec: RFC 3461 §4.1-4.2, RFC 6533 §3.
    """
    result = dict(split_params(text, smtputf8))
    if result and (offered is None or not offered.dsn):
        raise _unknown(next(iter(result)))
    notify: frozenset[Notify] | None = None
    orcpt: Orcpt | None = None
    for keyword, value in result.items():
        if keyword == "NOTIFY":
            notify = _notify(value)
        elif keyword == "ORCPT":
            orcpt = _orcpt(value, smtputf8)
        else:
            raise _unknown(keyword)
    return RcptParams(notify=notify, orcpt=orcpt)


def _notify(value: str | None) -> frozenset[Notify]:
    try:
        items = frozenset(Notify(item.upper()) for item in (value or "").split(","))
    except ValueError:
        raise _invalid("NOTIFY") from None
    if Notify.NEVER in items and len(items) > 1:
        raise _invalid("NOTIFY")
    return items


def _orcpt(value: str | None, smtputf8: bool) -> Orcpt:
    addr_type, semi, encoded = (value or "").partition(";")
    if not semi or _KEYWORD.fullmatch(addr_type) is None:
        raise _invalid("ORCPT")
    if addr_type.upper() == "UTF-8":
        address = decode_utf8_addr(encoded, smtputf8)
    else:
        address = decode_xtext(encoded, smtputf8)
    if not address or len(address) > ORCPT_MAX:
        raise _invalid("ORCPT")
    return Orcpt(addr_type.upper(), address)
