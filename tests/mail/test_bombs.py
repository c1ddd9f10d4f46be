"""MIME and header bombs within the CPU and memory budgets (RELIABILITY.md test 6:
<= 2 s and <= 64 MB each).

The tests allow 5 s so that a loaded CI machine does not fail them spuriously. Bombs
with boundaries use fresh ones each run, so that nothing cached can hide a cost.
"""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

from postel import limits
from postel.mail import BodyPart, MessageSummary, parse_message

BUDGET = 5.0
MEMORY = 64 * 1024 * 1024


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


def _measured(data: bytes) -> tuple[MessageSummary, float, int]:
    """A parse with its CPU seconds, and the peak memory allocated by another parse."""
    start = time.process_time()
    summary = parse_message(data)
    cpu = time.process_time() - start
    tracemalloc.start()
    try:
        parse_message(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return summary, cpu, peak


def _boundary(rng: random.Random, i: int, length: int = 1000) -> bytes:
    tail = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(length - 6))
    return b"%06d" % i + tail


def _opening(parent: bytes, boundary: bytes) -> bytes:
    return b'--%s\r\nContent-Type: multipart/mixed; boundary="%s"\r\n\r\n' % (parent, boundary)


def test_deep_long_boundaries_with_fresh_children() -> None:
    # 99 nested multiparts with 1,000-octet boundaries, then 100 children of the
    # innermost, each a multipart with a boundary of its own: no pattern is built per
    # stack of boundaries, so fresh boundaries cost no more than known ones.
    rng = random.Random()
    stack = [_boundary(rng, i) for i in range(99)]
    data = b'Subject: x\r\nContent-Type: multipart/mixed; boundary="%s"\r\n\r\n' % stack[0]
    data += b"".join(_opening(stack[i - 1], stack[i]) for i in range(1, 99))
    data += b"".join(_opening(stack[-1], _boundary(rng, 100_000 + k)) for k in range(100))
    s, cpu, peak = _measured(data)
    assert cpu < BUDGET
    assert peak <= MEMORY
    part, depth = s.body, 1
    while len(part.parts) == 1:
        part, depth = part.parts[0], depth + 1
    assert depth == 99 and len(part.parts) == 100
    assert all(child.type == "multipart" and not child.parts for child in part.parts)


def test_fifty_thousand_nested_short_boundaries() -> None:
    # b0, b1, ... b49999: b12 is a prefix of b123, so deep delimiters close outer parts
    # and every new part opens a new stack of boundaries.
    tag = b"%x" % random.Random().getrandbits(48)
    head = b"Content-Type: multipart/mixed; boundary=b%s0\r\n\r\n" % tag
    data = head + b"".join(
        b"--b%s%d\r\nContent-Type: multipart/mixed; boundary=b%s%d\r\n\r\n" % (tag, i, tag, i + 1)
        for i in range(50_000)
    )
    s, cpu, peak = _measured(data)
    assert cpu < BUDGET
    assert peak <= MEMORY
    assert _count(s.body) == limits.MIME_PARTS_MAX


def test_ten_thousand_parts_at_depth_hundred_with_long_boundaries() -> None:
    rng = random.Random()
    stack = [_boundary(rng, i) for i in range(99)]
    data = b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % stack[0]
    data += b"".join(_opening(stack[i - 1], stack[i]) for i in range(1, 99))
    data += (b"--%s\r\n\r\nleaf\r\n" % stack[-1]) * 10_000
    start = time.process_time()
    s = parse_message(data)
    assert time.process_time() - start < BUDGET
    assert _count(s.body) == limits.MIME_PARTS_MAX


def test_boundaries_that_are_prefixes_of_each_other() -> None:
    # Every delimiter line matches all 99 open boundaries; the longest wins.
    tag = b"%x" % random.Random().getrandbits(48)
    stack = [tag + b"a" * i for i in range(1, 100)]
    data = b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % stack[0]
    data += b"".join(_opening(stack[i - 1], stack[i]) for i in range(1, 99))
    data += (b"--%s\r\n\r\nleaf\r\n" % stack[-1]) * 10_000
    start = time.process_time()
    s = parse_message(data)
    assert time.process_time() - start < BUDGET
    assert _count(s.body) == limits.MIME_PARTS_MAX
    leaf = s.body
    while leaf.parts:
        leaf = leaf.parts[-1]
    assert leaf.body_length == 4  # b"leaf"


@pytest.mark.parametrize(
    "filler",
    [b"lorem ipsum dolor sit amet\r\n", b"--x\n", b"-", b"--b\r\n"],
    ids=["text", "dash-lines", "dashes", "near-delimiters"],
)
def test_large_body_under_hundred_nested_multiparts(filler: bytes) -> None:
    # Every open boundary is looked for in the 20 MB leaf; text without lines starting
    # with "--" is scanned once for all of them.
    stack = [b"b%d" % i for i in range(99)]
    data = b"Content-Type: multipart/mixed; boundary=%s\r\n\r\n" % stack[0]
    data += b"".join(_opening(stack[i - 1], stack[i]) for i in range(1, 99))
    data += b"--%s\r\n\r\n" % stack[-1] + filler * (20_000_000 // len(filler))
    assert _timed(data) < BUDGET


def _count(part: BodyPart) -> int:
    inner = 0 if part.message is None else _count(part.message.body)
    return 1 + inner + sum(_count(p) for p in part.parts)
