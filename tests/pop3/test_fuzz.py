"""Hypothesis: arbitrary client bytes in every state never make the core raise (client
input is answered, never raised), responses stay well-formed lines, and buffers stay bounded
(RELIABILITY.md test 13, D7)."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pop3.pop3_driver import PASSWORD, USER, cuts, drive
from postel.pop3 import (
    NEED_DATA,
    SYS_TEMP,
    Answered,
    AuthResponse,
    AuthStarted,
    ConnectionClosed,
    Pass,
    Pop3Config,
    Quit,
    Retr,
    ServerConnection,
    StartTls,
    Top,
    User,
    limits,
)

LOGIN = f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode()
PREFIXES = {
    "authorization": b"",
    "transaction": LOGIN,
    "auth-exchange": b"AUTH PLAIN\r\n",
    "auth-login": b"AUTH LOGIN\r\n" + base64.b64encode(USER.encode()) + b"\r\n",
}
TOKENS = [
    b"USER a@b\r\n",
    b"PASS x y\r\n",
    LOGIN,
    b"AUTH\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN =\r\n",
    b"AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9YWJj\r\n",
    b"STLS\r\n",
    b"CAPA\r\n",
    b"STAT\r\n",
    b"LIST\r\n",
    b"LIST 1\r\n",
    b"UIDL 2\r\n",
    b"RETR 1\r\n",
    b"RETR 4294967295\r\n",
    b"TOP 2 0\r\n",
    b"TOP 3 99999999999999999999\r\n",
    b"DELE 1\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"APOP a b\r\n",
    b"QUIT\r\n",
    b"*\r\n",
    b".\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    b"\x00",
    b"\xff\xfe",
    b"x" * 300,
    b"A" * 13000,
]

client_bytes = st.lists(st.sampled_from(TOKENS) | st.binary(max_size=64), max_size=25).map(b"".join)


def check_output(output: bytes) -> None:
    assert output.endswith(b"\r\n")
    for line in output.split(b"\r\n")[:-1]:
        assert b"\r" not in line and b"\n" not in line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(PREFIXES)),
    client_bytes,
    st.lists(st.integers(0, 20000), max_size=20),
    st.booleans(),
    st.booleans(),
)
def test_any_bytes_in_any_state(
    prefix: str, data: bytes, points: list[int], plaintext: bool, tls_active: bool
) -> None:
    config = Pop3Config(tls_available=True, plaintext_without_tls=plaintext, errors_max=5)
    transcript = PREFIXES[prefix] + data
    # The scripted driver is correct, so nothing may raise, not even ProtocolError.
    session = drive([transcript, data], cuts(points), config, tls_active=tls_active)
    check_output(session.output)
    assert session.max_buffered <= limits.AUTH_LINE_MAX + session.max_piece


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), client_bytes)
def test_driver_answering_at_random_keeps_the_core_consistent(
    data: st.DataObject, payload: bytes
) -> None:
    """A driver that refuses or accepts policy events at random: the core never raises
    for client input, and every event can be answered in the way its type allows."""
    conn = ServerConnection(Pop3Config(tls_available=True, plaintext_without_tls=True))
    out = [conn.greeting()]
    conn.receive_data(payload)
    conn.receive_data(b"")
    for _ in range(200):
        event = conn.next_event()
        assert event is not NEED_DATA  # EOF was given
        if isinstance(event, ConnectionClosed):
            break
        if isinstance(event, Answered):
            out.append(event.response)
            continue
        accept = data.draw(st.booleans())
        match event:
            case Pass() | AuthStarted() | AuthResponse():
                if not accept:
                    out.append(conn.send(SYS_TEMP))
                elif isinstance(event, Pass) or data.draw(st.booleans()):
                    out.append(conn.logged_in([3, 4], ["a", "b"]))
                else:
                    out.append(conn.challenge(b"more"))
            case Retr() | Top():
                out.append(conn.message_follows() if accept else conn.send(SYS_TEMP))
                if accept:
                    out.append(b".\r\n")
            case StartTls():
                out.append(conn.send(SYS_TEMP))
            case User() | Quit():
                out.append(conn.send(SYS_TEMP))
        assert conn.buffered <= len(payload)
    check_output(b"".join(out))
