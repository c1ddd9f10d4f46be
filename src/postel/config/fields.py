"""Typed reading of TOML values: every wrong type or unknown key becomes a located error.

A ``Reader`` collects every problem of one file (it does not stop at the first) so that
``postel config check`` can list them all.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from postel.config.lines import KeyPath, LineIndex
from postel.errors import ConfigError

T = TypeVar("T")

Validator = Callable[[Any], str | None]
"""Returns an error message for a bad value, None for a good one."""

_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def dotted(path: KeyPath) -> str:
    """``("smtp", "recipients_max")`` → ``smtp.recipients_max``."""
    return ".".join(path)


class Reader:
    """Reads values out of parsed TOML tables, recording located errors."""

    def __init__(self, file: str, index: LineIndex) -> None:
        self.file = file
        self.index = index
        self.errors: list[ConfigError] = []

    def error(self, path: KeyPath, message: str) -> None:
        """Record ``message`` about ``path`` (prefixed with the key's dotted name)."""
        text = f"{dotted(path)}: {message}" if path else message
        self.errors.append(ConfigError(text, file=self.file, line=self.index.line_of(path)))

    def check_keys(self, table: Mapping[str, object], path: KeyPath, allowed: set[str]) -> None:
        """Report every key of ``table`` that is not in ``allowed``."""
        for key in table:
            if key not in allowed:
                where = f"[{dotted(path)}]" if path else "the top level"
                self.error((*path, key), f"unknown key in {where}")

    def table(self, root: Mapping[str, object], path: KeyPath) -> Mapping[str, object]:
        """The sub-table at ``path`` (empty when absent; an error when not a table)."""
        value = root.get(path[-1])
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, "must be a table")
            return {}
        return typing.cast(Mapping[str, object], value)

    def typed(self, table: Mapping[str, object], path: KeyPath, kind: type[T]) -> T | None:
        """The value at ``path`` if present and of ``kind`` (ints accepted for floats,
        booleans never accepted as numbers); None when absent or wrong (error recorded)."""
        if path[-1] not in table:
            return None
        value = table[path[-1]]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return typing.cast(T, float(value))
        if not ok:
            self.error(path, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
            return None
        return typing.cast(T, value)

    def string_list(self, table: Mapping[str, object], path: KeyPath) -> tuple[str, ...] | None:
        """A list of strings; None when absent or wrong (error recorded)."""
        if path[-1] not in table:
            return None
        value = table[path[-1]]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(path, "must be a list of strings")
            return None
        return tuple(typing.cast(list[str], value))

    def section(
        self,
        root: Mapping[str, object],
        path: KeyPath,
        cls: Callable[..., T],
        checks: Mapping[str, Validator],
    ) -> T:
        """Build the dataclass ``cls`` from the table at ``path``: every field is an
        optional key of the field's type; ``checks`` give per-field validators that return
        an error message or None. Unknown keys are errors."""
        table = self.table(root, path)
        model: object = cls
        assert dataclasses.is_dataclass(model) and isinstance(model, type)
        hints = typing.get_type_hints(model)
        names = {f.name for f in dataclasses.fields(model)}
        self.check_keys(table, path, names)
        values: dict[str, object] = {}
        for name in names & table.keys():
            value = self._field(table, (*path, name), hints[name])
            if value is None:
                continue
            check = checks.get(name)
            problem = check(value) if check is not None else None
            if problem is not None:
                self.error((*path, name), problem)
                continue
            values[name] = value
        return cls(**values)

    def _field(self, table: Mapping[str, object], path: KeyPath, hint: object) -> object:
        if typing.get_origin(hint) is tuple:
            return self.string_list(table, path)
        if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
            raw = self.typed(table, path, str)
            if raw is None:
                return None
            try:
                return hint(raw)
            except ValueError:
                choices = ", ".join(f'"{m.value}"' for m in hint)
                self.error(path, f'"{raw}" is not one of {choices}')
                return None
        if isinstance(hint, type):
            return self.typed(table, path, hint)
        raise TypeError(f"unsupported config field type {hint!r}")  # a bug in model.py


def positive(value: float) -> str | None:
    """Validator: the number must be greater than zero."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    """Validator: the number must be zero or more."""
    return None if value >= 0 else "must be 0 or more"


def networks(value: tuple[str, ...]) -> str | None:
    """Validator: every entry must be an IP network in CIDR notation."""
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f'"{entry}" is not an IP network (e.g. "192.0.2.0/24" or "2001:db8::/32")'
    return None


def one_of(*choices: str) -> Validator:
    """A validator accepting exactly ``choices`` (case-sensitive)."""

    def check(value: str) -> str | None:
        if value in choices:
            return None
        return "must be one of " + ", ".join(f'"{c}"' for c in choices)

    return check
