"""parse_message never raises, its JSON summary round-trips exactly, and the ENVELOPE
pre-rendered in that JSON is the one rendered from the decoded summary."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail import (
    MessageSummary,
    parse_address_list,
    parse_date,
    parse_message,
    render_bodystructure,
    render_envelope,
)
from postel.mail.summary import imap_envelope

PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"--b",
        b"--b--",
        b"--c",
        b": ",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: multipart/digest; boundary=c",
        b"Content-Type: message/rfc822",
        b"From: a <b@c>",
        b"\xff",
        b"(",
        b'"',
        b"=?x?q?y?=",
        b" ",
        b"To: g:;",
        b"Subject: a\x00b",
        b"\x00",
    ]
)
MESSAGES = st.one_of(st.binary(max_size=400), st.lists(PIECES, max_size=60).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_parse_never_raises_and_round_trips(data: bytes) -> None:
    s = parse_message(data)
    assert s.size == len(data)
    text = s.to_json()
    assert MessageSummary.from_json(text) == s
    assert imap_envelope(text) == render_envelope(s)
    assert MessageSummary.from_json(text, envelope_only=True).envelope == s.envelope
    # No NUL in an IMAP string, whatever the message holds (RFC 9051 §4.3, CHAR8).
    assert b"\x00" not in render_envelope(s)
    assert b"\x00" not in render_bodystructure(s, True)
    parse_address_list(data)
    parse_date(data)


def test_summary_without_prerendered_envelope() -> None:
    """A summary written before the ENVELOPE was pre-rendered (no ``ie1`` key) still
    decodes, and imap_envelope tells the caller to render it."""
    s = parse_message(b"From: a@b.c\r\nSubject: hi\r\n\r\nbody\r\n")
    obj = json.loads(s.to_json())
    del obj["ie1"]
    old = json.dumps(obj, separators=(",", ":"))
    assert '"ie1"' not in old
    assert imap_envelope(old) is None
    assert MessageSummary.from_json(old) == s
    assert imap_envelope("not json") is None


def test_prerendered_envelope_with_nul_is_rendered_again() -> None:
    """An ENVELOPE pre-rendered before NULs were dropped from IMAP strings is not
    served as stored: imap_envelope has the caller render it. Spec: RFC 9051 §4.3."""
    s = parse_message(b"From: a@b.c\r\nSubject: x\x00y\r\n\r\nbody\r\n")
    obj = json.loads(s.to_json())
    obj["ie1"] = obj["ie1"].replace("xy", "x\x00y")
    assert imap_envelope(json.dumps(obj, separators=(",", ":"))) is None
    assert b'"xy"' in render_envelope(s)
