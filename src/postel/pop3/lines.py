"""Bounded assembly of client lines for the POP3 core.

A line ends at LF; a CR right before it is removed, so CRLF and a bare LF both end a
line. A line longer than the bound (line end included) is not kept: the reader drops
octets up to its end and reports it once as too long. Between calls the reader holds
at most the bound plus the last chunk fed.

Spec: RFC 1939 §3 (CRLF-terminated commands), RFC 2449 §4 (255-octet command lines).
"""

from __future__ import annotations

import enum

__all__ = ["LineReader", "ReadStatus"]


class ReadStatus(enum.Enum):
    """What ``LineReader.read`` found instead of a line."""

    NEED_DATA = enum.auto()
    """No complete line is buffered yet."""
    TOO_LONG = enum.auto()
    """A line over the bound ended (its octets were dropped)."""


class LineReader:
    """Buffered client octets cut into lines of at most ``bound`` octets.
    Spec: RFC 2449 §4."""

    __slots__ = ("_buf", "_discarding")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append client octets."""
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (after STLS, on close)."""
        self._buf.clear()
        self._discarding = False

    def read(self, bound: int) -> bytes | ReadStatus:
        """The next line without its line end, or a ReadStatus. ``bound`` counts the
        line end."""
        buf = self._buf
        while True:
            if self._discarding:
                end = buf.find(b"\n")
                if end < 0:
                    buf.clear()
                    return ReadStatus.NEED_DATA
                del buf[: end + 1]
                self._discarding = False
                return ReadStatus.TOO_LONG
            end = buf.find(b"\n", 0, bound)
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(buf) < bound:
                return ReadStatus.NEED_DATA
            self._discarding = True
