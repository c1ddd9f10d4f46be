"""IMAP METADATA commands: GETMETADATA and SETMETADATA, entry names, and responses.

Entry names are checked here (a bad one is a syntax error, answered BAD): 7-bit
printable ASCII, no ``*`` or ``%``, no ``//``, no trailing ``/``, under ``/private/`` or
``/shared/``; GETMETADATA also takes the bare ``/private`` and ``/shared`` (which never
hold a value themselves) to reach everything below with DEPTH. Names are case-insensitive
and are returned lower-cased.

Spec: RFC 5464 §3.2 (entry names), §4.2 (GETMETADATA: MAXSIZE, DEPTH), §4.3
(SETMETADATA), §4.4 (METADATA response), §5 (syntax).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.imap.command_types import Command
from postel.imap.grammar import Cursor
from postel.imap.parse_mailbox import read_mailbox
from postel.imap.responses import Code, astring, literal8, mailbox, string

__all__ = [
    "METADATA_ENTRIES_PER_COMMAND_MAX",
    "METADATA_NAME_MAX",
    "NOPRIVATE",
    "TOOMANY",
    "Depth",
    "GetMetadata",
    "SetMetadata",
    "check_entry",
    "longentries",
    "maxsize",
    "metadata_response",
    "parse_getmetadata",
    "parse_setmetadata",
]

METADATA_NAME_MAX = 1024
"""Octets of one entry name (local bound; RFC 5464 §3.2 sets none)."""
METADATA_ENTRIES_PER_COMMAND_MAX = 256
"""Entries one GETMETADATA or SETMETADATA may name (local bound; RFC 5464 §4.2, §4.3
set none). Spec: RELIABILITY.md D7."""

_PREFIXES = ("/private", "/shared")
_FORBIDDEN = frozenset(b"*%") | frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))

TOOMANY = Code("METADATA", "TOOMANY")
"""``[METADATA TOOMANY]``: too many entries. Spec: RFC 5464 §4.3."""
NOPRIVATE = Code("METADATA", "NOPRIVATE")
"""``[METADATA NOPRIVATE]``: no /private entries can be made (postel never sends it:
every account has its own). Spec: RFC 5464 §4.3."""


def maxsize(limit: int) -> Code:
    """``[METADATA MAXSIZE n]``: the largest value the server takes, octets.
    Spec: RFC 5464 §4.3."""
    return Code("METADATA", f"MAXSIZE {limit}")


def longentries(size: int) -> Code:
    """``[METADATA LONGENTRIES n]``: the size of the largest value MAXSIZE left out.
    Spec: RFC 5464 §4.2.1."""
    return Code("METADATA", f"LONGENTRIES {size}")


class Depth(enum.StrEnum):
    """GETMETADATA DEPTH. Spec: RFC 5464 §4.2.2."""

    ZERO = "0"
    ONE = "1"
    INFINITY = "infinity"


@dataclass(frozen=True, slots=True)
class GetMetadata(Command):
    """GETMETADATA [options] mailbox entries; ``mailbox`` ``""`` for server entries,
    ``max_size`` None without MAXSIZE. Spec: RFC 5464 §4.2."""

    mailbox: str
    entries: tuple[str, ...]
    max_size: int | None = None
    depth: Depth = Depth.ZERO


@dataclass(frozen=True, slots=True)
class SetMetadata(Command):
    """SETMETADATA mailbox (entry value ...); a None value removes the entry.
    Spec: RFC 5464 §4.3."""

    mailbox: str
    changes: tuple[tuple[str, bytes | None], ...]


def check_entry(name: bytes, *, prefix_only: bool = False) -> str | None:
    """The entry name lower-cased, or None when it breaks RFC 5464 §3.2: non-ASCII or
    control octets, ``*`` or ``%``, ``//``, a trailing ``/``, not under ``/private`` or
    ``/shared``, longer than METADATA_NAME_MAX; the bare prefixes only when
    ``prefix_only``. Spec: RFC 5464 §3.2."""
    if not name or len(name) > METADATA_NAME_MAX or any(c in _FORBIDDEN for c in name):
        return None
    text = name.decode("ascii").lower()
    if "//" in text or text.endswith("/"):
        return None
    if text in _PREFIXES:
        return text if prefix_only else None
    if not any(text.startswith(p + "/") for p in _PREFIXES):
        return None
    return text


def _entry(cur: Cursor, *, prefix_only: bool) -> str:
    name = check_entry(cur.astring(), prefix_only=prefix_only)
    if name is None:
        raise cur.error("bad metadata entry name")
    return name


def _options(cur: Cursor) -> tuple[int | None, Depth]:
    max_size: int | None = None
    depth: Depth | None = None
    cur.expect(b"(")
    while True:
        option = cur.atom().upper()
        cur.sp()
        if option == "MAXSIZE" and max_size is None:
            max_size = cur.number()
        elif option == "DEPTH" and depth is None:
            word = cur.atom().lower()
            if word not in ("0", "1", "infinity"):
                raise cur.error("DEPTH is 0, 1 or infinity")
            depth = Depth(word)
        else:
            raise cur.error("unknown or repeated GETMETADATA option")
        if cur.take(b")"):
            return max_size, depth or Depth.ZERO
        cur.sp()


def parse_getmetadata(cur: Cursor, tag: str, uid: bool) -> Command:
    """``GETMETADATA [SP getmetadata-options] SP mailbox SP entries``.
    Spec: RFC 5464 §5 (getmetadata, getmetadata-options, entries)."""
    cur.sp()
    max_size, depth = (None, Depth.ZERO)
    if cur.peek() == 0x28:
        max_size, depth = _options(cur)
        cur.sp()
    name = read_mailbox(cur)
    cur.sp()
    entries: list[str] = []
    if cur.take(b"("):
        while True:
            entries.append(_entry(cur, prefix_only=True))
            if len(entries) > METADATA_ENTRIES_PER_COMMAND_MAX:
                raise cur.error("too many metadata entries")
            if cur.take(b")"):
                break
            cur.sp()
    else:
        entries.append(_entry(cur, prefix_only=True))
    return GetMetadata(tag, name, tuple(dict.fromkeys(entries)), max_size, depth)


def _value(cur: Cursor) -> bytes | None:
    if cur.at_literal():
        return cur.literal(binary=True)
    return cur.nstring()


def parse_setmetadata(cur: Cursor, tag: str, uid: bool) -> Command:
    """``SETMETADATA SP mailbox SP "(" entry SP value *(SP entry SP value) ")"``, value
    ``nstring / literal8``. Spec: RFC 5464 §5 (setmetadata, entry-value, value)."""
    cur.sp()
    name = read_mailbox(cur)
    cur.sp()
    cur.expect(b"(")
    changes: dict[str, bytes | None] = {}
    while True:
        entry = _entry(cur, prefix_only=False)
        cur.sp()
        changes[entry] = _value(cur)
        if len(changes) > METADATA_ENTRIES_PER_COMMAND_MAX:
            raise cur.error("too many metadata entries")
        if cur.take(b")"):
            break
        cur.sp()
    return SetMetadata(tag, name, tuple(changes.items()))


def metadata_response(name: str, entry: str, value: bytes | None, *, utf8: bool = False) -> bytes:
    """``* METADATA mailbox (entry value)``: NIL for None, a literal8 when the value
    holds NUL, else a string. Spec: RFC 5464 §4.4, §5 (metadata-resp, value)."""
    if value is None:
        wire = b"NIL"
    elif b"\x00" in value:
        wire = literal8(value)
    else:
        wire = string(value)
    head = b"* METADATA " + mailbox(name, utf8=utf8) + b" ("
    return head + astring(entry) + b" " + wire + b")\r\n"
