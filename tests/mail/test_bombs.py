"""MIME and header bombs within the CPU budget (RELIABILITY.md test 6: <= 2 s each).

The tests allow 5 s so that a loaded CI machine does not fail them spuriously.
"""

from __future__ import annotations

import time

from postel import limits
from postel.mail import parse_message

BUDGET = 5.0


def _timed(data: bytes) -> float:
    start = time.process_time()
    parse_message(data)
    return time.process_time() - start


def test_ten_thousand_parts() -> None:
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(10_000)
    )
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    s = parse_message(data)
    assert len(s.body.parts) == limits.MIME_PARTS_MAX - 1
    assert _timed(data) < BUDGET


def test_depth_thousand() -> None:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(1000)
    )
    data = head + b"leaf\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(1000)))
    s = parse_message(data)
    depth, part = 0, s.body
    while part.parts:
        part, depth = part.parts[0], depth + 1
    assert depth == limits.MIME_DEPTH_MAX and part.opaque
    assert _timed(data) < BUDGET


def test_hundred_thousand_addresses() -> None:
    to = b",\r\n ".join(b"user%d@example.com" % i for i in range(100_000))
    data = b"To: " + to + b"\r\nSubject: x\r\n\r\nbody\r\n"
    s = parse_message(data)
    assert len(s.envelope.to) == 10_000
    assert _timed(data) < BUDGET


def test_twenty_megabyte_header() -> None:
    data = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 60) for i in range(260_000))
    assert len(data) > 20_000_000
    data += b"\r\nbody\r\n"
    s = parse_message(data)
    assert s.body.body_offset == len(data) - 6
    assert _timed(data) < BUDGET


def test_twenty_megabyte_single_field() -> None:
    data = b"Subject: " + b"x \r\n " * 4_000_000 + b"\r\n\r\nbody"
    assert _timed(data) < BUDGET
