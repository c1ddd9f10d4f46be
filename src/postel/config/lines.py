"""Where keys and tables sit in a TOML text, so that errors can name a line.

``tomllib`` returns plain values without positions. A small index of ``[table]`` headers
and ``key =`` lines, built by scanning the text, is enough to point an error at the
offending key (or at its table when the key is missing).

Spec: TOML v1.0.0 (tables, dotted keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KeyPath = tuple[str, ...]
"""A dotted key path such as ``("smtp", "message_size_max")``."""

_TABLE = re.compile(r"^\s*\[\[?\s*(?P<name>[^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*(?P<key>(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_SEGMENT = re.compile(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""")


def _split_key(text: str) -> KeyPath:
    return tuple(s.strip("\"'") for s in _SEGMENT.findall(text))


@dataclass(frozen=True, slots=True)
class LineIndex:
    """Line numbers (1-based) of table headers and keys, by full dotted path."""

    tables: dict[KeyPath, int]
    keys: dict[KeyPath, int]

    @classmethod
    def scan(cls, text: str) -> LineIndex:
        """Index ``text``. Lines inside multi-line strings may be misread as keys; the
        index is only used to locate messages, never to read values."""
        tables: dict[KeyPath, int] = {}
        keys: dict[KeyPath, int] = {}
        current: KeyPath = ()
        for number, line in enumerate(text.splitlines(), start=1):
            table = _TABLE.match(line)
            if table is not None:
                current = _split_key(table.group("name"))
                tables.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key is not None:
                keys.setdefault(current + _split_key(key.group("key")), number)
        return cls(tables=tables, keys=keys)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``'s key, else of its table header, else of the nearest
        enclosing key or table; None when nothing matches (e.g. an empty file)."""
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.tables:
                return self.tables[prefix]
        return None
