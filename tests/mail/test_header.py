"""Header splitting, unfolding, encoded words, dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from postel.mail import decode_encoded_words, parse_date, split_header, unfold


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
