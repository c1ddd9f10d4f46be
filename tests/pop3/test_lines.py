"""Bounded line assembly and argument parsing of the POP3 core."""

from __future__ import annotations

from postel.pop3.commands import parse_msg, parse_optional_msg, parse_top, split_args
from postel.pop3.lines import LineReader, ReadStatus


def test_lines_end_at_crlf_or_bare_lf() -> None:
    reader = LineReader()
    reader.feed(b"ONE\r\nTWO\nTHR")
    assert reader.read(255) == b"ONE"
    assert reader.read(255) == b"TWO"
    assert reader.read(255) is ReadStatus.NEED_DATA
    reader.feed(b"EE\r\n")
    assert reader.read(255) == b"THREE"
    assert len(reader) == 0


def test_over_long_line_is_dropped_then_reported_once() -> None:
    reader = LineReader()
    reader.feed(b"x" * 300)
    assert reader.read(10) is ReadStatus.NEED_DATA
    assert len(reader) == 0  # nothing of the long line is kept
    reader.feed(b"yyy\r\nOK\r\n")
    assert reader.read(10) is ReadStatus.TOO_LONG
    assert reader.read(10) == b"OK"


def test_bound_counts_the_line_end() -> None:
    reader = LineReader()
    reader.feed(b"123456789\n" + b"1234567890\r\n" + b"12345678\r\n")
    assert reader.read(10) == b"123456789"
    assert reader.read(10) is ReadStatus.TOO_LONG
    assert reader.read(10) == b"12345678"


def test_argument_parsing() -> None:
    assert split_args("  1   2 ") == ["1", "2"]
    assert parse_msg("7") == 7
    assert parse_msg(" 7 ") == 7
    assert parse_msg("") is None
    assert parse_msg("1 2") is None
    assert parse_msg("-1") is None
    assert parse_msg("٣") is None  # only ASCII digits
    assert parse_msg("1" * 11) is None
    assert parse_optional_msg("") == (True, None)
    assert parse_optional_msg("3") == (True, 3)
    assert parse_optional_msg("x") == (False, None)
    assert parse_top("1 0") == (1, 0)
    assert parse_top("1") is None
    assert parse_top("1 -1") is None
