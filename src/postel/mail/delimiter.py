"""Find multipart delimiter lines and empty lines with bounded work, whatever the boundaries.

A delimiter line (RFC 2046 §5.1.1) starts with ``--`` followed by the boundary of one of
the open multiparts; the longest matching boundary wins, and of two equal boundaries the
inner one. Anything may follow the boundary on that line.

No pattern is built from message octets. The open boundaries are grouped into families:
a root is a boundary of which no other open boundary is a prefix, and its family holds
the open boundaries that start with it. A line matches some boundary of a family only if
it matches the root, and it matches at most one root (of two roots matching it, one would
be a prefix of the other). So only roots are searched, each for its ``LF--root`` octets
with ``bytes.find``; a heap orders the roots by their next delimiter, and at a delimiter
the longest matching boundary of the family is picked by comparing octets.

Each root remembers what it found, or how far it found nothing; a search touches only
roots whose answer was passed. An answer is passed when its delimiter line is consumed,
or when a search that found nothing must go further, which it does by at least doubling
the range already searched. Hence (RELIABILITY.md D7):

- the Python work of a parse is bounded by a few heap operations per consumed delimiter
  line (at most one per search, so about two per part), plus a comparison per family
  member at each delimiter, plus a comparison per open boundary when one is opened,
  plus a logarithm of the message size per multipart;
- each root scans at most about twice its own region of the message plus
  ``_SEARCH_MIN`` octets, at ``bytes.find`` speed, and does not scan text without lines
  starting with ``--`` (one scan shared by all); at most limits.MIME_DEPTH_MAX
  multiparts are open;
- memory is a few objects per open multipart and one heap entry per root.

Searches are meant to come in non-decreasing positions; an earlier position is still
answered correctly, by searching every root again.
"""

from __future__ import annotations

import bisect
import heapq
import re
from dataclasses import dataclass, field

__all__ = ["DelimiterScanner", "Hit"]

