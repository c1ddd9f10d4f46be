"""Transcript tests of the sans-IO SMTP server, each replayed at 1-byte, random and whole
splits (identical output required)."""

from __future__ import annotations

import pytest
from smtp_fake_driver import SPLITTERS, codes, drive, drive_all, replies

from postel import limits
from postel.errors import LocalProtocolError
from postel.smtp import (
    NEED_DATA,
    OK,
    AutoReply,
    BareLineEndings,
    ConnectionClosed,
    DataStarted,
    Hello,
    Mailbox,
    MailFrom,
    Path,
    RcptTo,
    Reply,
    ServerConfig,
    ServerConnection,
    State,
)

EHLO = b"EHLO client.example.net\r\n"


def test_basic_transaction() -> None:
    session = drive_all(
        [
            EHLO + b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
            b"DATA\r\nSubject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n"
        ]
    )
    assert codes(session.output) == [
        "220",
        "250",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "250 2.0.0",
        "221 2.0.0",
    ]
    assert session.output.startswith(
        b"220 mx.example.org ESMTP\r\n250-mx.example.org\r\n250-PIPELINING\r\n"
    )
    (message,) = session.messages
    assert message.reverse_path == "<alice@example.net>"
    assert message.recipients == ["<bob@example.org>"]
    assert message.content == b"Subject: hi\r\n\r\nHello\r\n"


def test_ehlo_keywords() -> None:
    conn = ServerConnection(
        ServerConfig(hostname="mx.example.org", tls_available=True, message_size_max=1000)
    )
    lines = conn.ehlo_reply().lines
    assert lines == (
        "mx.example.org",
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
        "BINARYMIME",
        "DSN",
        "HELP",
    )
    tls = ServerConnection(
        ServerConfig(hostname="mx.example.org", tls_available=True), tls_active=True
    )
    assert "STARTTLS" not in tls.ehlo_reply().lines


def test_requiretls_offered_only_over_tls() -> None:
    """REQUIRETLS is advertised, and MAIL's REQUIRETLS accepted, only once TLS is
    active. Spec: RFC 8689 §4.1."""
    cfg = ServerConfig(hostname="mx.example.org", tls_available=True, requiretls=True)
    assert "REQUIRETLS" not in ServerConnection(cfg).ehlo_reply().lines
    assert "REQUIRETLS" in ServerConnection(cfg, tls_active=True).ehlo_reply().lines


def test_pipelining_rfc2920_example() -> None:
    """RFC 2920 §3.2 example: two pipelined transactions, replies in command order."""
    group = (
        b"MAIL FROM:<mrose@dbc.mtview.ca.us>\r\nRCPT TO:<ned@innosoft.com>\r\n"
        b"RCPT TO:<dan@innosoft.com>\r\nRCPT TO:<unknown@innosoft.com>\r\nDATA\r\n"
    )
    body = b"Date: today\r\n\r\nmessage\r\n.\r\n"
    session = drive_all([EHLO + group + body + group + body + b"QUIT\r\n"])
    one = ["250 2.1.0", "250 2.1.5", "250 2.1.5", "550 5.1.1", "354", "250 2.0.0"]
    assert codes(session.output) == ["220", "250", *one, *one, "221 2.0.0"]
    assert len(session.messages) == 2
    assert session.messages[1].recipients == ["<ned@innosoft.com>", "<dan@innosoft.com>"]


