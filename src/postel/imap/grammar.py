"""The IMAP command grammar's lexical layer: a cursor over one assembled command.

A command arrives as line segments with literals between them: ``parts[i]`` ends with
the literal marker (``{n}``, ``{n+}`` or ``~{n}``) announcing ``literals[i]``, and the
last part ends the command (its CRLF already removed). ``Cursor`` reads the ABNF
productions of RFC 9051 §9 from that: atoms, numbers, quoted strings, literals,
astrings, flags, dates, parenthesised lists (depth bounded).

Spec: RFC 9051 §4 (data formats), §9 (formal syntax); RFC 3516 §4.4 (literal8);
RFC 7888 (``{n+}``); RFC 6855 §3 (UTF-8 in quoted strings).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence

from postel.errors import ProtocolError
from postel.imap import limits
from postel.imap.sequence import SequenceSet, SequenceSetError, parse_sequence_set

__all__ = [
    "ATOM_SPECIALS",
    "LITERAL_MARKER",
    "MONTHS",
    "BadCharset",
    "Cursor",
    "ImapProtocolError",
    "ImapSyntaxError",
    "UnknownCommand",
]

ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
"""Octets that end an atom (``]`` included: resp-specials). Spec: RFC 9051 §9
(atom-specials, resp-specials)."""
LITERAL_MARKER = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
"""A literal announcement ending a line segment: literal8 ``~``, size, non-sync ``+``.
Spec: RFC 9051 §4.3, RFC 7888 §3, RFC 3516 §4.4."""
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
"""``date-month`` names, case-insensitive. Spec: RFC 9051 §9 (date-month)."""
_NUMBER_MAX = 4_294_967_295
_NUMBER64_MAX = 9_223_372_036_854_775_807
_LIST_WILDCARDS = frozenset(b"%*")
_SEQ_CHARS = frozenset(b"0123456789:,$*")
_NONE: frozenset[int] = frozenset()
_CLOSE_BRACKET = frozenset(b"]")
_DIGITS = frozenset(b"0123456789")
_STAR = frozenset(b"*")
_LIST_CHARS = _LIST_WILDCARDS | _CLOSE_BRACKET
ATOM_RUN_PATTERNS_MAX = 64
"""Distinct character classes whose run pattern is kept compiled (``_atom_run``);
callers pass module constants, a few dozen at most."""


@functools.lru_cache(maxsize=ATOM_RUN_PATTERNS_MAX)
def _atom_run(allowed: frozenset[int] | None, extra: frozenset[int]) -> re.Pattern[bytes]:
    """A pattern matching the longest run of atom characters (RFC 9051 §9 ATOM-CHAR:
    no atom-specials, CTLs or 8-bit octets) that are in ``allowed`` (any, if None) or
    are atom-specials named in ``extra``; compiled once per pair of sets (a memo of a
    pure function)."""
    octets = bytes(
        c
        for c in range(0x80)
        if c <= 0x7E
        and (c not in ATOM_SPECIALS or c in extra)
        and (allowed is None or c in allowed)
    )
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in octets) + b"]*")


_TIME_ZONE = re.compile(rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"')


class ImapProtocolError(ProtocolError):
    """Bad IMAP client input. ``tag`` is the command's tag when it could be read.
    Spec: RFC 9051 §7.1.5 (BAD)."""

    def __init__(self, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


class ImapSyntaxError(ImapProtocolError):
    """A command that does not match the grammar: answer tagged BAD (untagged BAD when
    ``tag`` is None). Spec: RFC 9051 §7.1.5."""


class UnknownCommand(ImapSyntaxError):
    """A command name the server does not know: tagged BAD. Spec: RFC 9051 §7.1.5."""


class BadCharset(ImapProtocolError):
    """SEARCH with a charset other than UTF-8 / US-ASCII: answer tagged
    ``NO [BADCHARSET (UTF-8 US-ASCII)]``, not BAD. Spec: RFC 9051 §6.4.4, §7.1."""

    def __init__(self, charset: str, tag: str | None = None) -> None:
        super().__init__(f"unsupported charset {charset[:40]}", tag)
        self.charset = charset


class Cursor:
    """Reads one assembled command left to right; every reader raises ImapSyntaxError
    on a mismatch. ``utf8`` allows UTF-8 in quoted strings (RFC 6855 §3, RFC 9051 §4.3).

    Spec: RFC 9051 §9.
    """

    def __init__(
        self,
        parts: Sequence[bytes],
        literals: Sequence[bytes] = (),
        *,
        utf8: bool = False,
        depth_max: int = limits.PAREN_DEPTH_MAX,
    ) -> None:
        if len(parts) != len(literals) + 1:
            raise ValueError("parts must be one more than literals")
        self._parts = parts
        self._literals = literals
        self._index = 0
        self._seg = parts[0]
        self._pos = 0
        self.utf8 = utf8
        self.tag: str | None = None
        self.depth = 0
        self._depth_max = depth_max

    # --- position -----------------------------------------------------------------
    def error(self, text: str) -> ImapSyntaxError:
        """An ImapSyntaxError carrying the command's tag."""
        return ImapSyntaxError(text, self.tag)

    def peek(self) -> int:
        """The next octet, or -1 at the end of a segment."""
        return self._seg[self._pos] if self._pos < len(self._seg) else -1

    def at_end(self) -> bool:
        """True when the whole command has been read."""
        return self._pos >= len(self._seg) and self._index == len(self._literals)

    def end(self) -> None:
        """Require the end of the command."""
        if not self.at_end():
            if self.peek() >= 0x80:
                raise self.error(
                    "8-bit text outside a quoted string or literal (send it as a literal)"
                )
            raise self.error("unexpected text at end of command")

    def mark(self) -> tuple[int, int]:
        """The current position, for ``since``."""
        return (self._index, self._pos)

    def since(self, mark: tuple[int, int]) -> str:
        """The ASCII text read since ``mark``, which must be in the same segment."""
        index, pos = mark
        if index != self._index:
            raise self.error("literal not allowed here")
        return self._seg[pos : self._pos].decode("ascii", "replace")

    def seek(self, mark: tuple[int, int]) -> None:
        """Go back to ``mark`` (same segment only)."""
        if mark[0] != self._index:
            raise self.error("cannot go back over a literal")
        self._pos = mark[1]

    def in_last_segment(self) -> bool:
        """True when no literal follows the current position (the rest of the command
        is the rest of this line segment)."""
        return self._index == len(self._literals)

    def rest_length(self) -> int:
        """Octets left unread in the current line segment."""
        return len(self._seg) - self._pos

    def rest_of_segment(self) -> bytes:
        """The unread rest of the current line segment (literal announcement included);
        the cursor moves to its end."""
        rest = self._seg[self._pos :]
        self._pos = len(self._seg)
        return rest

    def take(self, token: bytes) -> bool:
        """Consume ``token`` (case-insensitive) if it comes next."""
        n = len(token)
        got = self._seg[self._pos : self._pos + n]
        if got == token or (len(got) == n and got.upper() == token.upper()):
            self._pos += n
            return True
        return False

    def expect(self, token: bytes) -> None:
        """Consume ``token`` or fail."""
        if not self.take(token):
            raise self.error(f"expected {token.decode('ascii')!r}")

    def sp(self) -> None:
        """One SP."""
        pos = self._pos
        if self._seg[pos : pos + 1] != b" ":
            raise self.error("expected ' '")
        self._pos = pos + 1

    def open(self) -> None:
        """``(`` opening a list, counting nesting against the depth bound."""
        self.expect(b"(")
        self.depth += 1
        if self.depth > self._depth_max:
            raise self.error("parentheses nested too deep")

    def nest(self) -> None:
        """Enter a nested production without parentheses (SEARCH NOT/OR), counted
        against the same depth bound; ``unnest`` leaves it."""
        self.depth += 1
        if self.depth > self._depth_max:
            raise self.error("search keys nested too deep")

    def unnest(self) -> None:
        """Leave what ``nest`` entered."""
        self.depth -= 1

    def maybe_open(self) -> bool:
        """Open a list if ``(`` comes next."""
        if self.peek() == 0x28:
            self.open()
            return True
        return False

    def close(self) -> None:
        """``)`` closing a list."""
        self.expect(b")")
        self.depth -= 1

    def closing(self) -> bool:
        """Consume ``)`` if it comes next (end of a list)."""
        if self.peek() == 0x29:
            self.close()
            return True
        return False

    # --- atoms and numbers ----------------------------------------------------------
    def _run(self, allowed: frozenset[int] | None, extra: frozenset[int] = _NONE) -> bytes:
        seg, start = self._seg, self._pos
        found = _atom_run(allowed, extra).match(seg, start)
        end = found.end() if found is not None else start
        self._pos = end
        return seg[start:end]

    def run(self, allowed: frozenset[int]) -> bytes:
        """The longest run of ``allowed`` atom characters (possibly empty)."""
        return self._run(allowed)

    def atom(self) -> str:
        """``atom``: 1*ATOM-CHAR. Spec: RFC 9051 §9."""
        raw = self._run(None)
        if not raw:
            raise self.error("expected an atom")
        return raw.decode("ascii")

    def astring_atom(self) -> bytes:
        """1*ASTRING-CHAR (atom characters and ``]``); empty if none."""
        return self._run(None, _CLOSE_BRACKET)

    def tag_text(self) -> str:
        """``tag``: ASTRING-CHARs except ``+``. Spec: RFC 9051 §9 (tag)."""
        raw = self._run(None, _CLOSE_BRACKET)
        if not raw or b"+" in raw:
            raise ImapSyntaxError("missing or invalid tag")
        self.tag = raw.decode("ascii")
        return self.tag

    def digits(self) -> bytes:
        """1*DIGIT."""
        raw = self._run(_DIGITS)
        if not raw:
            raise self.error("expected a number")
        return raw

    def number(self, maximum: int = _NUMBER_MAX) -> int:
        """``number`` (32-bit unsigned), or up to ``maximum`` (``number64``)."""
        raw = self.digits()
        if len(raw) > 19 or int(raw) > maximum:
            raise self.error("number out of range")
        return int(raw)

    def number64(self) -> int:
        """``number64``: 63-bit unsigned (mod-sequence values, sizes). Spec: RFC 9051 §9."""
        return self.number(_NUMBER64_MAX)

    def nz_number(self) -> int:
        """``nz-number``: 1..2^32-1."""
        n = self.number()
        if n == 0:
            raise self.error("zero where a non-zero number is required")
        return n

    def sequence_set(self) -> SequenceSet:
        """``sequence-set`` or ``$``. Spec: RFC 9051 §9, RFC 5182."""
        raw = self._run(_SEQ_CHARS, _STAR)
        try:
            return parse_sequence_set(raw.decode("ascii"))
        except SequenceSetError as exc:
            raise self.error(str(exc)) from exc

    # --- strings --------------------------------------------------------------------
    def quoted(self) -> bytes:
        """``quoted``: DQUOTE *QUOTED-CHAR DQUOTE, ``\\"`` and ``\\\\`` escaped; 8-bit
        only in UTF-8 mode (and then valid UTF-8). Spec: RFC 9051 §9, RFC 6855 §3."""
        self.expect(b'"')
        seg = self._seg
        out = bytearray()
        i = self._pos
        while True:
            if i >= len(seg):
                raise self.error("unterminated quoted string")
            c = seg[i]
            if c == 0x22:
                break
            if c == 0x5C:
                if i + 1 >= len(seg) or seg[i + 1] not in (0x22, 0x5C):
                    raise self.error("bad escape in quoted string")
                out.append(seg[i + 1])
                i += 2
                continue
            if c in (0x00, 0x0A, 0x0D) or (c > 0x7F and not self.utf8):
                raise self.error("bad octet in quoted string")
            out.append(c)
            i += 1
        self._pos = i + 1
        if not self.utf8 or out.isascii():
            return bytes(out)
        try:
            out.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error("quoted string is not UTF-8") from exc
        return bytes(out)

    def at_literal(self) -> bool:
        """True when a literal announcement ends the current segment here."""
        if self._index >= len(self._literals):
            return False
        return LITERAL_MARKER.match(self._seg, self._pos) is not None

    def literal(self, *, binary: bool = False) -> bytes:
        """``literal`` (or ``literal8`` when ``binary``): the octets the assembler read.
        A literal8 is refused unless ``binary``; a plain literal may not hold NUL.
        Spec: RFC 9051 §4.3, RFC 3516 §4.4."""
        match = LITERAL_MARKER.match(self._seg, self._pos) if self.at_literal() else None
        if match is None:
            raise self.error("expected a literal")
        if match.group(1) and not binary:
            raise self.error("literal8 not allowed here")
        data = self._literals[self._index]
        if not match.group(1) and b"\x00" in data:
            raise self.error("NUL in literal")
        self._index += 1
        self._seg = self._parts[self._index]
        self._pos = 0
        return data

    def string(self) -> bytes:
        """``string``: quoted or literal."""
        return self.quoted() if self.peek() == 0x22 else self.literal()

    def astring(self) -> bytes:
        """``astring``: 1*ASTRING-CHAR or string."""
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        raw = self.astring_atom()
        if not raw:
            raise self.error("expected an astring")
        return raw

    def nstring(self) -> bytes | None:
        """``nstring``: string or NIL (None)."""
        if self.peek() in (0x4E, 0x6E) and self.take(b"NIL"):
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """``list-mailbox``: 1*list-char (atom characters, ``%``, ``*``, ``]``) or string.
        Spec: RFC 9051 §9 (list-mailbox)."""
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        raw = self._run(None, _LIST_CHARS)
        if not raw:
            raise self.error("expected a mailbox pattern")
        return raw

    def text_utf8(self, raw: bytes) -> str:
        """``raw`` decoded as UTF-8 (strings of SEARCH, LOGIN, ID)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error("string is not UTF-8") from exc

    # --- flags and dates ------------------------------------------------------------
    def flag(self) -> str:
        """``flag``: ``\\``atom (system or extension flag) or a keyword atom."""
        if self.take(b"\\"):
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        """``flag-list``: "(" [flag *(SP flag)] ")"."""
        self.open()
        flags: list[str] = []
        while not self.closing():
            if flags:
                self.sp()
            flags.append(self.flag())
        return tuple(flags)

    def date(self) -> dt.date:
        """``date``: date-text or DQUOTE date-text DQUOTE; ``d-Mon-yyyy``.
        Spec: RFC 9051 §9 (date, date-text)."""
        quoted = self.take(b'"')
        day = self.digits()
        self.expect(b"-")
        month = self._month()
        self.expect(b"-")
        year = self.digits()
        if quoted:
            self.expect(b'"')
        return self._make_date(day, month, year)

    def _month(self) -> int:
        name = self._seg[self._pos : self._pos + 3].decode("ascii", "replace").upper()
        if name not in MONTHS:
            raise self.error("bad month name")
        self._pos += 3
        return MONTHS.index(name) + 1

    def _make_date(self, day: bytes, month: int, year: bytes) -> dt.date:
        if len(day) > 2 or len(year) != 4:
            raise self.error("bad date")
        try:
            return dt.date(int(year), month, int(day))
        except ValueError as exc:
            raise self.error("bad date") from exc

    def date_time(self) -> dt.datetime:
        """``date-time``: DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP
        zone DQUOTE, e.g. ``" 7-Feb-1994 21:52:25 -0800"``. A one-digit day without its
        leading space is accepted too (clients send it; nothing becomes ambiguous).
        Spec: RFC 9051 §9 (date-time, date-day-fixed)."""
        self.expect(b'"')
        if self.take(b" "):
            day = self.digits()
            if len(day) != 1:
                raise self.error("bad date-day-fixed")
        else:
            day = self.digits()
        self.expect(b"-")
        month = self._month()
        self.expect(b"-")
        date = self._make_date(day, month, self.digits())
        self.sp()
        match = _TIME_ZONE.match(self._seg, self._pos)
        if match is None:
            raise self.error("bad time or zone in date-time")
        self._pos = match.end()
        hh, mm, ss, sign, zh, zm = match.groups()
        offset = dt.timedelta(hours=int(zh), minutes=int(zm))
        try:
            return dt.datetime(
                date.year,
                date.month,
                date.day,
                int(hh),
                int(mm),
                int(ss),
                tzinfo=dt.timezone(-offset if sign == b"-" else offset),
            )
        except ValueError as exc:
            raise self.error("bad time or zone in date-time") from exc
