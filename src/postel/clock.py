"""Injected time. Code that needs 'now' takes a Clock; tests pass a fixed one."""

from __future__ import annotations

import datetime as _dt
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time (UTC) and a monotonic counter (seconds)."""

    def now(self) -> _dt.datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)

    def monotonic(self) -> float:
        import time

        return time.monotonic()


class FixedClock:
    """A clock for tests: `now()` returns `at` plus whatever `advance()` added."""

    def __init__(self, at: _dt.datetime) -> None:
        self._at = at
        self._mono = 0.0

    def now(self) -> _dt.datetime:
        return self._at + _dt.timedelta(seconds=self._mono)

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._mono += seconds
