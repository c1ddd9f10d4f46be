"""Hypothesis: split server bytes give the same events; arbitrary server bytes raise
nothing but SmtpClientProtocolError; DATA encoding round-trips through the server's
decoder."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.errors import LocalProtocolError
from postel.smtp import Path
from postel.smtp.client import ClientConfig, ClientConnection
from postel.smtp.client_content import DotStuffer
from postel.smtp.client_events import (
    ClientEvent,
    ConnectionClosed,
    EhloDone,
    Greeting,
    NeedData,
    ReplyReceived,
)
from postel.smtp.client_replies import REPLY_LINE_MAX, REPLY_LINES_MAX, SmtpClientProtocolError
from postel.smtp.transparency import BareLineEndings, DotReader

SERVER = (
    b"220-mx.example.org ESMTP\r\n220 second greeting line\r\n"
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-CHUNKING\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354 Go\r\n"
    b"250 2.0.0 Queued\r\n221 2.0.0 Bye\r\n"
)


def run(pieces: list[bytes]) -> list[ClientEvent]:
    """Drive a pipelined session, feeding the server's bytes in the given pieces."""
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    feed = iter(pieces)
    out: list[ClientEvent] = []
    steps: Iterator[Callable[[], bytes]] = iter(
        [
            conn.ehlo,
            lambda: (
                conn.mail(Path.parse("<a@example.net>"))
                + conn.rcpt(Path.parse("<b@example.org>"))
                + conn.rcpt(Path.parse("<c@example.org>"))
                + conn.data()
            ),
            lambda: conn.message(b"hello\r\n") + conn.quit(),
        ]
    )
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            conn.receive_data(next(feed, b""))
            continue
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out
        go_ahead = isinstance(event, ReplyReceived) and event.reply.code == 354
        if isinstance(event, (Greeting, EhloDone)) or go_ahead:
            next(steps)()


REFERENCE = run([SERVER])


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_replies_split_at_random_points(data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(SERVER) - 1), max_size=40)))
    bounds = [0, *cuts, len(SERVER)]
    pieces = [SERVER[a:b] for a, b in itertools.pairwise(bounds)]
    assert run(pieces) == REFERENCE


def test_reference_transcript() -> None:
    names = [type(e).__name__ for e in REFERENCE]
    assert names == [
        "Greeting",
        "EhloDone",
        "ReplyReceived",
        "ReplyReceived",
        "ReplyReceived",
        "ReplyReceived",
        "ReplyReceived",
        "ReplyReceived",
        "ConnectionClosed",
    ]


FRAGMENTS = st.sampled_from(
    [
        b"220 hi\r\n",
        b"250-PIPELINING\r\n",
        b"250 CHUNKING\r\n",
        b"250 2.0.0 ok\r\n",
        b"354 go\r\n",
        b"334 VXNlcg==\r\n",
        b"334 !!\r\n",
        b"421 bye\r\n",
        b"220 2.0.0 tls\r\n",
        b"550-5.1.1 x\r\n",
        b"\r\n",
        b"\n",
        b"-",
        b"25",
        b"x" * 700,
        b"\x00\xff",
    ]
)


@given(st.lists(st.one_of(FRAGMENTS, st.binary(max_size=30)), max_size=30), st.integers(0, 6))
@settings(max_examples=300, deadline=None)
def test_arbitrary_server_bytes(chunks: list[bytes], plan: int) -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    actions = [
        conn.ehlo,
        lambda: conn.mail(Path.parse("<a@example.net>")),
        lambda: conn.rcpt(Path.parse("<b@example.org>")),
        conn.data,
        lambda: conn.message(b"x"),
        lambda: conn.auth("PLAIN", b"\x00u\x00p"),
        lambda: conn.auth_response(b"p"),
        conn.starttls,
        conn.tls_established,
        lambda: conn.bdat(b"abc", last=True),
        conn.rset,
        conn.quit,
    ]
    for index, chunk in enumerate([*chunks, b""]):
        conn.receive_data(chunk)
        for _ in range(10):
            try:
                event = conn.next_event()
            except SmtpClientProtocolError:
                assert conn.closed
                return
            except LocalProtocolError:
                conn.tls_established()
                continue
            if isinstance(event, (NeedData, ConnectionClosed)):
                break
            with contextlib.suppress(LocalProtocolError):
                actions[(index + plan) % len(actions)]()
        assert conn.buffered <= REPLY_LINE_MAX * (REPLY_LINES_MAX + 1) + len(chunk)


CONTENT = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\r\n.\r\n", b"\xc3\xa9"]),
    max_size=40,
).map(b"".join)


def normalise(content: bytes) -> bytes:
    out = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return out if not out or out.endswith(b"\r\n") else out + b"\r\n"


@given(CONTENT, st.data())
@settings(max_examples=300, deadline=None)
def test_dot_stuffing_round_trips_through_server_decoder(
    content: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(content)), max_size=6)))
    bounds = [0, *cuts, len(content)]
    stuffer = DotStuffer()
    wire = b"".join(stuffer.feed(content[a:b]) for a, b in itertools.pairwise(bounds))
    wire += stuffer.end()
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    assert wire.count(b"\r\n.\r\n") == 1 or wire == b".\r\n"
    reader = DotReader(BareLineEndings.STRICT, 10**6)
    buf = bytearray(wire)
    decoded, ended = reader.feed(buf)
    while not ended:
        more, ended = reader.feed(buf)
        decoded += more
    assert reader.violation is None and not buf
    assert decoded == normalise(content)
