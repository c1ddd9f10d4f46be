"""parse_message never raises, its JSON summary round-trips exactly, and the ENVELOPE
pre-rendered in that JSON is the one rendered from the decoded summary; the header
shortcuts (one-pass ENVELOPE, trace scan) agree with their definitions."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from postel import limits
from postel.mail import (
    MessageSummary,
    parse_address_list,
    parse_date,
    parse_message,
    render_bodystructure,
    render_envelope,
)
from postel.mail.address import ADDRESSES_MAX, Address
from postel.mail.envelope import Envelope, envelope_from_header, field_text
from postel.mail.header import HeaderBlock, split_header
from postel.mail.summary import imap_envelope
from postel.mail.trace import trace_info

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


HEADER_PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b": ",
        b"x",
        b"\xff",
        b"From: a <b@c>",
        b"fROM:d@e",
        b"Sender: s@t",
        b"Reply-To: r@t, q@u",
        b"TO: g:h@i;",
        b"Cc: c@d",
        b"bcc:",
        b"Subject: one",
        b"subject:two",
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000",
        b"In-Reply-To: <a@b>",
        b"Message-ID: <m@n>",
        b"Received: from a by b; x",
        b"RECEIVED:",
        b"Delivered-To: u@v",
        b"delivered-to:w@x",
        b"Content-Type: text/plain",
    ]
)
HEADERS = st.lists(HEADER_PIECES, max_size=40).map(b"".join)


def _reference_envelope(header: HeaderBlock) -> Envelope:
    """The ENVELOPE by one lookup per field name (the definition the one-pass
    envelope_from_header must agree with). Spec: RFC 9051 §7.5.2, RFC 3501 §7.4.2."""

    def addresses(name: bytes) -> tuple[Address, ...]:
        out: list[Address] = []
        for f in header.get_all(name):
            out.extend(parse_address_list(f.value, max_addresses=ADDRESSES_MAX - len(out)))
            if len(out) >= ADDRESSES_MAX:
                break
        return tuple(out)

    from_ = addresses(b"from")
    return Envelope(
        date=field_text(header, b"date", last=True),
        subject=field_text(header, b"subject", last=True),
        from_=from_,
        sender=addresses(b"sender") or from_,
        reply_to=addresses(b"reply-to") or from_,
        to=addresses(b"to"),
        cc=addresses(b"cc"),
        bcc=addresses(b"bcc"),
        in_reply_to=field_text(header, b"in-reply-to", last=True),
        message_id=field_text(header, b"message-id", last=True),
    )


def _reference_trace(block: bytes) -> tuple[int, tuple[str, ...]]:
    """Received count and Delivered-To values from every split field (the definition
    trace_info's shortcut must agree with). Spec: RFC 5321 §6.3, RFC 9228 §4."""
    fields = split_header(block[: limits.SMTP_HEADER_BLOCK_MAX]).fields
    received = sum(1 for f in fields if f.name.lower() == b"received")
    delivered = tuple(
        re.sub(rb"[\r\n\x00]", b"", f.value).strip().decode("utf-8", "replace")
        for f in fields
        if f.name.lower() == b"delivered-to"
    )
    return received, delivered


@settings(max_examples=300, deadline=None)
@given(st.one_of(HEADERS, MESSAGES))
def test_header_shortcuts_agree_with_their_definitions(data: bytes) -> None:
    """The one-pass ENVELOPE and the trace scan that skips a block without trace fields
    give what a lookup per name over the split header gives, on any header."""
    assert envelope_from_header(split_header(data)) == _reference_envelope(split_header(data))
    info = trace_info(data)
    assert (info.received_count, info.delivered_to) == _reference_trace(data)
    assert parse_message(data).envelope == _reference_envelope(
        split_header(data, 0, parse_message(data).body.body_offset)
    )