def test_data_without_valid_recipient_is_554_and_content_read_as_commands() -> None:
    session = drive_all(
        [EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<unknown@example.org>\r\nDATA\r\nNOOP\r\n"]
    )
    assert codes(session.output)[-3:] == ["550 5.1.1", "554 5.5.1", "250 2.0.0"]


def test_null_sender_postmaster_and_source_route() -> None:
    session = drive_all(
        [
            EHLO + b"MAIL FROM:<>\r\nRCPT TO:<PostMaster>\r\n"
            b"RCPT TO:<@relay.example,@[192.0.2.1]:user@example.org>\r\n"
            b"DATA\r\nx\r\n.\r\n"
        ]
    )
    (message,) = session.messages
    assert message.reverse_path == "<>"
    assert message.recipients == ["<postmaster>", "<user@example.org>"]


def test_quoted_local_part_and_space_after_colon() -> None:
    session = drive_all(
        [EHLO + b'MAIL FROM: <"john \\"q\\" doe"@example.net>\r\nRCPT TO:<"a>b"@example.org>\r\n']
    )
    assert codes(session.output)[-2:] == ["250 2.1.0", "250 2.1.5"]


def test_missing_angle_brackets_refused() -> None:
    session = drive_all([EHLO + b"MAIL FROM:alice@example.net\r\nMAIL FROM:<a@example.net>x\r\n"])
    assert codes(session.output)[-2:] == ["501 5.5.2", "501 5.5.2"]


def test_smtputf8_addresses() -> None:
    utf8 = "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\nDATA\r\nx\r\n.\r\n"
    session = drive_all([EHLO + utf8.encode()])
    assert session.messages[0].reverse_path == "<jörg@bücher.example>"
    assert session.messages[0].recipients == ["<δοκιμή@παράδειγμα.δοκιμή>"]


def test_non_ascii_without_smtputf8_is_553() -> None:
    session = drive_all(
        [
            EHLO
            + "MAIL FROM:<jörg@example.net>\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<ü@example.org>\r\n".encode()
        ]
    )
    assert codes(session.output)[-3:] == ["553 5.6.7", "250 2.1.0", "553 5.6.7"]


def test_parameters_need_ehlo_and_unknown_is_555() -> None:
    session = drive_all(
        [
            b"HELO c\r\nMAIL FROM:<a@example.net> SIZE=10\r\n"
            + EHLO
            + b"MAIL FROM:<a@example.net> FOO=1\r\n"
        ]
    )
    assert codes(session.output)[-3:] == ["555 5.5.4", "250", "555 5.5.4"]


def test_size_exceeded_in_mail_and_in_data() -> None:
    config = ServerConfig(hostname="mx.example.org", message_size_max=10)
    session = drive_all(
        [
            EHLO + b"MAIL FROM:<a@example.net> SIZE=11\r\nMAIL FROM:<a@example.net> SIZE=10\r\n"
            b"RCPT TO:<b@example.org>\r\nDATA\r\n0123456789ABC\r\n.\r\n"
            b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n01234567\r\n.\r\n"
        ],
        config,
    )
    assert codes(session.output)[2:] == [
        "552 5.3.4",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "552 5.3.4",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "250 2.0.0",
    ]
    assert [m.content for m in session.messages] == [b"01234567\r\n"]


def test_too_many_recipients() -> None:
    config = ServerConfig(hostname="mx.example.org", recipients_max=2)
    rcpts = b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(4))
    session = drive_all(
        [EHLO + b"MAIL FROM:<a@example.net>\r\n" + rcpts + b"DATA\r\nx\r\n.\r\n"], config
    )
    assert codes(session.output)[2:] == [
        "250 2.1.0",
        "250 2.1.5",
        "250 2.1.5",
        "452 4.5.3",
        "452 4.5.3",
        "354",
        "250 2.0.0",
    ]
    assert session.messages[0].recipients == ["<r0@example.org>", "<r1@example.org>"]


def test_over_long_command_line() -> None:
    long_local = b"x" * 600
    session = drive_all(
        [
            EHLO + b"MAIL FROM:<" + long_local + b"@example.net>\r\n"
            b"NOOP " + b"y" * (limits.SMTP_COMMAND_LINE_HARD_MAX * 3) + b"\r\nNOOP\r\n"
        ]
    )
    assert codes(session.output)[2:] == ["500 5.5.2", "500 5.5.2", "250 2.0.0"]


def test_extension_allowance_widens_the_line() -> None:
    local = b"x" * (limits.SMTP_COMMAND_LINE_MAX - 40)
    line = b"MAIL FROM:<" + local + b"@example.net> SIZE=100 RET=HDRS ENVID=QQ314159\r\n"
    assert len(line) > limits.SMTP_COMMAND_LINE_MAX
    session = drive_all([EHLO + line])
    assert codes(session.output)[-1] == "250 2.1.0"


def test_bare_lf_and_cr_in_command_line() -> None:
    session = drive_all([EHLO + b"NOOP\nNOOP\r\nNOOP\rNOOP\r\nNOOP\r\n"])
    assert codes(session.output)[2:] == ["500 5.5.2", "500 5.5.2", "250 2.0.0"]


def test_bad_sequence_and_unknown_commands() -> None:
    session = drive_all(
        [
            b"MAIL FROM:<a@example.net>\r\nFOO\r\n\r\nRCPT TO:<a@example.net>\r\n"
            + EHLO
            + b"DATA\r\n"
        ]
    )
    assert codes(session.output)[1:] == [
        "503 5.5.1",
        "500 5.5.1",
        "500 5.5.2",
        "503 5.5.1",
        "250",
        "503 5.5.1",
    ]


