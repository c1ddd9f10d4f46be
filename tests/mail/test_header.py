"""Header splitting, unfolding, encoded words, dates."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail import decode_encoded_words, header, parse_date, split_header, unfold


def test_split_with_offsets_and_malformed_line() -> None:
    data = b"A: 1\r\n folded\r\nnot a field\r\nB :2\r\n\r\nbody"
    h = split_header(data)
    assert [f.name for f in h.fields] == [b"A", b"B"]
    a = h.fields[0]
    assert data[a.offset : a.offset + a.length] == b"A: 1\r\n folded\r\n"
    assert a.value == b" 1\r\n folded"
    assert unfold(a.value) == b" 1 folded"
    assert h.malformed == 1
    assert data[h.body_offset :] == b"body"


def test_field_bound() -> None:
    data = b"".join(b"X-%d: y\r\n" % i for i in range(50)) + b"\r\n"
    h = split_header(data, max_fields=10)
    assert len(h.fields) == 10 and h.truncated and h.body_offset == len(data)


def test_encoded_words() -> None:
    assert decode_encoded_words(b"=?utf-8?q?J=C3=B6rg_x?= =?iso-8859-1?b?6Q==?=") == "Jörg xé"
    assert decode_encoded_words(b"=?x-unknown?q?a?= plain") == "=?x-unknown?q?a?= plain"


def test_dates() -> None:
    assert parse_date(b"Mon, 6 Feb 1993 02:53:47 -0800 (PST)") == datetime(
        1993, 2, 6, 2, 53, 47, tzinfo=timezone(timedelta(hours=-8))
    )
    assert parse_date(b"20 Dec 95 19:59 CST") == datetime(
        1995, 12, 20, 19, 59, tzinfo=timezone(timedelta(hours=-6))
    )
    assert parse_date(b"garbage") is None
    assert parse_date(b"31 Feb 2020 00:00:00 +0000") is None


_HEADER_OCTETS = st.sampled_from(
    [b"A", b"b", b"-", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ", b"\n\t", b"\x80", b"="]
)


@given(
    parts=st.lists(_HEADER_OCTETS, max_size=60),
    cut=st.integers(0, 60),
    max_fields=st.integers(0, 6),
)
@settings(max_examples=2000, deadline=None)
def test_field_split_same_as_line_by_line_reading(
    parts: list[bytes], cut: int, max_fields: int
) -> None:
    """The one-pass split of well-formed headers gives what the line-by-line reading
    gives for every input: malformed lines, a last line without its line break, CR
    alone, folds, a range that ends inside the data, and the field bound."""
    data = b"".join(parts)
    end = min(cut, len(data))
    assert header._fields(data, 0, end, max_fields) == header._fields_by_line(
        data, 0, end, max_fields
    )
    well_formed = b"".join(b"F%d: v%d\r\n folded %d\r\n" % (i, i, i) for i in range(5)) + data
    head_end = header.find_header_end(well_formed)[0]
    assert header._fields(well_formed, 0, head_end, 4) == header._fields_by_line(
        well_formed, 0, head_end, 4
    )


_LONG = 300_000
"""Octets of the long lines below: with a search that tried each octet of a line again
(quadratic), one such header took minutes; read once, it takes milliseconds."""


@pytest.mark.parametrize(
    "data",
    [
        b"A: b\r\n" + b"x" * _LONG + b"\r\n\r\nbody\r\n",  # name octets, no colon
        b"S:" + b"x" * _LONG,  # no line break at the end
        b"x" * _LONG + b" y: z\r\n\r\n",  # a colon only after a space
        b"A: b\r\n" + (b"x" * 998 + b"\r\n") * (_LONG // 1000) + b"\r\n",
        b"Subject: " + b"w\r\n " * (_LONG // 4),  # folds without a final line break
        b"A:" + b" " * _LONG + b"\r\n \r\n",
    ],
    ids=["no-colon", "no-line-break", "late-colon", "many-lines", "open-fold", "spaces"],
)
def test_splitting_a_hostile_header_is_linear(data: bytes) -> None:
    """Never a hang: a header of long hostile lines is split in a child process that
    gets a minute (it needs milliseconds), with the same result as the line-by-line
    reading. The regular expressions run holding the interpreter lock, so a thread
    could not be stopped; a process can."""
    code = (
        "import sys; from postel.mail import header as h; d = sys.stdin.buffer.read(); "
        "e = h.find_header_end(d)[0]; "
        "assert h._fields(d, 0, e, 10000) == h._fields_by_line(d, 0, e, 10000); "
        "h.split_header(d)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, timeout=60, check=False, capture_output=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
