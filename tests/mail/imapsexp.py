"""A small parser of IMAP response values for the tests: atoms, NIL, quoted, literals, lists.

Values: ``None`` for NIL, ``bytes`` for strings (quoted or literal, equivalent),
``Atom`` for atoms and numbers, ``list`` for parenthesised lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Value = "None | bytes | Atom | list[Value]"

_ATOM = re.compile(rb"[^\s()\"{}]+")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n")


@dataclass(frozen=True)
class Atom:
    """An IMAP atom or number, compared case-insensitively by the tests."""

    text: bytes


def parse(data: bytes) -> object:
    """Parse one value at the start of ``data``; raise ValueError on bad syntax."""
    value, _pos = _value(data, 0)
    return value


def parse_all(data: bytes) -> list[object]:
    """Parse space-separated values up to the end of ``data``."""
    out: list[object] = []
    pos = 0
    while True:
        while pos < len(data) and data[pos] in b" \r\n":
            pos += 1
        if pos >= len(data):
            return out
        value, pos = _value(data, pos)
        out.append(value)


def _value(data: bytes, pos: int) -> tuple[object, int]:
    while data[pos] == 0x20:
        pos += 1
    c = data[pos]
    if c == 0x28:  # (
        items: list[object] = []
        pos += 1
        while True:
            while data[pos] == 0x20:
                pos += 1
            if data[pos] == 0x29:
                return items, pos + 1
            item, pos = _value(data, pos)
            items.append(item)
    if c == 0x22:  # "
        out = bytearray()
        pos += 1
        while data[pos] != 0x22:
            if data[pos] == 0x5C:
                pos += 1
            out.append(data[pos])
            pos += 1
        return bytes(out), pos + 1
    if c == 0x7B:  # {
        m = _LITERAL.match(data, pos)
        if m is None:
            raise ValueError(f"bad literal at {pos}")
        n = int(m.group(1))
        return data[m.end() : m.end() + n], m.end() + n
    m2 = _ATOM.match(data, pos)
    if m2 is None:
        raise ValueError(f"unexpected {data[pos : pos + 10]!r} at {pos}")
    if m2.group().upper() == b"NIL":
        return None, m2.end()
    return Atom(m2.group()), m2.end()


def fetch_items(data: bytes) -> dict[str, object]:
    """The name/value pairs of a FETCH response list ``(NAME value NAME value ...)``."""
    start = data.index(b"(")
    items = parse(data[start:])
    assert isinstance(items, list)
    out: dict[str, object] = {}
    for i in range(0, len(items), 2):
        name = items[i]
        assert isinstance(name, Atom)
        out[name.text.decode().upper()] = items[i + 1]
    return out
