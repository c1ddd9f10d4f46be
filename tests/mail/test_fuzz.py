"""parse_message never raises and its JSON summary round-trips exactly."""

from __future__ import annotations

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
    ]
)
MESSAGES = st.one_of(st.binary(max_size=400), st.lists(PIECES, max_size=60).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_parse_never_raises_and_round_trips(data: bytes) -> None:
    s = parse_message(data)
    assert s.size == len(data)
    assert MessageSummary.from_json(s.to_json()) == s
    render_envelope(s)
    render_bodystructure(s, True)
    parse_address_list(data)
    parse_date(data)
