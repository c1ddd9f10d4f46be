"""MIME tree, offsets, sections and the JSON summary."""

from __future__ import annotations

import pytest

from postel.errors import ProtocolError
from postel.mail import (
    MessageSummary,
    SectionText,
    find_part,
    parse_message,
    render_bodystructure,
    section_range,
)

from .dovecot_compare import CORPUS, cases

NESTED = (
    b"From: a@example.com\r\n"
    b'Content-Type: multipart/mixed; boundary="abc-def"\r\n\r\n'
    b"preamble\r\n"
    b"--abc-def\r\n"
    b'Content-Type: multipart/alternative; boundary="abc"\r\n\r\n'
    b"--abc\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--abc\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--abc-def\r\n"
    b"Content-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nFrom: b@example.net\r\n\r\ninner body\r\n"
    b"--abc-def--\r\nepilogue\r\n"
)


def test_prefix_boundary_and_missing_inner_close() -> None:
    s = parse_message(NESTED)
    root = s.body
    assert (root.type, root.subtype) == ("multipart", "mixed")
    alt, msg = root.parts
    assert [p.subtype for p in alt.parts] == ["plain", "html"]
    html = alt.parts[1]
    assert NESTED[html.body_offset : html.body_offset + html.body_length] == b"<p>html</p>"
    assert msg.message is not None
    assert msg.message.envelope.subject == b"inner"
    inner = msg.message.body
    assert NESTED[inner.body_offset : inner.body_offset + inner.body_length] == b"inner body"


def test_sections() -> None:
    s = parse_message(NESTED)
    assert find_part(s.body, (1, 2)) is not None
    assert find_part(s.body, (3,)) is None
    off, n = section_range(s, (2,), SectionText.HEADER) or (0, 0)
    assert NESTED[off : off + n] == b"Subject: inner\r\nFrom: b@example.net\r\n\r\n"
    off, n = section_range(s, (2,), SectionText.TEXT) or (0, 0)
    assert NESTED[off : off + n] == b"inner body"
    off, n = section_range(s, (1, 1), SectionText.MIME) or (0, 0)
    assert NESTED[off : off + n] == b"Content-Type: text/plain\r\n\r\n"
    assert section_range(s, (), SectionText.ALL) == (0, len(NESTED))
    assert section_range(s, (1, 1), SectionText.HEADER) is None


def test_digest_children_default_to_message_rfc822() -> None:
    data = (
        b'Content-Type: multipart/digest; boundary="b"\r\n\r\n'
        b"--b\r\n\r\nSubject: one\r\n\r\nbody\r\n--b--\r\n"
    )
    child = parse_message(data).body.parts[0]
    assert (child.type, child.subtype) == ("message", "rfc822")
    assert child.message is not None and child.message.envelope.subject == b"one"


def test_defaults_and_bodystructure() -> None:
    s = parse_message(b"Subject: x\r\n\r\nhello\r\n")
    assert render_bodystructure(s, True) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)'
    )
    assert render_bodystructure(s, False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1)'
    )


def test_no_header_end_and_empty_input() -> None:
    assert parse_message(b"").size == 0
    s = parse_message(b"Subject: only a header")
    assert s.body.body_length == 0 and s.envelope.subject == b"only a header"


def test_json_round_trip_is_versioned_and_exact() -> None:
    s = parse_message(b"Subject: caf\xe9 \x00\r\nFrom: \xff <a@b>\r\n\r\nx")
    text = s.to_json()
    assert '"v":1' in text
    assert MessageSummary.from_json(text) == s


@pytest.mark.parametrize("bad", ["", "{}", '{"v": 2}', '{"v": 1, "size": 1}', "[1]"])
def test_from_json_rejects_garbage(bad: str) -> None:
    with pytest.raises(ProtocolError):
        MessageSummary.from_json(bad)


@pytest.mark.skipif(not CORPUS.exists(), reason="conformance corpus not present")
def test_json_round_trip_on_corpus() -> None:
    for case in cases():
        s = parse_message(case.message)
        assert MessageSummary.from_json(s.to_json()) == s, case.file


def test_added_fields_count_for_the_envelope_only() -> None:
    """Fields stored before the message (a submission's added Date and Message-ID) are
    read for the ENVELOPE; the MIME offsets stay those of the message itself."""
    data = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    added = b"Date: Tue, 1 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x@example.org>\r\n"
    plain, with_added = parse_message(data), parse_message(data, added)
    assert plain.envelope.date is None and plain.envelope.message_id is None
    assert with_added.envelope.date == b"Tue, 1 Dec 2026 12:00:00 +0000"
    assert with_added.envelope.message_id == b"<x@example.org>"
    assert with_added.envelope.subject == b"s" and with_added.envelope.from_ == plain.envelope.from_
    assert with_added.body == plain.body and with_added.size == plain.size
    # The message's own Date wins over nothing; the added one is never a duplicate.
    dated = b"Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n" + data
    assert (
        parse_message(dated, b"X-Other: y\r\n").envelope.date == b"Mon, 30 Nov 2026 08:00:00 +0000"
    )