def test_vrfy_expn_help_noop_rset() -> None:
    session = drive_all(
        [
            EHLO
            + b"VRFY root\r\nEXPN staff\r\nHELP\r\nNOOP x\r\nMAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<b@example.org>\r\n"
        ]
    )
    assert codes(session.output)[2:] == [
        "252 2.0.0",
        "502 5.5.1",
        "214 2.0.0",
        "250 2.0.0",
        "250 2.1.0",
        "250 2.0.0",
        "503 5.5.1",
    ]


def test_errors_max_gives_421_and_close() -> None:
    config = ServerConfig(hostname="mx.example.org", errors_max=3)
    session = drive_all([b"FOO\r\n" * 6], config)
    assert codes(session.output) == ["220", "500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"]
    assert session.events[-1] == "TooManyErrors"


def test_eof_mid_data_closes() -> None:
    session = drive_all(
        [EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npartial"]
    )
    assert session.messages == []
    assert session.events[-1] == "ConnectionClosed"


def test_starttls_injection_is_discarded() -> None:
    """Plaintext pipelined after STARTTLS is never answered (RFC 3207 §5, CVE-2011-0411)."""
    session = drive_all(
        [
            EHLO + b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<x@example.org>\r\n",
            EHLO + b"QUIT\r\n",
        ]
    )
    assert codes(session.output) == ["220", "250", "220 2.0.0", "250", "221 2.0.0"]
    assert b"STARTTLS" in session.output.split(b"220 2.0.0")[0]
    assert b"STARTTLS" not in session.output.split(b"220 2.0.0")[1]


def test_starttls_rules() -> None:
    config = ServerConfig(hostname="mx.example.org")  # no TLS
    session = drive_all(
        [
            b"HELO c\r\nSTARTTLS\r\n"
            + EHLO
            + b"STARTTLS\r\nMAIL FROM:<a@example.net>\r\nSTARTTLS\r\n"
        ],
        config,
    )
    assert codes(session.output)[1:] == [
        "250",
        "502 5.5.1",
        "250",
        "502 5.5.1",
        "250 2.1.0",
        "503 5.5.1",
    ]


def test_tls_established_resets_to_pre_ehlo() -> None:
    session = drive_all(
        [EHLO + b"STARTTLS\r\n", b"MAIL FROM:<a@example.net>\r\n" + EHLO + b"STARTTLS\r\n"]
    )
    assert codes(session.output) == ["220", "250", "220 2.0.0", "503 5.5.1", "250", "503 5.5.1"]


def test_bdat_chunks() -> None:
    body = b"Subject: x\r\n\r\n.line with dot\r\n"
    session = drive_all(
        [
            EHLO + b"MAIL FROM:<a@example.net> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\n"
            b"BDAT 10\r\n"
            + body[:10]
            + b"BDAT %d LAST\r\n" % (len(body) - 10)
            + body[10:]
            + b"QUIT\r\n"
        ]
    )
    assert codes(session.output)[2:] == [
        "250 2.1.0",
        "250 2.1.5",
        "250 2.0.0",
        "250 2.0.0",
        "221 2.0.0",
    ]
    assert session.messages[0].content == body  # no dot-unstuffing in BDAT
    assert b"250 2.0.0 10 octets received\r\n" in session.output


def test_bdat_zero_last_and_data_mix() -> None:
    session = drive_all(
        [
            EHLO
            + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nBDAT 3\r\nabcDATA\r\nBDAT 0 LAST\r\n"
            b"MAIL FROM:<a@example.net> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        ]
    )
    assert codes(session.output)[2:] == [
        "250 2.1.0",
        "250 2.1.5",
        "250 2.0.0",
        "503 5.5.1",
        "250 2.0.0",
        "250 2.1.0",
        "250 2.1.5",
        "503 5.5.1",
    ]
    assert session.messages[0].content == b"abc"


def test_bdat_out_of_sequence_is_consumed() -> None:
    """Octets of a refused BDAT are read and dropped so the session stays in sync."""
    session = drive_all([EHLO + b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"])
    assert codes(session.output)[2:] == ["503 5.5.1", "250 2.0.0"]


def test_bdat_over_size_is_rejected_after_reading() -> None:
    config = ServerConfig(hostname="mx.example.org", message_size_max=5)
    session = drive_all(
        [
            EHLO
            + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nBDAT 4\r\nabcdBDAT 4 LAST\r\nefghBDAT 1 LAST\r\nzNOOP\r\n"
        ],
        config,
    )
    assert codes(session.output)[2:] == [
        "250 2.1.0",
        "250 2.1.5",
        "250 2.0.0",
        "552 5.3.4",
        "503 5.5.1",
        "250 2.0.0",
    ]
    assert session.messages == []


def test_helo_has_no_extensions() -> None:
    session = drive_all(
        [b"HELO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nBDAT 1 LAST\r\nx"]
    )
    assert codes(session.output)[1:] == ["250", "250 2.1.0", "250 2.1.5", "503 5.5.1"]
    assert replies(session.output)[1] == "250 mx.example.org"


def test_refused_greeting_only_accepts_quit() -> None:
    conn = ServerConnection(ServerConfig(hostname="mx.example.org"))
    assert conn.greeting(Reply(554, "5.3.2", "No service")) == b"554 5.3.2 No service\r\n"
    conn.receive_data(b"EHLO x\r\nQUIT\r\n")
    event = conn.next_event()
    assert isinstance(event, AutoReply) and event.reply.code == 503
    conn.send(event.reply)
    assert conn.send(conn.next_event().reply) == b"221 2.0.0 mx.example.org closing connection\r\n"  # type: ignore[union-attr]
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_driver_misuse_raises_local_protocol_error() -> None:
    conn = ServerConnection(ServerConfig(hostname="mx.example.org"))
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.greeting()
    with pytest.raises(LocalProtocolError):
        conn.send(OK)
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    conn.receive_data(EHLO + b"MAIL FROM:<a@b.example>\r\n")
    assert conn.next_event() == Hello("client.example.net", extended=True)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.send(conn.ehlo_reply())
    assert conn.state is State.GREETED
    event = conn.next_event()
    assert event == MailFrom(Path(Mailbox("a", "b.example")), event.params)  # type: ignore[union-attr]
    conn.send(Reply(451, "4.3.0", "try later"))
    assert conn.state is State.GREETED
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_events_are_values() -> None:
    conn = ServerConnection(ServerConfig(hostname="mx.example.org"))
    conn.greeting()
    conn.receive_data(
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.net> NOTIFY=NEVER\r\nDATA\r\n"
    )
    conn.send(conn.ehlo_reply()) if isinstance(conn.next_event(), Hello) else None
    conn.send(OK) if isinstance(conn.next_event(), MailFrom) else None
    rcpt = conn.next_event()
    assert isinstance(rcpt, RcptTo) and rcpt.forward_path == Path.parse("b@example.net")
    conn.send(OK)
    assert conn.next_event() == DataStarted()
    conn.send(Reply(451, "4.3.0", "Not now"))
    assert conn.state is State.RCPT


def test_abort_renders_and_closes() -> None:
    conn = ServerConnection(ServerConfig(hostname="mx.example.org"))
    conn.greeting()
    assert conn.abort(Reply(421, "4.4.2", "Timeout")) == b"421 4.4.2 Timeout\r\n"
    assert isinstance(conn.next_event(), ConnectionClosed)


@pytest.mark.parametrize("mode", list(BareLineEndings))
def test_content_passes_through_normal_message(mode: BareLineEndings) -> None:
    config = ServerConfig(hostname="mx.example.org", bare_line_endings=mode)
    content = b"A: b\r\n\r\n..leading dot\r\n.\r\n"
    session = drive(
        [EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + content],
        config=config,
    )
    assert session.messages[0].content == b"A: b\r\n\r\n.leading dot\r\n"


def test_hard_cut_line_is_not_buffered() -> None:
    """A 1 MB line is dropped as it arrives; the core holds at most the hard cut."""
    huge = b"NOOP " + b"z" * 1_000_000 + b"\r\nNOOP\r\n"
    for name in ("random0", "whole"):
        session = drive(
            [EHLO + huge], SPLITTERS[name], buffer_bound=limits.SMTP_COMMAND_LINE_HARD_MAX
        )
        assert codes(session.output)[2:] == ["500 5.5.2", "250 2.0.0"]


def test_data_and_bdat_are_not_buffered() -> None:
    body = b"line\r\n" * 50_000
    start = EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n"
    data = drive(
        [start + b"DATA\r\n" + body + b".\r\n"],
        SPLITTERS["random1"],
        buffer_bound=limits.SMTP_COMMAND_LINE_HARD_MAX,
    )
    bdat = drive(
        [start + b"BDAT %d LAST\r\n" % len(body) + body],
        SPLITTERS["random1"],
        buffer_bound=limits.SMTP_COMMAND_LINE_HARD_MAX,
    )
    assert data.messages[0].content == bdat.messages[0].content == body
