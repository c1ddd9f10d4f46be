"""Delimiter searches against a line-by-line reference, for any boundaries and order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail.delimiter import DelimiterScanner, Hit

BOUNDARIES = st.sampled_from([b"a", b"ab", b"aba", b"abab", b"b", b"ba", b"a\r", b"a-"])
PIECES = st.sampled_from(
    [b"\r\n", b"\n", b"--", b"a", b"b", b"ab", b"-", b"\r", b"x", b"\n--a", b"\r\n--ab", b"\n--b"]
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), BOUNDARIES),
        st.tuples(st.just("close"), st.just(b"")),
        st.tuples(st.sampled_from(["find", "find-blank"]), st.integers(0, 300)),
    ),
    max_size=60,
)


def reference(data: bytes, open_: list[bytes], pos: int, blank: bool) -> Hit | None:
    """The first empty line or delimiter line at a line start >= pos, line by line."""
    if pos > 0 and data[pos - 1] != 0x0A:
        return None
    starts = [pos] + [i + 1 for i in range(pos, len(data)) if data[i] == 0x0A]
    for line in starts:
        if blank and data.startswith(b"\r\n", line):
            return Hit(line, line + 2, -1)
        if blank and data.startswith(b"\n", line):
            return Hit(line, line + 1, -1)
        best = -1
        for level, boundary in enumerate(open_):
            if data.startswith(b"--" + boundary, line) and (
                best < 0 or len(boundary) >= len(open_[best])
            ):
                best = level
        if best >= 0:
            return Hit(line, line + 2 + len(open_[best]), best)
    return None


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=80).map(b"".join), OPS, st.sampled_from([1, 2, 3, 7, 4096]))
def test_scanner_agrees_with_reference(
    data: bytes, ops: list[tuple[str, object]], search_min: int
) -> None:
    scanner = DelimiterScanner(data, search_min)
    open_: list[bytes] = []
    for op, arg in ops:
        if op == "open":
            assert isinstance(arg, bytes)
            assert scanner.open(arg) == len(open_)
            open_.append(arg)
        elif op == "close":
            if open_:
                scanner.close()
                open_.pop()
        else:
            assert isinstance(arg, int)
            pos = min(arg, len(data))
            line = data.rfind(b"\n", 0, pos) + 1  # searches start at line starts
            blank = op == "find-blank"
            assert scanner.find(line, blank=blank) == reference(data, open_, line, blank)


def test_longest_then_innermost_boundary_wins() -> None:
    data = b"x\r\n--abab--\r\n--ab\r\n"
    scanner = DelimiterScanner(data)
    for boundary in (b"ab", b"abab", b"a", b"ab"):
        scanner.open(boundary)
    assert scanner.find(0, blank=False) == Hit(3, 9, 1)
    assert scanner.find(13, blank=False) == Hit(13, 17, 3)
    scanner.close()
    assert scanner.find(13, blank=False) == Hit(13, 17, 0)
    scanner.close()
    scanner.close()
    assert scanner.find(3, blank=False) == Hit(3, 7, 0)  # an earlier start is answered too


def test_scanner_agrees_with_reference_on_seeded_sequences() -> None:
    # Many short runs with several open boundaries: searches that stop short of the
    # end, continue, join and restart are all compared.
    pieces = [b"\r\n", b"\n", b"--", b"a", b"b", b"ab", b"-", b"\r", b"x", b"\n--a", b"\n--b"]
    boundaries = [b"a", b"ab", b"aba", b"abab", b"b", b"ba", b"a\r", b"a-"]
    rng = random.Random(2046)
    for _ in range(3000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(80)))
        scanner = DelimiterScanner(data, rng.choice([1, 2, 3, 7, 4096]))
        open_: list[bytes] = []
        for _ in range(rng.randrange(60)):
            r = rng.random()
            if r < 0.2:
                open_.append(rng.choice(boundaries))
                scanner.open(open_[-1])
            elif r < 0.3 and open_:
                scanner.close()
                open_.pop()
            else:
                line = data.rfind(b"\n", 0, rng.randrange(len(data) + 1)) + 1
                blank = rng.random() < 0.5
                assert scanner.find(line, blank=blank) == reference(data, open_, line, blank)
