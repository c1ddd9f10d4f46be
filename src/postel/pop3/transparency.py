"""Message bytes to the RETR/TOP payload: line-end normalisation, dot-stuffing, the
terminating ``.`` line, and the header-plus-n-lines cut of TOP; one-shot and streaming.

Rules:

1. Line ends are sent as CRLF. CRLF stays; a bare LF or a bare CR in stored content (one
   not part of CRLF) is sent as CRLF, the NORMALIZE rule of the SMTP core, so a client
   never sees a line end it could read differently from us.
2. A message whose last line has no line end gets a CRLF: every line of a multi-line
   response ends in CRLF.
3. The message size (STAT, LIST, the ``+OK n octets`` of RETR) is the octet count after
   rules 1 and 2 and before dot-stuffing: what the client holds once it has removed the
   stuffing and the terminating line. ``pop3_size`` computes it.
4. Every line beginning with ``.`` gets one more ``.``; the response ends with ``.``
   CRLF.
5. TOP sends the header, the empty line that ends it, and the first n lines of the
   body (all of them when the body is shorter). A message without an empty line is all
   header.

The streaming forms (``DotStuffer``, ``TopFilter``, ``stuff_chunks``, ``top_chunks``)
hold at most one undecided CR between chunks, so a driver can send a large message
without a second copy; they give the same octets as ``stuff`` and ``top``.

Spec: RFC 1939 §3 (multi-line responses, byte-stuffing), §5 (LIST/STAT sizes), §7 (TOP),
§11 (octet counts with CRLF line ends).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = [
    "DotStuffer",
    "LineEndNormaliser",
    "TopFilter",
    "normalise_line_ends",
    "pop3_size",
    "stuff",
    "stuff_chunks",
    "top",
    "top_chunks",
]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_CRLF = b"\r\n"
_TERMINATOR = b".\r\n"


def normalise_line_ends(data: bytes) -> bytes:
    """``data`` with CRLF, bare CR and bare LF all as CRLF, and a final CRLF added to a
    non-empty message that lacks one (rules 1 and 2). Spec: RFC 1939 §3, §11."""
    text = _LINE_END.sub(_CRLF, data)
    if text and not text.endswith(_CRLF):
        text += _CRLF
    return text


def pop3_size(data: bytes) -> int:
    """The octet count of a message as STAT, LIST and RETR report it: after line-end
    normalisation, before dot-stuffing (rule 3). Spec: RFC 1939 §5 (LIST), §11."""
    return len(normalise_line_ends(data))


def stuff(data: bytes) -> bytes:
    """The whole multi-line payload for RETR of ``data``: normalised, dot-stuffed, and
    ended by ``.`` CRLF (the status line is not included). Spec: RFC 1939 §3, §7."""
    lines = normalise_line_ends(data).split(_CRLF)[:-1]
    out = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + _CRLF for line in out) + _TERMINATOR


def top(data: bytes, lines: int) -> bytes:
    """The part of ``data`` TOP sends for ``lines`` body lines: normalised, not stuffed
    (rule 5). Raises ValueError for ``lines`` < 0. Spec: RFC 1939 §7 (TOP)."""
    if lines < 0:
        raise ValueError("TOP line count must be non-negative")
    all_lines = normalise_line_ends(data).split(_CRLF)[:-1]
    try:
        blank = all_lines.index(b"")
    except ValueError:
        kept = all_lines
    else:
        kept = all_lines[: blank + 1 + lines]
    return b"".join(line + _CRLF for line in kept)


class LineEndNormaliser:
    """Streaming ``normalise_line_ends``: ``feed`` each chunk, then ``end`` once.
    Output chunks never end inside a CRLF. Spec: RFC 1939 §3, §11."""

    __slots__ = ("_cr", "_ends_line", "_seen")

    def __init__(self) -> None:
        self._cr = False
        self._seen = False
        self._ends_line = True

    def feed(self, chunk: bytes) -> bytes:
        """Normalised octets for ``chunk``; a trailing CR is held until the next octet
        says whether it begins CRLF."""
        if not chunk:
            return b""
        self._seen = True
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        pairs = chunk.count(_CRLF)
        if chunk.count(b"\r") == pairs and chunk.count(b"\n") == pairs:
            out = chunk  # already CRLF only: the common case, three scans in C
        else:
            out = _LINE_END.sub(_CRLF, chunk)
        if out:
            self._ends_line = out.endswith(_CRLF)
        return out

    def end(self) -> bytes:
        """The held CR as CRLF, or the CRLF a non-empty unterminated message needs."""
        if self._cr or (self._seen and not self._ends_line):
            self._cr = False
            self._ends_line = True
            return _CRLF
        return b""


class DotStuffer:
    """Streaming ``stuff``: ``feed`` raw message chunks, then ``end`` once; the joined
    output equals ``stuff(b"".join(chunks))`` for any chunking.
    Spec: RFC 1939 §3 (byte-stuffing, termination octet)."""

    __slots__ = ("_line_start", "_normaliser")

    def __init__(self) -> None:
        self._normaliser = LineEndNormaliser()
        self._line_start = True

    def feed(self, chunk: bytes) -> bytes:
        """Normalised, dot-stuffed octets for ``chunk``."""
        return self._stuff(self._normaliser.feed(chunk))

    def end(self) -> bytes:
        """The last line end if needed, then ``.`` CRLF."""
        return self._stuff(self._normaliser.end()) + _TERMINATOR

    def _stuff(self, text: bytes) -> bytes:
        if not text:
            return b""
        out = text.replace(b"\r\n.", b"\r\n..")
        if self._line_start and out.startswith(b"."):
            out = b"." + out
        self._line_start = text.endswith(_CRLF)
        return out


class TopFilter:
    """Streaming ``top``: ``feed`` raw message chunks (normalised here), then ``end``;
    stop feeding once ``done`` is True. The joined output equals ``top(data, lines)``.
    Raises ValueError for ``lines`` < 0. Spec: RFC 1939 §7 (TOP)."""

    __slots__ = ("_done", "_in_header", "_left", "_line_start", "_normaliser")

    def __init__(self, lines: int) -> None:
        if lines < 0:
            raise ValueError("TOP line count must be non-negative")
        self._normaliser = LineEndNormaliser()
        self._left = lines
        self._in_header = True
        self._line_start = True
        self._done = False

    @property
    def done(self) -> bool:
        """True once the last wanted line has been given: further input is ignored."""
        return self._done

    def feed(self, chunk: bytes) -> bytes:
        """The octets of ``chunk`` that TOP sends."""
        return self._filter(self._normaliser.feed(chunk))

    def end(self) -> bytes:
        """The last line end if needed."""
        return self._filter(self._normaliser.end())

    def _filter(self, text: bytes) -> bytes:
        if self._done or not text:
            return b""
        pos = 0
        if self._in_header:
            if self._line_start and text.startswith(_CRLF):
                pos = 2
            else:
                blank = text.find(b"\r\n\r\n")
                if blank < 0:
                    self._line_start = text.endswith(_CRLF)
                    return text
                pos = blank + 4
            self._in_header = False
        while self._left > 0:
            line_end = text.find(_CRLF, pos)
            if line_end < 0:
                return text
            pos = line_end + 2
            self._left -= 1
        self._done = True
        return text[:pos]


def stuff_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Streaming ``stuff`` over an iterable of raw chunks (empty pieces are skipped).
    Spec: RFC 1939 §3."""
    stuffer = DotStuffer()
    for chunk in chunks:
        out = stuffer.feed(chunk)
        if out:
            yield out
    yield stuffer.end()


def top_chunks(chunks: Iterable[bytes], lines: int) -> Iterator[bytes]:
    """Streaming ``top`` over raw chunks; stops pulling chunks once done. Compose with
    ``stuff_chunks`` for the TOP payload. Spec: RFC 1939 §7."""
    cut = TopFilter(lines)
    for chunk in chunks:
        out = cut.feed(chunk)
        if out:
            yield out
        if cut.done:
            return
    out = cut.end()
    if out:
        yield out
