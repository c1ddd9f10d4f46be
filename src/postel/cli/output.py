"""Listing output: aligned tables for people, a stable JSON list of objects for scripts.

Tables use ``rich``; colour and styles only when standard output is a terminal. JSON is
one array of flat objects with fixed keys, sorted as listed, UTF-8 kept as is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from postel.cli.context import Io

JsonValue = str | bool | int | None | list[str]
"""Values that appear in the CLI's JSON objects."""

WIDE = 10_000
"""Console width when output is not a terminal, so that long names never wrap."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its JSON key and its table heading."""

    key: str
    heading: str


def timestamp(value: dt.datetime) -> str:
    """ISO 8601 in UTC to the second, e.g. ``2024-05-01T12:00:00+00:00``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def show(
    io: Io,
    columns: Sequence[Column],
    rows: Sequence[dict[str, JsonValue]],
    *,
    as_json: bool,
    empty: str,
) -> None:
    """Print ``rows`` as JSON (``as_json``) or as an aligned table; ``empty`` is printed
    instead of an empty table."""
    if as_json:
        io.out(json.dumps([{c.key: r[c.key] for c in columns} for r in rows], ensure_ascii=False))
        return
    if not rows:
        io.out(empty)
        return
    tty = io.stdout.isatty()
    console = Console(
        file=io.stdout,
        highlight=False,
        emoji=False,
        markup=False,
        width=None if tty else WIDE,
        color_system="auto" if tty else None,
    )
    table = Table(box=None, pad_edge=False, header_style="bold" if tty else "")
    for column in columns:
        table.add_column(column.heading, no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(row[c.key]) for c in columns))
    with console.capture() as capture:
        console.print(table)
    for line in capture.get().splitlines():
        io.out(line.rstrip())


def _cell(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value)
    return "" if value is None else str(value)
