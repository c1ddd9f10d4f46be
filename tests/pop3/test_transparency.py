"""RETR/TOP payloads: line-end normalisation, dot-stuffing, the TOP cut, one-shot and
streaming (hypothesis: any chunking gives the one-shot result)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.pop3 import (
    DotStuffer,
    TopFilter,
    normalise_line_ends,
    pop3_size,
    stuff,
    stuff_chunks,
    top,
    top_chunks,
)

# Message-like octets: many line ends and dots, so every boundary case is reached.
message_bytes = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"H: v", b"\r\n\r\n", b" "]),
    max_size=40,
).map(b"".join) | st.binary(max_size=200)


def chunked(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p for p in points if 0 < p < len(data)})
    bounds = [0, *edges, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def unstuff(payload: bytes) -> bytes:
    """What a client recovers: drop the terminator, remove one leading dot per line."""
    assert payload.endswith(b".\r\n")
    lines = payload[:-3].split(b"\r\n")[:-1] if payload[:-3] else []
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.b\n", b"a\r\n..b\r\n.\r\n"),
        (b"a\r.\r", b"a\r\n..\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
        (b"..x\r\n", b"...x\r\n.\r\n"),
    ],
)
def test_stuff_examples(data: bytes, expected: bytes) -> None:
    assert stuff(data) == expected
    assert b"".join(stuff_chunks([data])) == expected


def test_pop3_size_counts_crlf_and_the_added_final_line_end() -> None:
    assert pop3_size(b"") == 0
    assert pop3_size(b"a\r\nb\r\n") == 6
    assert pop3_size(b"a\nb\n") == 6
    assert pop3_size(b"a\nb") == 6
    assert pop3_size(b".\r\n") == 3  # stuffing is not counted


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 0, b"H: 1\r\n\r\n"),
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 1, b"H: 1\r\n\r\nb1\r\n"),
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 9, b"H: 1\r\n\r\nb1\r\nb2\r\n"),
        (b"H: 1\nH: 2\n\nb1\nb2", 5, b"H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n"),
        (b"H: 1\r\nH: 2", 0, b"H: 1\r\nH: 2\r\n"),
        (b"\r\nbody\r\n", 0, b"\r\n"),
        (b"", 3, b""),
    ],
)
def test_top_examples(data: bytes, lines: int, expected: bytes) -> None:
    assert top(data, lines) == expected
    assert b"".join(top_chunks([data], lines)) == expected


def test_negative_top_count_is_refused() -> None:
    with pytest.raises(ValueError):
        top(b"x", -1)
    with pytest.raises(ValueError):
        TopFilter(-1)


def test_top_filter_stops_reading_once_done() -> None:
    pulled: list[bytes] = []

    def source() -> object:
        for chunk in (b"H: 1\r\n\r\n", b"b1\r\n", b"b2\r\n", b"b3\r\n"):
            pulled.append(chunk)
            yield chunk

    out = b"".join(top_chunks(source(), 1))  # type: ignore[arg-type]
    assert out == b"H: 1\r\n\r\nb1\r\n"
    assert len(pulled) == 2


@settings(max_examples=300, deadline=None)
@given(message_bytes, st.lists(st.integers(0, 250), max_size=12))
def test_streaming_stuffer_equals_one_shot(data: bytes, points: list[int]) -> None:
    chunks = chunked(data, points)
    assert b"".join(stuff_chunks(chunks)) == stuff(data)
    stuffer = DotStuffer()
    assert b"".join([*(stuffer.feed(c) for c in chunks), stuffer.end()]) == stuff(data)


@settings(max_examples=300, deadline=None)
@given(message_bytes, st.lists(st.integers(0, 250), max_size=12), st.integers(0, 6))
def test_streaming_top_equals_one_shot(data: bytes, points: list[int], lines: int) -> None:
    chunks = chunked(data, points)
    assert b"".join(top_chunks(chunks, lines)) == top(data, lines)


@settings(max_examples=300, deadline=None)
@given(message_bytes)
def test_client_recovers_the_normalised_message_of_the_counted_size(data: bytes) -> None:
    payload = stuff(data)
    recovered = unstuff(payload)
    assert recovered == normalise_line_ends(data)
    assert len(recovered) == pop3_size(data)
    # No line of the payload but the last is a lone ".", and only CRLF ends lines.
    body = payload[:-3]
    assert b"\r\n.\r\n" not in b"\r\n" + body
    assert body.replace(b"\r\n", b"").count(b"\r") == 0
    assert body.replace(b"\r\n", b"").count(b"\n") == 0
