"""IMAP rendering of a MessageSummary: ENVELOPE, BODY and BODYSTRUCTURE values.

Pure functions producing IMAP response octets. Strings are quoted when they hold only
7-bit text without CR, LF, NUL and are not longer than QUOTED_MAX; otherwise they are
sent as literals ``{n}\\r\\n...``. Types and subtypes are sent lower-case (IMAP compares
them case-insensitively; RFC 9051 §7.5.2).
"""

from __future__ import annotations

import re

from postel.mail.address import Address
from postel.mail.envelope import Envelope
from postel.mail.mime import BodyPart
from postel.mail.params import Param
from postel.mail.summary import MessageSummary

__all__ = [
    "QUOTED_MAX",
    "imap_nstring",
    "render_body",
    "render_bodystructure",
    "render_envelope",
]

QUOTED_MAX = 1024
"""Longer strings are sent as literals (local policy; RFC 9051 §4.3 allows either)."""

_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
_WSP_RUN = re.compile(rb"[ \t\r\n]+")

_EMPTY_TEXT = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_TEXT_EXT = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
"""What a multipart without any part shows as its one part (the grammar needs one;
RFC 9051 §9 body-type-mpart), as Dovecot does."""


def imap_nstring(value: bytes | None) -> bytes:
    """NIL, a quoted string with ``\\`` and ``"`` escaped, or a literal; a NUL in
    ``value`` is left out (no IMAP string may carry one: CHAR8 excludes it).

    Spec: RFC 9051 §4.3, §9 (nstring, quoted, literal, CHAR8).
    """
    if value is None:
        return b"NIL"
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")
    if len(value) > QUOTED_MAX or _NEEDS_LITERAL.search(value):
        return b"{%d}\r\n" % len(value) + value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _for_humans(value: bytes | None) -> bytes | None:
    """Subject and display names: whitespace runs become one space, ends trimmed.

    Encoded words stay as they are (whitespace between them carries no meaning,
    RFC 2047 §6.2). This is how Dovecot presents these fields.
    """
    if value is None:
        return None
    return _WSP_RUN.sub(b" ", value).strip(b" ")


def _addresses(addrs: tuple[Address, ...]) -> bytes:
    if not addrs:
        return b"NIL"
    inner = b"".join(
        b"("
        + b" ".join(imap_nstring(v) for v in (_for_humans(a.name), a.adl, a.mailbox, a.host))
        + b")"
        for a in addrs
    )
    return b"(" + inner + b")"


def _envelope(env: Envelope) -> bytes:
    from_ = _addresses(env.from_)
    # Sender and Reply-To are most often From itself (RFC 3501 §7.4.2 defaults).
    sender = from_ if env.sender == env.from_ else _addresses(env.sender)
    reply_to = from_ if env.reply_to == env.from_ else _addresses(env.reply_to)
    fields = (
        imap_nstring(env.date),
        imap_nstring(_for_humans(env.subject)),
        from_,
        sender,
        reply_to,
        _addresses(env.to),
        _addresses(env.cc),
        _addresses(env.bcc),
        imap_nstring(env.in_reply_to),
        imap_nstring(env.message_id),
    )
    return b"(" + b" ".join(fields) + b")"


def render_envelope(summary: MessageSummary) -> bytes:
    """The ENVELOPE value of the message. Spec: RFC 9051 §7.5.2 (ENVELOPE)."""
    return _envelope(summary.envelope)


def render_body(summary: MessageSummary) -> bytes:
    """The BODY value (no extension data). Spec: RFC 9051 §7.5.2 (BODY)."""
    return _part(summary.body, extensible=False)


def render_bodystructure(summary: MessageSummary, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (``extensible=True``) or BODY (``False``) of the message.

    Spec: RFC 9051 §7.5.2 (BODYSTRUCTURE), RFC 3501 §7.4.2.
    """
    return _part(summary.body, extensible=extensible)


def _params(params: tuple[Param, ...]) -> bytes:
    if not params:
        return b"NIL"
    return (
        b"(" + b" ".join(imap_nstring(p.name) + b" " + imap_nstring(p.value) for p in params) + b")"
    )


def _str(value: str) -> bytes:
    return imap_nstring(value.encode("latin-1"))


def _disposition(part: BodyPart) -> bytes:
    if part.disposition is None:
        return b"NIL"
    return b"(" + imap_nstring(part.disposition) + b" " + _params(part.disposition_params) + b")"


def _language(part: BodyPart) -> bytes:
    if not part.language:
        return b"NIL"
    return b"(" + b" ".join(imap_nstring(x) for x in part.language) + b")"


def _part(part: BodyPart, *, extensible: bool) -> bytes:
    if part.type == "multipart" and not part.opaque:
        return _multipart(part, extensible=extensible)
    fields = [
        _str(part.type),
        _str(part.subtype),
        _params(part.params),
        imap_nstring(part.content_id),
        imap_nstring(part.description),
        imap_nstring(part.encoding if part.encoding is not None else b"7bit"),
        b"%d" % part.body_length,
    ]
    if part.message is not None:
        fields.append(_envelope(part.message.envelope))
        fields.append(_part(part.message.body, extensible=extensible))
        fields.append(b"%d" % part.body_lines)
    elif part.type == "text":
        fields.append(b"%d" % part.body_lines)
    if extensible:
        fields.append(imap_nstring(part.md5))
        fields.extend(_extension(part))
    return b"(" + b" ".join(fields) + b")"


def _extension(part: BodyPart) -> list[bytes]:
    return [_disposition(part), _language(part), imap_nstring(part.location)]


def _multipart(part: BodyPart, *, extensible: bool) -> bytes:
    children = b"".join(_part(p, extensible=extensible) for p in part.parts)
    if not children:
        children = _EMPTY_TEXT_EXT if extensible else _EMPTY_TEXT
    out = [children, _str(part.subtype)]
    if extensible:
        out.append(_params(part.params))
        out.extend(_extension(part))
    return b"(" + b" ".join(out) + b")"
