"""Reading the messages of an mbox file the way imaptest appends them.

Each message runs from the line after its ``From `` separator line up to (not
including) the next separator line, so the blank line before the next separator stays
part of the message. Bare LF line ends become CRLF. The separator's date is the
INTERNALDATE given to APPEND (UTC unless the line names a numeric zone). A ``From `` line only counts as a
separator when it carries a date, as in ``From user@domain  Fri Feb 22 17:06:23 2008``.

Spec: RFC 4155 (the mbox format), RFC 9051 §6.3.12 (APPEND date-time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FROM_LINE_RE = re.compile(
    rb"From \S*\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+"
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})\s+"
    rb"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+"
    rb"(?:[A-Za-z]{3,5}\s+|([+-]\d{4})\s+)?(\d{4})(?:\s+([+-]\d{4}))?"
)


class MboxError(ValueError):
    """The file is empty, does not start with a separator, or ends with one."""


@dataclass(frozen=True, slots=True)
class MboxMessage:
    """One message: its bytes with CRLF line ends, and its INTERNALDATE (with zone)."""

    data: bytes
    internal_date: datetime

    def imap_date_time(self) -> str:
        """The INTERNALDATE as an IMAP date-time, e.g. ``22-Feb-2008 17:06:23 +0000``.

        Spec: RFC 9051 §9 (date-time).
        """
        when = self.internal_date
        month = _MONTHS[when.month - 1]
        return f"{when.day:02d}-{month}-{when.year:04d} {when:%H:%M:%S %z}"


def _separator_date(line: bytes) -> datetime | None:
    match = _FROM_LINE_RE.match(line)
    if match is None:
        return None
    month = _MONTHS.index(match.group(1).decode()) + 1
    zone = (match.group(6) or match.group(8) or b"+0000").decode()
    minutes = int(zone[1:3]) * 60 + int(zone[3:5])
    offset = timedelta(minutes=-minutes if zone[0] == "-" else minutes)
    return datetime(
        int(match.group(7)),
        month,
        int(match.group(2)),
        int(match.group(3)),
        int(match.group(4)),
        int(match.group(5) or b"0"),
        tzinfo=timezone(offset),
    )


def to_crlf(data: bytes) -> bytes:
    """Turn bare LF line ends into CRLF, keeping existing CRLF. Spec: RFC 5322 §2.1."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def read_mbox(path: Path) -> tuple[MboxMessage, ...]:
    """Split an mbox file into messages. Raises `MboxError` for a malformed file."""
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines:
        raise MboxError(f"empty mbox file: {path}")
    first = _separator_date(lines[0])
    if first is None:
        raise MboxError(f"not an mbox file: {path}")
    messages: list[MboxMessage] = []
    date = first
    body: list[bytes] = []
    for line in lines[1:]:
        next_date = _separator_date(line) if line.startswith(b"From ") else None
        if next_date is not None and body:
            messages.append(MboxMessage(to_crlf(b"".join(body)), date))
            date, body = next_date, []
            continue
        if next_date is not None:
            date = next_date
            continue
        body.append(line)
    if not body:
        raise MboxError(f"mbox file ends with a separator line: {path}")
    messages.append(MboxMessage(to_crlf(b"".join(body)), date))
    return tuple(messages)


class MboxSource:
    """Hands out the messages of one mbox in order, wrapping around at the end."""

    def __init__(self, messages: tuple[MboxMessage, ...]) -> None:
        if not messages:
            raise MboxError("no messages")
        self._messages = messages
        self._next = 0

    @classmethod
    def open(cls, path: Path) -> MboxSource:
        """Read ``path`` (see `read_mbox`)."""
        return cls(read_mbox(path))

    def at_end(self) -> bool:
        """True when the next message would wrap around to the first one."""
        return self._next >= len(self._messages)

    def next_message(self) -> MboxMessage:
        """Return the next message, starting over after the last one."""
        if self._next >= len(self._messages):
            self._next = 0
        message = self._messages[self._next]
        self._next += 1
        return message
