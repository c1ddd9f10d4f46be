"""Hypothesis: arbitrary client bytes never make the core raise, and its buffers stay
bounded (RELIABILITY.md test 13, D7)."""

from __future__ import annotations

import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel import limits
from postel.errors import ProtocolError
from postel.smtp import (
    NEED_DATA,
    START_MAIL_INPUT,
    AutoReply,
    ChunkReceived,
    ConnectionClosed,
    DataStarted,
    Hello,
    MessageData,
    MessageRejected,
    Quit,
    Reply,
    Reset,
    ServerConfig,
    ServerConnection,
    StartTls,
    State,
    TooManyErrors,
)
from postel.smtp.transparency import BareLineEndings

COMMANDS = [
    b"EHLO c.example\r\n",
    b"HELO c.example\r\n",
    b"MAIL FROM:<a@example.net>\r\n",
    b"MAIL FROM:<> SIZE=100 BODY=BINARYMIME\r\n",
    "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode(),
    b"RCPT TO:<b@example.org> NOTIFY=SUCCESS ORCPT=rfc822;b+40example.org\r\n",
    b"RCPT TO:<postmaster>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
    b"VRFY x\r\n",
    b"QUIT\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"..\r\n",
    b"\r",
    b"\n",
    b"x" * 600,
]

clients = st.lists(
    st.one_of(st.sampled_from(COMMANDS), st.binary(max_size=40)),
    max_size=30,
).map(b"".join)


def _reply(rng: random.Random, good: Reply) -> Reply:
    return good if rng.random() < 0.8 else Reply(550, "5.7.1", "refused\r\nby policy")


_REPLY_LINE = re.compile(rb"[2-5][0-9]{2}[ -][\x20-\x7e]*\r\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    clients,
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from(list(BareLineEndings)),
    st.booleans(),
)
def test_arbitrary_input_never_raises_and_stays_bounded(
    data: bytes, seed: int, mode: BareLineEndings, tls: bool
) -> None:
    rng = random.Random(seed)
    config = ServerConfig(
        hostname="mx.example.org",
        message_size_max=64,
        recipients_max=3,
        errors_max=50,
        bare_line_endings=mode,
        tls_available=tls,
    )
    conn = ServerConnection(config)
    out = [conn.greeting()]
    position, piece = 0, b""
    for _ in range(10_000):
        try:
            event = conn.next_event()
        except ProtocolError:
            raise AssertionError("client input made the core raise") from None
        assert conn.buffered <= limits.SMTP_COMMAND_LINE_HARD_MAX + len(piece)
        if event is NEED_DATA:
            step = rng.choice((1, 7, 64, 4096))
            piece = data[position : position + step]
            position += step
            conn.receive_data(piece)
            continue
        match event:
            case ConnectionClosed():
                break
            case MessageData():
                continue
            case (
                AutoReply(reply=r)
                | Reset(reply=r)
                | MessageRejected(reply=r)
                | ChunkReceived(reply=r)
            ):
                out.append(conn.send(r))
            case Quit(reply=r) | TooManyErrors(reply=r):
                out.append(conn.send(r))
                break
            case Hello(extended=extended):
                good = conn.ehlo_reply() if extended else conn.helo_reply()
                out.append(conn.send(_reply(rng, good)))
            case DataStarted():
                out.append(conn.send(_reply(rng, START_MAIL_INPUT)))
            case StartTls():
                out.append(conn.send(_reply(rng, Reply(220, "2.0.0", "go"))))
                if conn.state is State.TLS_PENDING:
                    conn.tls_established()
            case _:
                out.append(conn.send(_reply(rng, Reply(250, "2.0.0", "OK"))))
    else:
        raise AssertionError("no progress")
    wire = b"".join(out)
    assert _REPLY_LINE.sub(b"", wire) == b""
