"""The connection core: framing of lines and literals, the state table, APPEND
streaming, IDLE, AUTHENTICATE, STARTTLS, and the memory bounds."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.errors import LocalProtocolError
from postel.imap import limits
from postel.imap.commands import (
    Capability,
    Fetch,
    Login,
    Logout,
    Noop,
    Search,
    Select,
    StartTls,
    State,
)
from postel.imap.connection import CONTINUE_LITERAL, ConnectionConfig, ServerConnection
from postel.imap.events import (
    NEED_DATA,
    AppendAborted,
    AppendCommandEnd,
    AppendData,
    AppendMessageEnd,
    AppendStarted,
    AuthenticateResponse,
    BadCommand,
    CommandReceived,
    CommandRefused,
    ConnectionClosed,
    IdleDone,
    LiteralContinuationNeeded,
)

Out = list[object]


def drain(conn: ServerConnection, out: Out, *, accept: bool = True, react: bool = False) -> None:
    """Pull events until NeedData/ConnectionClosed, answering literal decisions and
    merging AppendData chunks (so transcripts compare independent of splits). With
    ``react``, LOGIN, SELECT and LOGOUT succeed as a driver would make them."""
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return
        if react and isinstance(event, CommandReceived):
            if isinstance(event.command, Login):
                conn.authenticated()
            elif isinstance(event.command, Select):
                conn.selected()
            elif isinstance(event.command, Logout):
                conn.logout()
        if isinstance(event, AppendData) and out and isinstance(out[-1], AppendData):
            out[-1] = AppendData(out[-1].data + event.data)
        else:
            out.append(event)
        if isinstance(event, LiteralContinuationNeeded | AppendStarted):
            out.append(conn.accept_literal() if accept else conn.reject_literal())
        if isinstance(event, ConnectionClosed):
            return


def run(data: bytes | Iterable[bytes], *, state: State = State.AUTHENTICATED, **kw: object) -> Out:
    conn = ServerConnection(ConnectionConfig(**kw), state=state)  # type: ignore[arg-type]
    out: Out = []
    for chunk in [data] if isinstance(data, bytes) else data:
        conn.receive_data(chunk)
        drain(conn, out)
    conn.receive_data(b"")
    drain(conn, out)
    return out


def commands(out: Out) -> list[object]:
    return [e.command for e in out if isinstance(e, CommandReceived)]


def test_pipelined_commands_come_one_by_one() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a CAPABILITY\r\nb NOOP\r\nc LOGIN fred secret\r\n")
    assert conn.next_event() == CommandReceived(Capability("a"))
    assert conn.next_event() == CommandReceived(Noop("b"))
    assert conn.next_event() == CommandReceived(Login("c", "fred", "secret"))
    assert conn.next_event() is NEED_DATA


def test_state_changes_apply_to_pipelined_commands() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGIN fred secret\r\nb SELECT inbox\r\nc FETCH 1 FLAGS\r\n")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.authenticated()
    assert conn.next_event() == CommandReceived(Select("b", "INBOX"))
    conn.selected(read_only=True)
    assert conn.read_only
    event = conn.next_event()
    assert isinstance(event, CommandReceived) and isinstance(event.command, Fetch)


def test_commands_refused_in_the_wrong_state() -> None:
    out = run(
        b"a FETCH 1 FLAGS\r\nb STARTTLS\r\nc LOGIN a b\r\nd XYZZY\r\n", state=State.AUTHENTICATED
    )
    assert [type(e) for e in out[:4]] == [BadCommand] * 4
    assert [e.tag for e in out[:4] if isinstance(e, BadCommand)] == ["a", "b", "c", "d"]
    pre = run(b"a SELECT INBOX\r\nb ENABLE IMAP4rev2\r\n", state=State.NOT_AUTHENTICATED)
    assert [type(e) for e in pre[:2]] == [BadCommand, BadCommand]


def test_synchronizing_literal_waits_for_the_driver() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGIN {4}\r\n")
    assert conn.next_event() == LiteralContinuationNeeded("a", 4)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    assert conn.accept_literal() == CONTINUE_LITERAL
    conn.receive_data(b"fred {6}\r\n")
    assert conn.next_event() == LiteralContinuationNeeded("a", 6)
    assert conn.accept_literal() == b"+ Ready for literal data\r\n"
    conn.receive_data(b"se\r\nct\r\n")
    assert conn.next_event() == CommandReceived(Login("a", "fred", "se\r\nct"))


def test_non_synchronizing_literal_needs_no_decision() -> None:
    out = run(b"a LOGIN {4+}\r\nfred {3+}\r\nabc\r\n", state=State.NOT_AUTHENTICATED)
    assert commands(out) == [Login("a", "fred", "abc")]


def test_refused_synchronizing_literal_drops_the_command() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGIN {4}\r\nb NOOP\r\n")
    assert conn.next_event() == LiteralContinuationNeeded("a", 4)
    conn.reject_literal()
    assert conn.next_event() == CommandReceived(Noop("b"))


def test_literal_bomb_refused_before_any_octet() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGIN {4294967295}\r\nb NOOP\r\n")
    assert conn.next_event() == BadCommand("a", "literal too large")
    assert conn.next_event() == CommandReceived(Noop("b"))
    conn.receive_data(b"c LOGIN {999999999999999999999999999999}\r\n")
    assert conn.next_event() == BadCommand("c", "literal too large")
    assert conn.buffered == 0


def test_oversized_non_synchronizing_literal_is_discarded_streaming() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGIN {10000000+}\r\n")
    assert conn.next_event() == BadCommand("a", "literal too large")
    chunk = b"x" * 65536
    for _ in range(10000000 // len(chunk)):
        conn.receive_data(chunk)
        assert conn.next_event() is NEED_DATA
        assert conn.buffered == 0
    rest = 10000000 % len(chunk)
    conn.receive_data(b"x" * rest + b" {5+}\r\nabcde more\r\nb NOOP\r\n")
    assert conn.next_event() == CommandReceived(Noop("b"))


def test_literal_minus_bound() -> None:
    minus = {"literal_plus": False}
    ok = run(
        b"a LOGIN {4096+}\r\n" + b"u" * 4096 + b" p\r\n", state=State.NOT_AUTHENTICATED, **minus
    )
    assert isinstance(commands(ok)[0], Login)
    out = run(
        b"a LOGIN {4097+}\r\n" + b"u" * 4097 + b" p\r\nb NOOP\r\n",
        state=State.NOT_AUTHENTICATED,
        **minus,
    )
    assert out[0] == BadCommand("a", "literal too large")
    assert commands(out) == [Noop("b")]


def test_too_many_literals() -> None:
    line = b"a SEARCH" + b" TEXT {1+}\r\nx" * (limits.LITERALS_MAX + 1) + b"\r\nb NOOP\r\n"
    out = run(line, state=State.SELECTED)
    assert out[0] == BadCommand("a", "literal too large")
    assert commands(out) == [Noop("b")]


def test_overlong_line_is_refused_and_skipped() -> None:
    before = run(b"a LOGIN " + b"x" * 9000 + b" y\r\nb NOOP\r\n", state=State.NOT_AUTHENTICATED)
    assert before[0] == BadCommand("a", "command line too long")
    assert commands(before) == [Noop("b")]
    after = run(b"a SEARCH TEXT " + b"x" * 9000 + b"\r\nb NOOP\r\n", state=State.SELECTED)
    assert isinstance(commands(after)[0], Search)
    huge = run([b"a SEARCH TEXT ", *[b"x" * 65536] * 4, b"\r\nb NOOP\r\n"], state=State.SELECTED)
    assert huge[0] == BadCommand("a", "command line too long")
    assert commands(huge) == [Noop("b")]


def test_overlong_line_ending_in_literal_skips_the_literal() -> None:
    data = b"a LOGIN " + b"x" * 9000 + b" {5+}\r\nb NOOP\r\nc NOOP\r\n"
    out = run(data, state=State.NOT_AUTHENTICATED)
    assert commands(out) == [Noop("c")]


def test_parenthesis_bomb() -> None:
    out = run(b"a SEARCH " + b"(" * 5000 + b"\r\nb NOOP\r\n", state=State.SELECTED)
    assert isinstance(out[0], BadCommand) and "deep" in out[0].text
    assert commands(out) == [Noop("b")]


def test_bare_lf_ends_a_line_and_cr_inside_is_refused() -> None:
    assert commands(run(b"a NOOP\nb NOOP\r\n")) == [Noop("a"), Noop("b")]
    out = run(b"a NO\rOP\r\n")
    assert isinstance(out[0], BadCommand)


def test_empty_line_and_missing_tag() -> None:
    out = run(b"\r\n+ NOOP\r\n")
    assert out[:2] == [
        BadCommand(None, "empty command line"),
        BadCommand(None, "missing or invalid tag"),
    ]


def test_bad_charset_is_refused_with_no() -> None:
    out = run(b"a SEARCH CHARSET ISO-2022-JP TEXT x\r\n", state=State.SELECTED)
    assert out[0] == CommandRefused(
        "a", "unsupported charset ISO-2022-JP", "BADCHARSET (UTF-8 US-ASCII)"
    )


def test_utf8_names_after_enable() -> None:
    conn = ServerConnection(state=State.AUTHENTICATED)
    conn.receive_data('a SELECT "Entwürfe"\r\n'.encode())
    assert isinstance(conn.next_event(), BadCommand)
    conn.enable_utf8()
    conn.receive_data('b SELECT "Entwürfe"\r\n'.encode())
    assert conn.next_event() == CommandReceived(Select("b", "Entwürfe"))


# --- STARTTLS ---------------------------------------------------------------------------
def test_starttls_discards_pipelined_plaintext() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a STARTTLS\r\nb LOGIN evil evil\r\n")
    assert conn.next_event() == CommandReceived(StartTls("a"))
    assert conn.buffered == 0
    conn.receive_data(b"c LOGIN injected x\r\n")
    assert conn.next_event() is NEED_DATA
    conn.tls_established()
    conn.receive_data(b"d CAPABILITY\r\n")
    assert conn.next_event() == CommandReceived(Capability("d"))
    assert conn.next_event() is NEED_DATA


def test_starttls_refused_resumes() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a STARTTLS\r\nb NOOP\r\n")
    assert conn.next_event() == CommandReceived(StartTls("a"))
    conn.starttls_refused()
    conn.receive_data(b"c NOOP\r\n")
    assert conn.next_event() == CommandReceived(Noop("c"))
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


# --- APPEND -------------------------------------------------------------------------------
def test_append_streams_the_message() -> None:
    message = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nSubject: hi\r\n\r\nHello\r\n"
    data = b'A003 APPEND saved (\\Seen) " 7-Feb-1994 21:52:25 -0800" {%d}\r\n' % len(message)
    out = run(data + message + b"\r\nb NOOP\r\n")
    started = out[0]
    assert isinstance(started, AppendStarted)
    assert (started.tag, started.mailbox, started.flags, started.size) == (
        "A003",
        "saved",
        ("\\Seen",),
        len(message),
    )
    assert started.synchronizing and not started.binary and started.internal_date is not None
    assert out[1:] == [
        CONTINUE_LITERAL,
        AppendData(message),
        AppendMessageEnd(),
        AppendCommandEnd("A003"),
        CommandReceived(Noop("b")),
        ConnectionClosed(),
    ]


def test_append_of_a_large_message_keeps_memory_bounded() -> None:
    size = 5 * 1024 * 1024
    conn = ServerConnection(state=State.AUTHENTICATED)
    conn.receive_data(b"a APPEND INBOX {%d+}\r\n" % size)
    event = conn.next_event()
    assert isinstance(event, AppendStarted) and not event.synchronizing
    assert conn.accept_literal() == b""
    total = 0
    chunk = b"y" * 100_000
    for _ in range(size // len(chunk)):
        conn.receive_data(chunk)
        while (ev := conn.next_event()) is not NEED_DATA:
            assert isinstance(ev, AppendData) and len(ev.data) <= limits.APPEND_CHUNK_MAX
            total += len(ev.data)
        assert conn.buffered == 0
    conn.receive_data(b"y" * (size % len(chunk)) + b"\r\n")
    events = []
    while (ev := conn.next_event()) is not NEED_DATA:
        events.append(ev)
    total += sum(len(e.data) for e in events if isinstance(e, AppendData))
    assert total == size
    assert events[-2:] == [AppendMessageEnd(), AppendCommandEnd("a")]


def test_multiappend_and_literal8_and_mailbox_literal() -> None:
    data = b"a APPEND {5}\r\nINBOX (\\Seen) {3+}\r\nabc (\\Draft) ~{4+}\r\nx\x00yz {2}\r\nok\r\n"
    out = run(data)
    starts = [e for e in out if isinstance(e, AppendStarted)]
    assert [(s.mailbox, s.flags, s.size, s.binary, s.index) for s in starts] == [
        ("INBOX", ("\\Seen",), 3, False, 0),
        ("INBOX", ("\\Draft",), 4, True, 1),
        ("INBOX", (), 2, False, 2),
    ]
    assert [e.data for e in out if isinstance(e, AppendData)] == [b"abc", b"x\x00yz", b"ok"]
    assert out[0] == LiteralContinuationNeeded("a", 5)
    assert out.count(AppendMessageEnd()) == 3 and AppendCommandEnd("a") in out


def test_append_rejected_by_the_driver() -> None:
    conn = ServerConnection(state=State.AUTHENTICATED)
    conn.receive_data(b"a APPEND nosuch {5}\r\nb APPEND nosuch {5+}\r\nhello\r\nc NOOP\r\n")
    assert isinstance(conn.next_event(), AppendStarted)
    conn.reject_literal()  # the client will not send the octets
    assert isinstance(conn.next_event(), AppendStarted)
    conn.reject_literal()  # octets follow anyway: discarded
    assert conn.next_event() == CommandReceived(Noop("c"))


def test_append_too_big_and_malformed() -> None:
    out = run(b"a APPEND INBOX {101+}\r\n" + b"z" * 101 + b"\r\nb NOOP\r\n", append_limit=100)
    assert out[0] == CommandRefused("a", "message too large", "TOOBIG")
    assert commands(out) == [Noop("b")]
    no_literal = run(b"a APPEND INBOX\r\n")
    assert no_literal[0] == BadCommand("a", "APPEND needs a message literal")
    bad_flags = run(b"a APPEND INBOX (\\Seen {3+}\r\nabc\r\nb NOOP\r\n")
    assert isinstance(bad_flags[0], BadCommand) and commands(bad_flags) == [Noop("b")]
    garbage = run(b"a APPEND INBOX {1+}\r\nx garbage\r\nb NOOP\r\n")
    assert AppendAborted("a", "expected another message or the end of APPEND") in garbage
    assert commands(garbage) == [Noop("b")]


def test_eof_in_the_middle_of_an_append() -> None:
    out = run(b"a APPEND INBOX {10+}\r\nabc")
    assert out[-1] == ConnectionClosed() and AppendMessageEnd() not in out


# --- IDLE, AUTHENTICATE, LOGOUT, EOF ----------------------------------------------------
def test_idle() -> None:
    conn = ServerConnection(state=State.SELECTED)
    conn.receive_data(b"a IDLE\r\ndone\r\nb IDLE\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.begin_idle("a")
    assert conn.next_event() == IdleDone("a")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.begin_idle("b")
    assert conn.next_event() == BadCommand("b", "expected DONE")


def test_an_overlong_line_while_idling_ends_idle_once() -> None:
    """Whatever the length of a line that is not DONE, IDLE gets one tagged BAD and the
    next command is the next command. Spec: RFC 9051 §6.3.13."""
    for size in (100, 70_000, 2_000_000):
        conn = ServerConnection(state=State.SELECTED)
        conn.receive_data(b"a IDLE\r\n")
        assert isinstance(conn.next_event(), CommandReceived)
        conn.begin_idle("a")
        conn.receive_data(b"x" * size + b"\r\nb NOOP\r\n")
        events = []
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
        assert events[0] == BadCommand("a", "expected DONE"), size
        assert len(events) == 2 and isinstance(events[1], CommandReceived), (size, events)
        assert conn.idle_tag is None


def test_authenticate_exchange() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a AUTHENTICATE PLAIN\r\nAGZyZWQAYWJj\r\nb AUTHENTICATE PLAIN\r\n*\r\n")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.begin_authenticate("a")
    assert conn.next_event() == AuthenticateResponse(b"AGZyZWQAYWJj")
    conn.end_authenticate()
    assert isinstance(conn.next_event(), CommandReceived)
    conn.begin_authenticate("b")
    event = conn.next_event()
    assert isinstance(event, AuthenticateResponse) and event.cancelled


@pytest.mark.parametrize("split", [False, True])
def test_an_overlong_authenticate_response_is_a_bad_for_that_command(split: bool) -> None:
    """A response line past the line bound ends the exchange with a tagged BAD for the
    AUTHENTICATE (never a silent close); the rest of the line is dropped and the next
    command is read. Spec: RFC 9051 §6.2.2, §7.1.5; RFC 4422 §3.6."""
    conn = ServerConnection()
    conn.receive_data(b"a AUTHENTICATE PLAIN\r\n")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.begin_authenticate("a")
    long = b"A" * (20 * 1024)
    for piece in (long[:5000], long[5000:]) if split else (long,):
        conn.receive_data(piece)
    conn.receive_data(b"AAAA\r\nb NOOP\r\n")
    assert conn.next_event() == BadCommand("a", "authentication response too long")
    conn.end_authenticate()
    event = conn.next_event()
    assert isinstance(event, CommandReceived) and isinstance(event.command, Noop)


def test_logout_and_eof() -> None:
    conn = ServerConnection()
    conn.receive_data(b"a LOGOUT\r\nb NOOP\r\n")
    assert isinstance(conn.next_event(), CommandReceived)
    conn.logout()
    assert conn.state is State.LOGOUT
    assert conn.next_event() == ConnectionClosed()
    eof = ServerConnection()
    eof.receive_data(b"a NOO")
    eof.receive_data(b"")
    assert eof.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError):
        eof.receive_data(b"more")


def test_driver_misuse_raises_local_errors() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError):
        conn.accept_literal()
    with pytest.raises(LocalProtocolError):
        conn.selected()
    with pytest.raises(LocalProtocolError):
        conn.begin_idle("a")


# --- random splits -------------------------------------------------------------------------
TRANSCRIPT = (
    b"a1 LOGIN {4}\r\nfred {6+}\r\nsecret\r\n"
    b"a2 SELECT INBOX\r\n"
    b"a3 APPEND INBOX (\\Seen) {12}\r\nHello\r\nWorld {3+}\r\nabc\r\n"
    b'a4 UID SEARCH CHARSET UTF-8 SUBJECT {6+}\r\nGr\xc3\xbc\xc3\x9f FROM "x"\r\n'
    b"a5 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From)])\n"
    b"a6 STORE 1 +FLAGS (\\Seen)\r\n"
    b"a7 LOGOUT\r\n"
)


def replay(chunks: list[bytes]) -> Out:
    conn = ServerConnection()
    out: Out = []
    for chunk in chunks:
        conn.receive_data(chunk)
        drain(conn, out, react=True)
        assert conn.buffered <= conn.config.buffer_max
    conn.receive_data(b"")
    drain(conn, out, react=True)
    return out


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_splits_give_the_same_events(data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(TRANSCRIPT) - 1), max_size=30)))
    bounds = [0, *cuts, len(TRANSCRIPT)]
    chunks = [TRANSCRIPT[a:b] for a, b in itertools.pairwise(bounds)]
    assert replay(chunks) == replay([TRANSCRIPT])


def test_transcript_events() -> None:
    out = replay([TRANSCRIPT])
    names = [type(c).__name__ for c in commands(out)]
    assert names == ["Login", "Select", "Search", "Fetch", "Store", "Logout"]
    assert [e.data for e in out if isinstance(e, AppendData)] == [b"Hello\r\nWorld", b"abc"]
    search = commands(out)[2]
    assert isinstance(search, Search) and search.uid


@pytest.mark.parametrize("zeros", [0, 1, 19, 25])
def test_literal_count_with_leading_zeros(zeros: int) -> None:
    """``{0...05+}`` announces 5 octets however many zeros lead (number64 is 1*DIGIT),
    and the commands after it are read as commands. Spec: RFC 9051 §9, RFC 7888."""
    count = b"0" * zeros + b"5"
    out = run(
        b"b UID FETCH 7 (BODY.PEEK[HEADER.FIELDS ({" + count + b"+}\r\nX-Num)])\r\nc NOOP\r\n",
        state=State.SELECTED,
    )
    found = commands(out)
    assert [type(c).__name__ for c in found] == ["Fetch", "Noop"], out
