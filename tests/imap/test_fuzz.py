"""Hostile input: arbitrary bytes into the core and the parser, in every state, never
raise anything but ImapProtocolError subclasses, and memory stays under its bound."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postel.imap import limits
from postel.imap.commands import (
    COMMAND_STATES,
    Authenticate,
    Enable,
    Idle,
    Login,
    Select,
    StartTls,
    State,
    parse_command,
)
from postel.imap.connection import ConnectionConfig, ServerConnection
from postel.imap.events import (
    NEED_DATA,
    AppendStarted,
    CommandReceived,
    ConnectionClosed,
    LiteralContinuationNeeded,
)
from postel.imap.grammar import ImapProtocolError

SMALL = ConnectionConfig(
    line_max_preauth=256,
    line_max=512,
    literal_max=64,
    literals_max=4,
    literals_total_max=128,
    append_limit=200,
    append_chunk_max=32,
    literal_plus=False,
)
TOKENS = [
    b"a ",
    b"LOGIN ",
    b"SELECT ",
    b"APPEND INBOX ",
    b"SEARCH ",
    b"UID FETCH 1:* ",
    b"STORE 1 +FLAGS ",
    b"LIST ",
    b"(",
    b")",
    b"[",
    b"]",
    b"<0.5>",
    b'"',
    b"\\",
    b"{3}",
    b"{3+}",
    b"~{2}",
    b"{4294967296}",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"*",
    b"%",
    b"&",
    b"-",
    b"NIL",
    b"BODY[HEADER.FIELDS (A)]",
    b"OR NOT ",
    b"1-Jan-2000",
    b"\x00",
    b"\xff",
    b"STARTTLS\r\n",
    b"IDLE\r\n",
    b"AUTHENTICATE PLAIN\r\n",
    b"ENABLE UTF8=ACCEPT\r\n",
    b"SELECT INBOX\r\n",
    b"LOGIN a b\r\n",
    b"DONE\r\n",
    b"x",
]
wire = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=20)), max_size=40).map(
    b"".join
)
states = st.sampled_from([State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED])


def react(conn: ServerConnection, event: object) -> None:
    """What a driver does after a successful command, so every mode gets fuzzed."""
    if not isinstance(event, CommandReceived):
        return
    command = event.command
    if isinstance(command, Login) and conn.state is State.NOT_AUTHENTICATED:
        conn.authenticated()
    elif isinstance(command, Select):
        conn.selected()
    elif isinstance(command, Idle):
        conn.begin_idle(command.tag)
    elif isinstance(command, Authenticate):
        conn.begin_authenticate(command.tag)
    elif isinstance(command, StartTls):
        conn.tls_established()
    elif isinstance(command, Enable):
        conn.enable_utf8()


def pump(conn: ServerConnection, decide: st.DataObject | None) -> None:
    for _ in range(10_000):
        event = conn.next_event()
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            break
        if isinstance(event, LiteralContinuationNeeded | AppendStarted):
            accept = decide.draw(st.booleans()) if decide is not None else True
            if accept:
                conn.accept_literal()
            else:
                conn.reject_literal()
        react(conn, event)
    else:
        raise AssertionError("the core did not stop producing events")
    assert conn.buffered <= conn.config.buffer_max


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), states, st.lists(wire, min_size=1, max_size=6), st.booleans())
def test_core_survives_arbitrary_bytes(
    data: st.DataObject, state: State, chunks: list[bytes], utf8: bool
) -> None:
    conn = ServerConnection(SMALL, state=state, utf8=utf8)
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
            pump(conn, data)
    conn.receive_data(b"")
    pump(conn, data)
    assert conn.next_event() == ConnectionClosed()
    assert conn.buffered == 0


@settings(max_examples=100, deadline=None)
@given(states, st.binary(min_size=1, max_size=4096))
def test_core_with_default_bounds(state: State, data: bytes) -> None:
    conn = ServerConnection(state=state)
    conn.receive_data(data)
    pump(conn, None)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([*sorted(COMMAND_STATES), "UID FETCH", "UID SEARCH", "UID STORE", "X"]),
    st.lists(wire, min_size=1, max_size=3),
    st.lists(st.binary(max_size=10), max_size=2),
    st.booleans(),
)
def test_parser_raises_only_protocol_errors(
    name: str, pieces: list[bytes], literals: list[bytes], utf8: bool
) -> None:
    texts = [p.replace(b"\n", b" ") for p in pieces]
    literals = literals[: len(texts) - 1]
    parts = [t + b"{%d}" % len(lit) for t, lit in zip(texts, literals, strict=False)]
    parts.append(texts[len(literals)])
    parts[0] = b"t " + name.encode() + b" " + parts[0]
    with contextlib.suppress(ImapProtocolError):
        parse_command(parts, literals, utf8=utf8)


@settings(max_examples=50, deadline=None)
@example(limits.PAREN_DEPTH_MAX)
@example(limits.PAREN_DEPTH_MAX + 1)
@given(st.integers(1, 200))
def test_parenthesis_bomb_is_bounded(depth: int) -> None:
    conn = ServerConnection(state=State.SELECTED)
    conn.receive_data(b"a SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n")
    event = conn.next_event()
    assert isinstance(event, CommandReceived) == (depth <= limits.PAREN_DEPTH_MAX)