_BLANK_LINE = re.compile(rb"\n\r?\n")
_SEARCH_MIN = 4096
"""Octets searched at least, past the start, when a root's delimiter is not known: fewer,
larger searches (RELIABILITY.md D7)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """A delimiter or empty line found by a search.

    ``line_start`` is the offset of the line, ``after`` the offset just past the
    boundary (or past the empty line and its line break), ``level`` the index of the
    matched multipart among the open ones (outermost 0), or -1 for an empty line.

    Spec: RFC 2046 §5.1.1.
    """

    line_start: int
    after: int
    level: int


@dataclass(slots=True, eq=False)
class _Frame:
    """One open multipart; for a root, its family and what its searches found.

    ``family`` (roots only) lists the root and the open boundaries starting with it,
    longest first, inner first among equal ones. ``displaced`` lists the roots that
    joined this one's family when it was opened. No ``LF--boundary`` starts between the
    last search's start and ``seen_to``; if ``found`` one starts at seen_to.
    ``seen_from`` is where the searches that found nothing began, -1 before the first
    search. ``serial`` names the frame's current heap entry.
    """

    boundary: bytes
    level: int
    needle: bytes
    root: _Frame | None = None
    family: list[_Frame] = field(default_factory=list)
    displaced: list[_Frame] = field(default_factory=list)
    found: bool = False
    seen_from: int = -1
    seen_to: int = -1
    serial: int = -1

    def rank(self) -> tuple[int, int]:
        """Order inside a family: longest boundary first, then the inner one."""
        return -len(self.boundary), -self.level


_Entry = tuple[int, bool, int, _Frame]
"""Heap entry: (seen_to, found, serial, root). At one offset a root not yet searched
there comes before one found there."""


@dataclass(slots=True)
class DelimiterScanner:
    """Delimiter searches over one message's octets, for the multiparts opened so far.

    Multiparts are opened and closed like a stack; :meth:`find` looks for the
    delimiters of the open ones. ``search_min`` is the least number of octets a search
    for an unknown delimiter covers.

    Spec: RFC 2046 §5.1.1, RFC 5322 §2.1 (the empty line ending a header section).
    """

    data: bytes
    search_min: int = _SEARCH_MIN
    _open: list[_Frame] = field(default_factory=list)
    _roots: list[_Frame] = field(default_factory=list)
    _heap: list[_Entry] = field(default_factory=list)
    _serial: int = 0
    _last_start: int = 0
    _candidate_from: int = 0
    _candidate_at: int = -1

    def open(self, boundary: bytes) -> int:
        """Open a multipart inside the innermost open one; returns its level (0 = outermost).

        Spec: RFC 2046 §5.1.1 (boundaries of nested multiparts).
        """
        frame = _Frame(boundary, len(self._open), b"\n--" + boundary)
        self._open.append(frame)
        for root in self._roots:
            if boundary.startswith(root.boundary):  # at most one root is a prefix
                frame.root = root
                bisect.insort(root.family, frame, key=_Frame.rank)
                return frame.level
        frame.displaced = [r for r in self._roots if r.boundary.startswith(boundary)]
        frame.family = [frame, *(m for r in frame.displaced for m in r.family)]
        frame.family.sort(key=_Frame.rank)
        for r in frame.displaced:
            r.root, r.serial = frame, -1  # its heap entry lapses
        self._roots = [r for r in self._roots if r.root is None]
        self._roots.append(frame)
        self._push(frame)
        return frame.level

    def close(self) -> None:
        """Close the innermost open multipart: its delimiters are no longer looked for.

        Spec: RFC 2046 §5.1.1.
        """
        frame = self._open.pop()
        if frame.root is not None:
            frame.root.family.remove(frame)
            return
        frame.serial = -1
        self._roots.remove(frame)
        for r in frame.displaced:
            r.root = None
            self._roots.append(r)
            self._push(r)

    def find(self, pos: int, *, blank: bool) -> Hit | None:
        """First delimiter of an open multipart (or, if ``blank``, empty line) at a line
        start >= ``pos``; ``pos`` must be a line start. None when there is none.

        Spec: RFC 2046 §5.1.1.
        """
        data = self.data
        if pos > 0 and data[pos - 1] != 0x0A:
            return None
        if pos == 0:
            first = self._at_start(blank)
            if first is not None:
                return first
        start = max(pos - 1, 0)
        found = self._next(start) if self._open else None
        if blank:
            end = len(data) if found is None else found[0] + 1
            m = _BLANK_LINE.search(data, start, end)
            if m is not None:
                return Hit(m.start() + 1, m.end(), -1)
        if found is None:
            return None
        at, frame = found
        return Hit(at + 1, at + 3 + len(frame.boundary), frame.level)

    def _at_start(self, blank: bool) -> Hit | None:
        data = self.data
        if blank and data.startswith(b"\n"):
            return Hit(0, 1, -1)
        if blank and data.startswith(b"\r\n"):
            return Hit(0, 2, -1)
        best: _Frame | None = None
        for frame in reversed(self._open):  # inner first: an equal outer one does not win
            if data.startswith(frame.needle[1:]) and (
                best is None or len(frame.boundary) > len(best.boundary)
            ):
                best = frame
        return None if best is None else Hit(0, 2 + len(best.boundary), best.level)

    def _next(self, start: int) -> tuple[int, _Frame] | None:
        """First ``LF--boundary`` of an open multipart at offset >= ``start``."""
        if start < self._last_start:
            self._restart()
        self._last_start = start
        heap = self._heap
        n = len(self.data)
        while heap:
            seen_to, found, serial, root = heap[0]
            if serial != root.serial:
                heapq.heappop(heap)
            elif found and seen_to >= start:
                return seen_to, self._longest(root, seen_to)
            elif seen_to > n:
                return None  # every root was searched to the end
            else:
                heapq.heappop(heap)
                self._search(root, start, heap[0][0] if heap else n)
                self._push(root)
        return None  # pragma: no cover - every root has a heap entry

    def _longest(self, root: _Frame, at: int) -> _Frame:
        """The family member whose delimiter is at ``at``: the first that matches."""
        data = self.data
        for member in root.family:
            if data.startswith(member.needle, at):
                return member
        return root  # pragma: no cover - the root itself matches

    def _search(self, root: _Frame, start: int, bound: int) -> None:
        """Search ``root``'s delimiter from ``start`` up to ``bound`` at least."""
        if root.found or root.seen_from < 0:
            lo = begin = start
        else:  # go on where it stopped, doubling the range searched
            lo, begin = root.seen_from, max(start, root.seen_to)
        limit = max(bound, begin + max(begin - lo, self.search_min))
        root.seen_from = lo
        candidate = self._candidate(begin)
        at = -1
        if candidate <= limit:
            at = self.data.find(root.needle, candidate, limit + len(root.needle))
        root.found = at >= 0
        if at < 0:  # none up to the limit, nor before the next line starting with "--"
            at = max(min(limit, len(self.data)) + 1, candidate)
        root.seen_to = at

    def _candidate(self, pos: int) -> int:
        """Offset of the first ``LF--`` at >= ``pos``, or the data length + 1.

        One scan shared by every root: text without such lines is scanned once.
        """
        if self._candidate_from <= pos <= self._candidate_at:
            return self._candidate_at
        data = self.data
        if pos < self._candidate_from <= self._candidate_at:  # join the known range
            at = data.find(b"\n--", pos, self._candidate_from + 2)
            at = self._candidate_at if at < 0 else at
        else:
            at = data.find(b"\n--", pos)
            at = len(data) + 1 if at < 0 else at
        self._candidate_from, self._candidate_at = pos, at
        return at

    def _push(self, root: _Frame) -> None:
        self._serial += 1
        root.serial = self._serial
        heapq.heappush(self._heap, (root.seen_to, root.found, self._serial, root))

    def _restart(self) -> None:
        """Forget every search, for a search that starts before the previous one."""
        self._heap.clear()
        for frame in self._open:
            frame.found, frame.seen_from, frame.seen_to = False, -1, -1
        for root in self._roots:
            self._push(root)
