"""DATA content decoding: end-of-data detection, dot-unstuffing, bare line endings.

Rules (RELIABILITY.md D4; the SMTP smuggling class, CVE-2023-51764):

1. Only CRLF is a real line end. The message ends only at a line consisting of ``.``
   that starts after a real CRLF (or right after the DATA command) and is itself ended by
   a real CRLF: the literal octets ``<CRLF>.<CRLF>``. Nothing else ever ends DATA:
   ``<LF>.<LF>``, ``<CR>.<CR>``, ``<LF>.<CRLF>``, ``<CRLF>.<LF>``, ``<CR><LF>.<LF>`` ...
2. A bare LF or bare CR (one not part of CRLF) is, per mode:
   NORMALIZE: replaced by CRLF, so the stored message has only CRLF line ends;
   STRICT: a violation; the message is refused with 550 5.5.2 once it ends.
3. Dot-unstuffing: every line that begins with ``.`` loses that first ``.`` (RFC 5321
   §4.5.2), whether the line began after a real CRLF or after a normalised bare CR/LF.
   Consequence: a lone ``.`` line that did not end the message (say ``<LF>.<LF>``) is
   stored as an empty line, never as ``.``. The only ``.`` lines in stored content come
   from a client that dot-stuffed them (``..``), i.e. content the client really meant.
   So a stored message never holds a ``.`` line that some other parser could have read
   as the end of the data.
4. STRICT also refuses lines over ``limits.SMTP_TEXT_LINE_MAX`` octets (with CRLF).
5. The content is counted after unstuffing and normalisation; more than ``size_max``
   octets is refused with 552 5.3.4 once the message ends. After a violation, content is
   no longer handed out, only scanned for the end.

The decoder is incremental: between calls it keeps at most four undecided octets (a tail
that may begin ``<CRLF>.<CRLF>``).

Spec: RFC 5321 §4.1.1.4, §4.5.2, §2.3.8, §4.5.3.1.6, RFC 1870 §6.2.
"""

from __future__ import annotations

import enum

from postel import limits
from postel.smtp.reply import (
    BARE_LINE_END_IN_DATA,
    MESSAGE_TOO_BIG,
    TEXT_LINE_TOO_LONG,
    Reply,
)

_MARKER = b"\r\n.\r\n"
_END = b".\r\n"
_DOT = 0x2E
_TEXT_MAX = limits.SMTP_TEXT_LINE_MAX - 2


class BareLineEndings(enum.StrEnum):
    """What DATA does with a bare LF or bare CR in content (RELIABILITY.md D4)."""

    NORMALIZE = "normalize"
    """Turn each into CRLF."""
    STRICT = "strict"
    """Refuse the message with 550 5.5.2 (and lines over 998 octets too)."""


class DotReader:
    """Incremental decoder of one DATA message.

    ``feed(buf)`` consumes what it can from ``buf`` (a bytearray, shortened in place)
    and returns (content, ended). After ``ended``, ``violation`` says whether the message
    must be refused (and with which reply). The work is done with bytes.find, count and
    replace, so hostile line patterns cost no per-line Python work (RELIABILITY.md D7).

    Spec: RFC 5321 §4.5.2.
    """

    __slots__ = (
        "_line_len",
        "_line_start",
        "_mode",
        "_real_start",
        "_size",
        "_size_max",
        "violation",
    )

    def __init__(self, mode: BareLineEndings, size_max: int) -> None:
        self._mode = mode
        self._size_max = size_max
        self._size = 0
        self._line_start = True
        self._real_start = True
        self._line_len = 0
        self.violation: Reply | None = None

    def feed(self, buf: bytearray) -> tuple[bytes, bool]:
        """Decode from ``buf``; return (content, ended). Unless ``ended``, at most 4
        octets stay in ``buf`` (a possible start of ``<CRLF>.<CRLF>``); after the end,
        what follows it stays in ``buf``."""
        start = 0
        if self._line_start and buf:
            if buf[0] == _DOT:
                if self._real_start:
                    ahead = bytes(buf[:3])
                    if ahead == _END:
                        del buf[:3]
                        return b"", True
                    if _END.startswith(ahead):
                        return b"", False
                start = 1
                self._line_len = 1
            self._line_start = False
        end = buf.find(_MARKER, start)
        if end >= 0:
            region, consumed = bytes(buf[start : end + 2]), end + 5
        else:
            cut = len(buf) - _held_back(buf, start)
            region, consumed = bytes(buf[start:cut]), cut
            if region.endswith(b"\n"):
                self._line_start, self._real_start = True, False
        del buf[:consumed]
        return self._decode(region), end >= 0

    def _decode(self, region: bytes) -> bytes:
        crlf = region.count(b"\r\n")
        bare = region.count(b"\r") != crlf or region.count(b"\n") != crlf
        if bare and self._mode is BareLineEndings.STRICT:
            self.violation = self.violation or BARE_LINE_END_IN_DATA
        elif bare:
            region = region.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        if self._mode is BareLineEndings.STRICT and self.violation is None:
            self._check_lines(region)
        content = region.replace(b"\r\n.", b"\r\n")
        if self.violation is not None:
            return b""
        self._size += len(content)
        if self._size > self._size_max:
            self.violation = MESSAGE_TOO_BIG
            return b""
        return content

    def _check_lines(self, region: bytes) -> None:
        lines = region.split(b"\r\n")
        lengths = [self._line_len + len(lines[0]), *(len(line) for line in lines[1:])]
        self._line_len = lengths[-1]
        if max(lengths) > _TEXT_MAX and self.violation is None:
            self.violation = TEXT_LINE_TOO_LONG


def _held_back(buf: bytearray, start: int) -> int:
    """Length of the longest tail of ``buf[start:]`` that may begin ``<CRLF>.<CRLF>``
    (or a CRLF): it is kept until more octets decide it."""
    for size in (4, 3, 2, 1):
        if len(buf) - start >= size and buf.endswith(_MARKER[:size]):
            return size
    return 0
