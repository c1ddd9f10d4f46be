"""DATA transparency: the smuggling matrix, dot-stuffing, bare line endings, strict mode."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smtp_fake_driver import codes, drive_all

from postel import limits
from postel.smtp import BareLineEndings, DotReader, ServerConfig

START = b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
SMUGGLED = b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n"

# Each of these must NOT end DATA (RELIABILITY.md test 3, CVE-2023-51764 class).
VECTORS = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r.\r\n",
    b"\r.\n",
    b"\n.\r",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\n\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n .\r\n",
]


@pytest.mark.parametrize("vector", VECTORS, ids=repr)
def test_smuggling_vector_does_not_end_data(vector: bytes) -> None:
    session = drive_all([START + b"text" + vector + SMUGGLED + b".\r\nQUIT\r\n"])
    assert codes(session.output)[-3:] == ["354", "250 2.0.0", "221 2.0.0"]
    (message,) = session.messages
    assert b"MAIL FROM:<evil@example.net>" in message.content
    # stored content: only CRLF line ends, no line "." a later parser could take for an end
    assert b"\r\n.\r\n" not in b"\r\n" + message.content
    stripped = message.content.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped


def _has_bare_line_end(data: bytes) -> bool:
    return b"\r" in data.replace(b"\r\n", b"") or b"\n" in data.replace(b"\r\n", b"")


@pytest.mark.parametrize("vector", VECTORS, ids=repr)
def test_strict_mode_refuses_bare_line_endings(vector: bytes) -> None:
    config = ServerConfig(hostname="mx.example.org", bare_line_endings=BareLineEndings.STRICT)
    session = drive_all([START + b"text" + vector + SMUGGLED + b".\r\nNOOP\r\n"], config)
    refused = _has_bare_line_end(vector)
    expected = "550 5.5.2" if refused else "250 2.0.0"
    assert codes(session.output)[-3:] == ["354", expected, "250 2.0.0"]
    assert len(session.messages) == (0 if refused else 1)


def test_normalize_rule_for_lone_dots() -> None:
    """Bare LF/CR become CRLF; a leading dot is removed from every line, so a lone dot
    line that did not end the message is stored as an empty line."""
    content = b"a\nb\rc\r\n..d\n.\n.e\r\n.\rf\r\n.\r\n"
    session = drive_all([START + content])
    assert session.messages[0].content == b"a\r\nb\r\nc\r\n.d\r\n\r\ne\r\n\r\nf\r\n"


def test_empty_message_and_immediate_end() -> None:
    session = drive_all(
        [
            START
            + b".\r\n"
            + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\r\n.\r\n"
        ]
    )
    assert [m.content for m in session.messages] == [b"", b"\r\n"]


def test_strict_text_line_limit() -> None:
    config = ServerConfig(hostname="mx.example.org", bare_line_endings=BareLineEndings.STRICT)
    ok = b"x" * (limits.SMTP_TEXT_LINE_MAX - 2)
    session = drive_all([START + ok + b"\r\n.\r\n" + START[16:] + ok + b"y\r\n.\r\n"], config)
    assert codes(session.output)[-2:] == ["354", "550 5.5.2"]
    assert [m.content for m in session.messages] == [ok + b"\r\n"]


def test_long_lines_accepted_by_default() -> None:
    line = b"x" * 100_000
    session = drive_all([START + line + b"\r\n.\r\n"])
    assert session.messages[0].content == line + b"\r\n"


def _decode(
    data: bytes, pieces: list[int], mode: BareLineEndings
) -> tuple[bytes | None, bool, bytes]:
    """Content (None once refused: what was handed out before is then moot), ended, rest."""
    reader = DotReader(mode, 10**9)
    buf = bytearray()
    out, ended, position = [], False, 0
    for size in [*pieces, len(data)]:
        buf += data[position : position + size]
        position += size
        chunk, ended = reader.feed(buf)
        out.append(chunk)
        assert len(buf) <= 4 or ended
        if ended:
            buf += data[position:]
            break
    content = b"".join(out) if reader.violation is None else None
    return content, ended, bytes(buf)


@given(
    st.lists(
        st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"xyz", b"\r\n.\r\n"]),
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=7), max_size=40),
    st.sampled_from(list(BareLineEndings)),
)
def test_decoding_is_independent_of_splits(
    parts: list[bytes], pieces: list[int], mode: BareLineEndings
) -> None:
    data = b"".join(parts)
    assert _decode(data, pieces, mode) == _decode(data, [], mode)
    _, ended, rest = _decode(data, [], mode)
    end = (b"\r\n" + data).find(b"\r\n.\r\n")
    assert ended == (end >= 0)
    if ended:
        assert rest == data[end + 3 :]


_LINE = re.compile(rb"\r\n|\r|\n")


def _reference(data: bytes, mode: BareLineEndings) -> tuple[bytes, bool, bool]:
    """Line-by-line statement of the rules in postel.smtp.transparency: returns
    (content, ended, refused)."""
    real, refused, position = True, False, 0
    out: list[bytes] = []
    while (match := _LINE.search(data, position)) is not None:
        line, term = data[position : match.start()], match.group()
        if real and line == b"." and term == b"\r\n":
            return b"".join(out), True, refused
        refused |= term != b"\r\n" or len(line) > 998
        out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")
        real, position = term == b"\r\n", match.end()
    return b"".join(out), False, refused


@given(
    st.lists(
        st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x" * 500, b"\r\n.\r\n"]),
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=7), max_size=40),
    st.sampled_from(list(BareLineEndings)),
)
def test_decoder_matches_line_by_line_reference(
    parts: list[bytes], pieces: list[int], mode: BareLineEndings
) -> None:
    data = b"".join(parts) + b"\r\n.\r\n"
    reader = DotReader(mode, 10**9)
    buf, position = bytearray(), 0
    out: list[bytes] = []
    for size in [*pieces, len(data)]:
        buf += data[position : position + size]
        position += size
        chunk, ended = reader.feed(buf)
        out.append(chunk)
        if ended:
            break
    assert ended
    content, ref_ended, refused = _reference(data, mode)
    assert ref_ended
    if mode is BareLineEndings.STRICT:
        assert (reader.violation is not None) == refused
    if reader.violation is None:
        assert b"".join(out) == content
