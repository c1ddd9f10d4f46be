"""The log line format: client input can never forge a line or reach a terminal raw."""

from __future__ import annotations

import logging

import pytest

from postel.app import _KeyValueFormatter


def line(**extra: object) -> str:
    record = logging.LogRecord("t", logging.INFO, "", 0, "smtp.transaction", None, None)
    record.__dict__.update(extra)
    return _KeyValueFormatter().format(record)


@pytest.mark.parametrize(
    "hostile",
    [
        "evil\x1b[2J\x1b[1;31mFAKE",
        "a\nb 2026-01-01 INFO smtp.transaction result=forged",
        "x\x0by",
        "x\u2028y",
        "x\u0085y",
        "x\x00y",
        "tab\there",
        "",
    ],
)
def test_unprintable_values_are_escaped(hostile: str) -> None:
    out = line(helo=hostile, size=12)
    assert out.isprintable(), out
    assert "\n" not in out and "\x1b" not in out
    assert out.endswith("size=12")
    assert f"helo={hostile!r}" in out


def test_plain_values_stay_plain() -> None:
    assert line(queue_id="7KQ2M9XH4T", size=3).endswith("queue_id=7KQ2M9XH4T size=3")
    assert "rcpt='a b'" in line(rcpt="a b")
