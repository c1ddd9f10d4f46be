"""Trace header fields: Received, Return-Path, Delivered-To, and a loop-detection scan.

Every value put into a generated field has CR, LF and NUL removed first, so nothing a
peer sends can start a new header line (RELIABILITY.md test 8). Generated lines are
folded well below 998 octets (RFC 5322 §2.1.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from postel import limits
from postel.mail.header import find_header_end, split_header

__all__ = [
    "RECEIVED_LINE_MAX",
    "TraceInfo",
    "delivered_to_field",
    "format_date",
    "received_field",
    "return_path_field",
    "trace_info",
]

RECEIVED_LINE_MAX = 78
"""Preferred folded line length of generated fields. Spec: RFC 5322 §2.1.1."""
TRACE_VALUE_MAX = 512
"""Octets kept of any one inserted value (HELO name, address, TLS description), so
that no generated line can approach 998 octets. Spec: RFC 5321 §4.5.3.1 (local bound)."""

_UNSAFE = re.compile(rb"[\r\n\x00]")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the top header block says about the message's path so far.

    Spec: RFC 5321 §6.3 (loop detection by counting Received fields).
    """

    received_count: int
    delivered_to: tuple[str, ...]


def _clean(value: str) -> bytes:
    """UTF-8 octets of ``value`` without control or format characters (C0, DEL, C1,
    U+2028/U+2029 and the like: each becomes ``?``), at most TRACE_VALUE_MAX octets.

    Spec: RFC 5322 §3.2.5 (header text is printable), RFC 6532 §3.2; RELIABILITY.md test 8.
    """
    text = value[:TRACE_VALUE_MAX]
    if not text.isprintable():  # (the ASCII space is printable; other separators are not)
        text = "".join(c if c.isprintable() or c == " " else "?" for c in text)
    raw = _UNSAFE.sub(b"", text.encode("utf-8", "replace"))
    return raw[:TRACE_VALUE_MAX]


def _helo_token(value: str) -> bytes:
    """The EHLO/HELO argument as it may appear after ``from``: its first word, with only
    the characters of a domain or address literal kept (letters, digits, ``.-_:[]``), so
    a client cannot write a fake ``(host [ip])`` or ``by`` clause. Spec: RFC 5321 §4.4
    (the from clause carries the EHLO domain), §4.1.3."""
    words = value.split()
    word = words[0] if words else ""
    kept = "".join(c for c in word if c.isalnum() or c in ".-_:[]")
    return _clean(kept)


def _comment_safe(value: bytes) -> bytes:
    """Make text usable inside a comment: parentheses and backslashes are escaped."""
    return re.sub(rb"([()\\])", rb"\\\1", value)


def format_date(date: datetime) -> bytes:
    """RFC 5322 date-time, e.g. ``Mon, 6 Feb 1993 02:53:47 -0800``.

    A naive datetime is taken as UTC. Spec: RFC 5322 §3.3.
    """
    offset = date.utcoffset()
    minutes = 0 if offset is None else int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    text = (
        f"{_DAYS[date.weekday()]}, {date.day} {_MONTHS[date.month - 1]} {date.year:04d} "
        f"{date.hour:02d}:{date.minute:02d}:{date.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )
    return text.encode("ascii")


def _fold(name: bytes, items: list[bytes]) -> bytes:
    """``name: item item ...`` folded before items so lines stay near RECEIVED_LINE_MAX."""
    lines: list[bytes] = []
    line = name + b":"
    for item in items:
        if len(line) + 1 + len(item) > RECEIVED_LINE_MAX and line != name + b":":
            lines.append(line)
            line = b"\t" + item
        else:
            line += b" " + item
    lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def received_field(
    from_helo: str,
    from_ip: str,
    from_rdns: str | None,
    by_host: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    tls: str | None,
    date: datetime,
) -> bytes:
    """A Received field for a message accepted over SMTP, CRLF-terminated and folded.

    ``from (helo (rdns [ip])) by by_host (tls) with protocol id queue_id for <rcpt>;
    date``; ``protocol`` is a WITH keyword such as SMTP, ESMTP, ESMTPS, ESMTPSA,
    UTF8SMTPS (RFC 3848, RFC 6531). CR, LF and NUL are removed from every value.

    Spec: RFC 5321 §4.4, RFC 5322 §3.6.7, RFC 3848.
    """
    peer = _comment_safe(_clean(from_rdns or "unknown")) + b" [" + _clean(from_ip) + b"]"
    items = [
        b"from",
        _helo_token(from_helo) or b"unknown",
        b"(" + peer + b")",
        b"by",
        _clean(by_host),
    ]
    if tls:
        items.append(b"(" + _comment_safe(_clean(tls)) + b")")
    items += [b"with", _clean(protocol) or b"SMTP", b"id", _clean(queue_id)]
    if recipient is not None:
        items += [b"for", b"<" + _clean(recipient) + b">;"]
    else:
        items[-1] += b";"
    items.append(format_date(date))
    return _fold(b"Received", items)


def return_path_field(reverse_path: str) -> bytes:
    """``Return-Path: <reverse-path>`` CRLF (``<>`` for the null path).

    Spec: RFC 5321 §4.4, RFC 5322 §3.6.7.
    """
    return b"Return-Path: <" + _clean(reverse_path.strip("<>")) + b">\r\n"


def delivered_to_field(address: str) -> bytes:
    """``Delivered-To: address`` CRLF, the local-delivery trace used for loop detection.

    Spec: RFC 9228 §4.
    """
    return b"Delivered-To: " + _clean(address) + b"\r\n"


def trace_info(header_block: bytes) -> TraceInfo:
    """Count Received fields and list Delivered-To addresses of the top header block.

    Only the first limits.SMTP_HEADER_BLOCK_MAX octets are scanned. Never raises.

    Spec: RFC 5321 §6.3, RFC 9228 §4.
    """
    data = header_block[: limits.SMTP_HEADER_BLOCK_MAX]
    low = data[: find_header_end(data)[0]].lower()
    if b"received" not in low and b"delivered-to" not in low:
        return TraceInfo(0, ())  # neither trace field: nothing to split
    header = split_header(data)
    received = 0
    delivered: list[str] = []
    for field in header.fields:
        name = field.name.lower()
        if name == b"received":
            received += 1
        elif name == b"delivered-to":
            value = _UNSAFE.sub(b"", field.value).strip()
            delivered.append(value.decode("utf-8", "replace"))
    return TraceInfo(received, tuple(delivered))
