"""Transcript tests of the sans-IO POP3 server, each replayed at whole, 1-byte and
random splits (identical output required), plus hypothesis-chosen split points."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pop3.pop3_driver import CONFIG, MESSAGES, PASSWORD, USER, cuts, drive, drive_all
from postel.errors import LocalProtocolError
from postel.pop3 import (
    NEED_DATA,
    SEND_PASS,
    SIGNING_OFF,
    SYS_TEMP,
    UPDATE_FAILED,
    BadCommand,
    ConnectionClosed,
    Dele,
    NoSuchMessage,
    Pass,
    Pop3Config,
    Quit,
    Response,
    ResponseCode,
    ServerConnection,
    State,
    TooManyErrors,
    User,
    limits,
    pop3_size,
)

LOGIN = f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode()
SIZES = [pop3_size(m) for m in MESSAGES]
TOTAL = sum(SIZES)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_user_pass_stat_list_uidl_quit() -> None:
    session = drive_all([LOGIN + b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\nQUIT\r\n"])
    assert session.output == (
        b"+OK postel POP3 ready\r\n"
        b"+OK send PASS\r\n"
        + f"+OK maildrop has 3 messages ({TOTAL} octets)\r\n".encode()
        + f"+OK 3 {TOTAL}\r\n".encode()
        + f"+OK 3 messages ({TOTAL} octets)\r\n".encode()
        + f"1 {SIZES[0]}\r\n2 {SIZES[1]}\r\n3 {SIZES[2]}\r\n.\r\n".encode()
        + f"+OK 2 {SIZES[1]}\r\n".encode()
        + b"+OK\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n"
        b"+OK 3 uid-3\r\n"
        b"+OK postel POP3 server signing off\r\n"
    )
    assert session.quit == Quit(State.TRANSACTION, ())
    assert isinstance(session.events[-1], ConnectionClosed)


def test_pipelined_rfc2449_style_batch() -> None:
    """RFC 2449 §6.6: a client may send many commands in one write; responses come in
    order, and the output does not depend on how the octets arrive."""
    batch = b"CAPA\r\n" + LOGIN + b"STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"
    session = drive_all([batch])
    statuses = [
        line for line in session.lines if line.startswith((b"+OK", b"-ERR")) and b" " in line
    ]
    assert statuses[0] == b"+OK postel POP3 ready"
    assert statuses[1] == b"+OK capability list follows"
    assert statuses[-1] == b"+OK postel POP3 server signing off"
    assert session.quit == Quit(State.TRANSACTION, (1,))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_split_points_give_the_same_output(data: st.DataObject) -> None:
    transcript = (
        b"capa\r\n" + LOGIN + b"DELE 2\r\nLIST\r\nRETR 1\r\nTOP 3 1\r\nUIDL\r\nRSET\r\nQUIT\r\n"
    )
    points = data.draw(st.lists(st.integers(0, len(transcript)), max_size=30))
    assert drive([transcript], cuts(points)).output == drive([transcript]).output


def test_deleted_messages_are_not_listed_and_rset_restores() -> None:
    session = drive_all(
        [
            LOGIN + b"DELE 2\r\nDELE 2\r\nDELE 9\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 2\r\n"
            b"RETR 2\r\nTOP 2 0\r\nRSET\r\nSTAT\r\nDELE 1\r\nDELE 3\r\nQUIT\r\n"
        ]
    )
    text = session.output.decode()
    after_login = text.split(f"({TOTAL} octets)\r\n", 1)[1]
    remaining = SIZES[0] + SIZES[2]
    assert after_login.startswith(
        "+OK message 2 deleted\r\n"
        "-ERR message 2 already deleted\r\n"
        "-ERR no such message\r\n"
        f"+OK 2 {remaining}\r\n"
        f"+OK 2 messages ({remaining} octets)\r\n1 {SIZES[0]}\r\n3 {SIZES[2]}\r\n.\r\n"
        "-ERR no such message\r\n"
        "+OK\r\n1 uid-1\r\n3 uid-3\r\n.\r\n"
        "-ERR no such message\r\n"
        "-ERR no such message\r\n"
        "-ERR no such message\r\n"
        f"+OK maildrop has 3 messages ({TOTAL} octets)\r\n"
        f"+OK 3 {TOTAL}\r\n"
        "+OK message 1 deleted\r\n+OK message 3 deleted\r\n"
    )
    assert session.quit == Quit(State.TRANSACTION, (1, 3))
    dele = [e for e in session.events if isinstance(e, Dele)]
    assert [(e.msg, e.deleted) for e in dele] == [
        (2, True),
        (2, False),
        (9, False),
        (1, True),
        (3, True),
    ]
    assert sum(isinstance(e, NoSuchMessage) for e in session.events) == 2
    assert not any(isinstance(e, BadCommand) for e in session.events)


def test_retr_dot_stuffs_lines_starting_with_dot() -> None:
    session = drive_all([LOGIN + b"RETR 1\r\n"])
    assert session.output.endswith(
        f"+OK {SIZES[0]} octets\r\n".encode()
        + b"Subject: one\r\n\r\nHello\r\n..dot line\r\n...two dots\r\n..\r\nend\r\n.\r\n"
    )


def test_retr_bare_lf_message_is_sent_with_crlf_and_counted_so() -> None:
    session = drive_all([LOGIN + b"LIST 2\r\nRETR 2\r\n"])
    body = b"Subject: two\r\n\r\nbare LF body\r\nline 2\r\n"
    assert SIZES[1] == len(body)
    assert session.output.endswith(
        f"+OK 2 {len(body)}\r\n+OK {len(body)} octets\r\n".encode() + body + b".\r\n"
    )


def test_retr_of_unterminated_last_line_adds_crlf() -> None:
    session = drive_all([LOGIN + b"RETR 3\r\n"])
    assert session.output.endswith(b"l2\r\nl3\r\n.\r\n")
    assert SIZES[2] == len(MESSAGES[2]) + 2


def test_top_zero_lines_and_more_lines_than_the_body() -> None:
    session = drive_all([LOGIN + b"TOP 3 0\r\nTOP 3 99\r\nTOP 1 1\r\nTOP 3 0 1\r\nTOP 3 -1\r\n"])
    header = b"Subject: three\r\nFrom: a@example.net\r\n\r\n"
    assert session.output.split(f"({TOTAL} octets)\r\n".encode(), 1)[1] == (
        b"+OK top of message follows\r\n" + header + b".\r\n"
        b"+OK top of message follows\r\n" + header + b"l1\r\nl2\r\nl3\r\n.\r\n"
        b"+OK top of message follows\r\nSubject: one\r\n\r\nHello\r\n.\r\n"
        b"-ERR syntax: TOP msg n\r\n"
        b"-ERR syntax: TOP msg n\r\n"
    )


def test_quit_in_authorization_state() -> None:
    session = drive_all([b"QUIT\r\nUSER late\r\n"])
    assert session.output == b"+OK postel POP3 ready\r\n+OK postel POP3 server signing off\r\n"
    assert session.quit == Quit(State.AUTHORIZATION, ())
    assert not any(isinstance(e, User) for e in session.events)


def test_eof_in_transaction_applies_no_deletions() -> None:
    session = drive_all([LOGIN + b"DELE 1\r\nSTAT"])
    assert session.quit is None
    assert isinstance(session.events[-1], ConnectionClosed)


def test_commands_are_case_insensitive_and_bare_lf_ends_a_line() -> None:
    session = drive_all([f"user {USER}\npAsS {PASSWORD}\nstat\r\nnoop\n".encode()])
    assert session.output.endswith(f"+OK 3 {TOTAL}\r\n+OK\r\n".encode())


def test_pass_keeps_spaces_and_wrong_password_forgets_user() -> None:
    session = drive_all([f"USER {USER}\r\nPASS pencil\r\nPASS {PASSWORD}\r\n".encode()])
    assert session.output.endswith(b"-ERR [AUTH] authentication failed\r\n-ERR USER first\r\n")
    passes = [e for e in session.events if isinstance(e, Pass)]
    assert passes == [Pass(USER, "pencil")]
    assert "pencil" not in repr(passes[0])


def test_protocol_errors() -> None:
    session = drive_all(
        [b"PASS x\r\nAPOP a b\r\nSTAT\r\nFOO\r\nUSER\r\n" + LOGIN + b"USER x\r\nRETR\r\nRETR x\r\n"]
    )
    bad = [e.text for e in session.events if isinstance(e, BadCommand)]
    assert bad == [
        "USER first",
        "APOP not supported",
        "STAT not valid in this state",
        "unknown command",
        "syntax: USER name",
        "USER not valid in this state",
        "syntax: RETR msg",
        "syntax: RETR msg",
    ]


@pytest.mark.parametrize(
    ("login", "command"),
    [
        (b"", "QUIT"),
        (b"", "CAPA"),
        (b"", "STLS"),
        (LOGIN + b"DELE 1\r\n", "QUIT"),
        (LOGIN, "CAPA"),
        (LOGIN, "STAT"),
        (LOGIN, "NOOP"),
        (LOGIN, "RSET"),
    ],
)
def test_a_command_without_arguments_refuses_one_and_the_session_goes_on(
    login: bytes, command: str
) -> None:
    """RFC 1939 §5-6, RFC 2449 §5 and RFC 2595 §4: these commands take no argument;
    one given is a syntax error and the session goes on (QUIT neither ends it nor
    applies a deletion); trailing spaces are no argument."""
    session = drive_all([login + f"{command} extra\r\n{command}  \r\n".encode()])
    bad = [e.text for e in session.events if isinstance(e, BadCommand)]
    assert bad[0] == f"syntax: {command}"
    assert f"-ERR syntax: {command}\r\n".encode() in session.output
    if command == "QUIT":
        state = State.TRANSACTION if login else State.AUTHORIZATION
        assert session.quit is not None and session.quit.state is state


def test_line_too_long_is_refused_and_counted() -> None:
    long_line = b"USER " + b"a" * (limits.COMMAND_LINE_MAX - 7) + b"\r\n"
    assert len(long_line) == limits.COMMAND_LINE_MAX
    over = b"NOOP " + b"x" * 5000 + b"\r\n"
    session = drive_all([long_line + over + LOGIN + b"STAT\r\n"])
    bad = [e for e in session.events if isinstance(e, BadCommand)]
    assert [e.text for e in bad] == ["line too long"]
    assert session.output.endswith(f"+OK 3 {TOTAL}\r\n".encode())
    assert session.max_buffered <= limits.AUTH_LINE_MAX + session.max_piece


def test_too_many_errors_ends_the_session() -> None:
    config = Pop3Config(errors_max=3)
    session = drive_all([LOGIN + b"X\r\n" * 5 + b"QUIT\r\n"], config=config)
    assert session.output.endswith(b"-ERR unknown command\r\n-ERR too many errors, closing\r\n")
    assert isinstance(session.events[-2], TooManyErrors)
    assert isinstance(session.events[-1], ConnectionClosed)
    assert session.quit is None


def test_capa_before_and_after_login() -> None:
    session = drive([b"CAPA\r\n" + LOGIN + b"CAPA\r\n"])
    first, second = session.output.split(b"+OK capability list follows\r\n")[1:]
    assert first.split(b".\r\n")[0] == (
        b"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
        b"USER\r\nSASL SCRAM-SHA-256 PLAIN LOGIN\r\nSTLS\r\nIMPLEMENTATION postel\r\n"
    )
    assert second == (
        b"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
        b"IMPLEMENTATION postel\r\n.\r\n"
    )


def test_plaintext_refused_without_tls_and_allowed_after_stls() -> None:
    """RFC 2595 §4: USER/PASS refused before STLS; octets pipelined after STLS are
    discarded, never read as commands after the handshake (CVE-2011-0411)."""
    config = Pop3Config(tls_available=True)
    before = b"CAPA\r\nUSER a\r\nAUTH PLAIN\r\nSTLS\r\n" + LOGIN + b"STAT\r\n"
    after = b"CAPA\r\n" + LOGIN + b"STAT\r\nSTLS\r\n"
    session = drive_all([before, after], config=config)
    text = session.output.decode()
    first_capa, rest = text.split("+OK capability list follows\r\n")[1:]
    assert "USER\r\n" not in first_capa
    assert "SASL SCRAM-SHA-256\r\nSTLS\r\n" in first_capa
    assert "-ERR [AUTH] plaintext authentication disallowed without TLS, use STLS\r\n" * 2 in text
    assert "+OK Begin TLS negotiation\r\n+OK capability list follows" in text
    assert "USER\r\nSASL SCRAM-SHA-256 PLAIN LOGIN\r\nIMPLEMENTATION" in rest
    assert "STLS" not in rest.split(".\r\n")[0]
    users = [e for e in session.events if isinstance(e, User)]
    assert len(users) == 1  # only the one sent after the handshake
    assert text.endswith(f"+OK 3 {TOTAL}\r\n-ERR STLS not valid in this state\r\n")


def test_implicit_tls_offers_plaintext_and_no_stls() -> None:
    conn = ServerConnection(Pop3Config(tls_available=True), tls_active=True)
    conn.greeting()
    assert conn.plaintext_allowed
    caps = conn.capabilities()
    assert "USER" in caps and "STLS" not in caps
    assert "SASL SCRAM-SHA-256 PLAIN LOGIN" in caps


def test_stls_refusals() -> None:
    session = drive_all([b"STLS x\r\n"], config=Pop3Config())
    assert session.output.endswith(b"-ERR syntax: STLS\r\n")
    session = drive_all([b"STLS\r\n"], config=Pop3Config())
    assert session.output.endswith(b"-ERR STLS not available\r\n")
    session = drive_all([b"STLS\r\n"], tls_active=True)
    assert session.output.endswith(b"-ERR TLS already active\r\n")


def test_auth_plain_with_initial_response() -> None:
    initial = b64(f"\0{USER}\0{PASSWORD}".encode())
    session = drive_all([b"AUTH PLAIN " + initial + b"\r\nSTAT\r\n"])
    assert session.output.endswith(
        f"+OK maildrop has 3 messages ({TOTAL} octets)\r\n+OK 3 {TOTAL}\r\n".encode()
    )


def test_auth_plain_with_continuation_and_lowercase_name() -> None:
    response = b64(f"\0{USER}\0{PASSWORD}".encode())
    session = drive_all([b"auth plain\r\n" + response + b"\r\nSTAT\r\n"])
    assert session.output.startswith(b"+OK postel POP3 ready\r\n+ \r\n+OK maildrop")


def test_auth_login_two_challenges() -> None:
    session = drive_all(
        [
            b"AUTH LOGIN\r\n"
            + b64(USER.encode())
            + b"\r\n"
            + b64(PASSWORD.encode())
            + b"\r\nSTAT\r\n"
        ]
    )
    lines = session.lines
    assert lines[1] == b"+ " + b64(b"Username:")
    assert lines[2] == b"+ " + b64(b"Password:")
    assert lines[3].startswith(b"+OK maildrop has 3 messages")


def test_auth_cancelled_bad_base64_and_wrong_password() -> None:
    wrong = b64(f"\0{USER}\0nope".encode())
    session = drive_all(
        [b"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!!\r\nAUTH PLAIN " + wrong + b"\r\nNOOP\r\n"]
    )
    assert session.output == (
        b"+OK postel POP3 ready\r\n"
        b"+ \r\n-ERR authentication cancelled\r\n"
        b"+ \r\n-ERR bad base64\r\n"
        b"-ERR [AUTH] authentication failed\r\n"
        b"-ERR NOOP not valid in this state\r\n"
    )


def test_bare_auth_lists_mechanisms_and_unknown_mechanism() -> None:
    session = drive_all([b"AUTH\r\nAUTH CRAM-MD5\r\nAUTH PLAIN a b\r\n"])
    assert session.output == (
        b"+OK postel POP3 ready\r\n"
        b"+OK\r\nSCRAM-SHA-256\r\nPLAIN\r\nLOGIN\r\n.\r\n"
        b"-ERR unsupported authentication mechanism\r\n"
        b"-ERR syntax: AUTH mechanism [initial-response]\r\n"
    )


def test_auth_response_longer_than_a_command_line_is_accepted() -> None:
    # A response line over 255 octets is legal in an AUTH exchange (RFC 5034 §4).
    long_pw = "p" * 2000
    response = b64(f"\0{USER}\0{long_pw}".encode())
    session = drive_all([b"AUTH PLAIN\r\n" + response + b"\r\n"])
    assert session.output.endswith(b"+ \r\n-ERR [AUTH] authentication failed\r\n")
    over = b"A" * (limits.AUTH_LINE_MAX + 10)
    session = drive_all([b"AUTH PLAIN\r\n" + over + b"\r\nNOOP\r\n"])
    assert session.output.endswith(
        b"+ \r\n-ERR line too long\r\n-ERR NOOP not valid in this state\r\n"
    )


def test_greeting_refusal_closes() -> None:
    conn = ServerConnection(CONFIG)
    refusal = Response(False, "too busy", ResponseCode.SYS_TEMP)
    assert conn.greeting(refusal) == b"-ERR [SYS/TEMP] too busy\r\n"
    conn.receive_data(b"USER x\r\n")
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError):
        conn.greeting()


def test_driver_misuse_raises_local_protocol_error() -> None:
    conn = ServerConnection(CONFIG)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.greeting()
    assert conn.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        conn.send(SEND_PASS)
    conn.receive_data(LOGIN + b"RETR 1\r\n")
    assert conn.next_event() == User(USER)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.logged_in([], [])
    conn.send(SEND_PASS)
    assert isinstance(conn.next_event(), Pass)
    with pytest.raises(LocalProtocolError):
        conn.send(SIGNING_OFF)  # success needs logged_in
    with pytest.raises(LocalProtocolError):
        conn.challenge(b"")  # not an AUTH exchange
    with pytest.raises(LocalProtocolError):
        conn.logged_in([1, 2], ["a"])
    with pytest.raises(LocalProtocolError):
        conn.logged_in([1, 2], ["a", "a"])
    with pytest.raises(LocalProtocolError):
        conn.logged_in([1], ["has space"])
    conn.logged_in([10], ["u1"])
    assert conn.state is State.TRANSACTION
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(SIGNING_OFF)  # success needs message_follows
    assert conn.send(SYS_TEMP) == b"-ERR [SYS/TEMP] temporary system problem, try again later\r\n"
    with pytest.raises(LocalProtocolError):
        conn.message_follows()
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_quit_update_failure_and_abort() -> None:
    conn = ServerConnection(CONFIG)
    conn.greeting()
    conn.receive_data(LOGIN + b"DELE 1\r\nQUIT\r\n")
    conn.next_event()
    conn.send(SEND_PASS)
    conn.next_event()
    conn.logged_in([5, 6], ["a", "b"])
    assert isinstance(conn.next_event(), Dele)
    assert conn.next_event() == Quit(State.TRANSACTION, (1,))
    assert conn.state is State.UPDATE
    assert conn.send(UPDATE_FAILED).startswith(b"-ERR [SYS/TEMP] some deleted")
    assert conn.next_event() == ConnectionClosed()  # the session ended after UPDATE
    other = ServerConnection(CONFIG)
    other.greeting()
    assert other.abort(Response(False, "idle timeout")) == b"-ERR idle timeout\r\n"
    assert other.next_event() == ConnectionClosed()


def test_response_rendering() -> None:
    assert Response(True, "a\r\nb").render() == b"+OK a  b\r\n"
    assert Response(True, "x" * 1000).render().__len__() == limits.RESPONSE_LINE_MAX
    assert Response(False, "é", ResponseCode.IN_USE).render() == b"-ERR [IN-USE] ?\r\n"
    assert Response(True, "", ResponseCode.AUTH).render() == b"+OK\r\n"


def test_control_octets_in_a_command_line_are_refused() -> None:
    session = drive_all([b"USER a\x01b\r\nUSER a\tb\r\nNOOP\rSTAT\r\n"])
    bad = [e.text for e in session.events if isinstance(e, BadCommand)]
    assert bad == ["syntax error"] * 3
    assert not any(isinstance(e, User) for e in session.events)


def test_a_maildrop_of_one_message_is_spoken_of_in_the_singular() -> None:
    """Spec: RFC 1939 §5 (LIST), §6 (PASS)."""
    session = drive_all([LOGIN + b"DELE 1\r\nDELE 2\r\nLIST\r\nRSET\r\nQUIT\r\n"])
    lines = session.output.split(b"\r\n")
    assert lines[2] == f"+OK maildrop has 3 messages ({TOTAL} octets)".encode()
    assert f"+OK 1 message ({SIZES[2]} octets)".encode() in lines
    assert f"+OK maildrop has 3 messages ({TOTAL} octets)".encode() in lines[4:]
