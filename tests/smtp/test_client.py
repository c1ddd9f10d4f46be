"""Transcripts of the sans-IO SMTP client core: bytes out, bytes in, events."""

from __future__ import annotations

import pytest

from postel.errors import LocalProtocolError
from postel.smtp import Path, Reply
from postel.smtp.client import (
    AuthChallenge,
    ClientConfig,
    ClientConnection,
    ClientEvent,
    Command,
    ConnectionClosed,
    EhloDone,
    Greeting,
    NeedData,
    Phase,
    ReplyReceived,
    ServiceClosing,
)
from postel.smtp.params import Body, MailParams, Notify, Orcpt, RcptParams, Ret

EHLO_FULL = (
    b"250-mx.example.org\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 1000000\r\n"
    b"250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-CHUNKING\r\n"
    b"250-BINARYMIME\r\n"
    b"250-DSN\r\n"
    b"250-STARTTLS\r\n"
    b"250 AUTH PLAIN LOGIN\r\n"
)
EHLO_PLAIN = b"250-mx.example.org\r\n250 8BITMIME\r\n"


def events(conn: ClientConnection, data: bytes = b"") -> list[ClientEvent]:
    """Feed ``data`` and collect every event up to NeedData or the end."""
    if data:
        conn.receive_data(data)
    out: list[ClientEvent] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out
        if isinstance(event, ReplyReceived) and event.command is Command.STARTTLS:
            return out


def greeted(ehlo: bytes = EHLO_FULL) -> ClientConnection:
    conn = ClientConnection(ClientConfig(hostname="client.example.net"))
    assert events(conn, b"220 mx.example.org ESMTP\r\n") == [
        Greeting(Reply(220, None, "mx.example.org ESMTP"))
    ]
    assert conn.ehlo() == b"EHLO client.example.net\r\n"
    (done,) = events(conn, ehlo)
    assert isinstance(done, EhloDone)
    return conn


def codes(evs: list[ClientEvent]) -> list[tuple[str, int]]:
    return [(e.command.value, e.reply.code) for e in evs if isinstance(e, ReplyReceived)]


def test_plain_session_lock_step() -> None:
    conn = greeted(EHLO_PLAIN)
    ext = conn.extensions
    assert ext is not None and ext.eight_bit_mime and not ext.pipelining
    assert conn.mail(Path.parse("<a@example.net>")) == b"MAIL FROM:<a@example.net>\r\n"
    with pytest.raises(LocalProtocolError):
        conn.rcpt(Path.parse("<b@example.org>"))  # no PIPELINING: wait for the reply
    (ev,) = events(conn, b"250 2.1.0 Ok\r\n")
    assert ev == ReplyReceived(Command.MAIL, Reply(250, "2.1.0", "Ok"), Path.parse("a@example.net"))
    assert conn.rcpt(Path.parse("<b@example.org>")) == b"RCPT TO:<b@example.org>\r\n"
    assert codes(events(conn, b"250 2.1.5 Ok\r\n")) == [("RCPT", 250)]
    assert conn.data() == b"DATA\r\n"
    assert codes(events(conn, b"354 go ahead\r\n")) == [("DATA", 354)]
    assert conn.phase is Phase.CONTENT
    wire = conn.message(b"Subject: x\r\n\r\n.hidden\r\nend")
    assert wire == b"Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"
    (ev,) = events(conn, b"250 2.0.0 Queued as 1\r\n")
    assert ev == ReplyReceived(Command.MESSAGE, Reply(250, "2.0.0", "Queued as 1"))
    assert conn.quit() == b"QUIT\r\n"
    assert events(conn, b"221 2.0.0 Bye\r\n") == [
        ReplyReceived(Command.QUIT, Reply(221, "2.0.0", "Bye")),
        ConnectionClosed(()),
    ]


def test_pipelined_session_mixed_rcpt_results() -> None:
    conn = greeted()
    out = conn.mail(Path.parse("<a@example.net>"), MailParams(size=1234, body=Body.EIGHT_BIT_MIME))
    out += conn.rcpt(Path.parse("<b@example.org>"), RcptParams(notify=frozenset({Notify.FAILURE})))
    out += conn.rcpt(Path.parse("<unknown@example.org>"))
    out += conn.rcpt(
        Path.parse("<c@example.org>"), RcptParams(orcpt=Orcpt("RFC822", "c+x=y@example.org"))
    )
    out += conn.data()
    assert out == (
        b"MAIL FROM:<a@example.net> SIZE=1234 BODY=8BITMIME\r\n"
        b"RCPT TO:<b@example.org> NOTIFY=FAILURE\r\n"
        b"RCPT TO:<unknown@example.org>\r\n"
        b"RCPT TO:<c@example.org> ORCPT=RFC822;c+2Bx+3Dy@example.org\r\n"
        b"DATA\r\n"
    )
    with pytest.raises(LocalProtocolError):
        conn.quit()  # DATA ends the group (RFC 2920 §3.1)
    assert conn.outstanding == (
        Command.MAIL,
        Command.RCPT,
        Command.RCPT,
        Command.RCPT,
        Command.DATA,
    )
    evs = events(
        conn,
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n250 2.1.5 Ok\r\n354 Go\r\n",
    )
    assert codes(evs) == [("MAIL", 250), ("RCPT", 250), ("RCPT", 550), ("RCPT", 250), ("DATA", 354)]
    refused = evs[2]
    assert isinstance(refused, ReplyReceived)
    assert refused.path == Path.parse("unknown@example.org")
    assert refused.reply.enhanced == "5.1.1"
    assert conn.recipients_accepted == 2
    # Content may start a group: the end of data and QUIT leave together.
    out = conn.message(b"body\n") + conn.quit()
    assert out == b"body\r\n.\r\nQUIT\r\n"
    assert codes(events(conn, b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n")) == [
        ("MESSAGE", 250),
        ("QUIT", 221),
    ]


def test_all_rcpt_rejected_data_refused_then_rset() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<x@example.org>"))
    conn.data()
    evs = events(conn, b"250 Ok\r\n550 5.1.1 no\r\n554 5.5.1 No valid recipients\r\n")
    assert codes(evs) == [("MAIL", 250), ("RCPT", 550), ("DATA", 554)]
    assert conn.phase is Phase.FAILED
    with pytest.raises(LocalProtocolError):
        conn.message(b"x")
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"))
    assert conn.rset() == b"RSET\r\n"
    assert conn.phase in (Phase.IDLE,)


def test_all_rcpt_rejected_but_354_sends_lone_dot() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<x@example.org>"))
    conn.data()
    evs = events(conn, b"250 Ok\r\n550 5.1.1 no\r\n354 go on\r\n")
    assert codes(evs) == [("MAIL", 250), ("RCPT", 550), ("DATA", 354)]
    with pytest.raises(LocalProtocolError):
        conn.message(b"secret")  # RFC 2920 §3.1: never send the content
    assert conn.data_abort() == b".\r\n"
    assert codes(events(conn, b"554 5.5.1 no recipients\r\n")) == [("MESSAGE", 554)]
    assert conn.phase is Phase.IDLE


def test_data_without_accepted_recipient_refused_locally() -> None:
    conn = greeted(EHLO_PLAIN)
    conn.mail(Path.parse("<a@example.net>"))
    events(conn, b"250 Ok\r\n")
    conn.rcpt(Path.parse("<x@example.org>"))
    events(conn, b"550 no\r\n")
    with pytest.raises(LocalProtocolError):
        conn.data()


def test_data_rejected() -> None:
    conn = greeted()
    out = conn.mail(Path.parse("<a@example.net>")) + conn.rcpt(Path.parse("<b@example.org>"))
    out += conn.data()
    evs = events(conn, b"250 Ok\r\n250 Ok\r\n451 4.3.0 Try later\r\n")
    assert codes(evs) == [("MAIL", 250), ("RCPT", 250), ("DATA", 451)]
    assert conn.phase is Phase.FAILED
    assert conn.rset() + conn.quit() == b"RSET\r\nQUIT\r\n"


def test_mail_refused_pipelined() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<b@example.org>"))
    conn.data()
    evs = events(conn, b"550 5.7.1 Sender refused\r\n503 5.5.1 Bad sequence\r\n503 5.5.1 Bad\r\n")
    assert codes(evs) == [("MAIL", 550), ("RCPT", 503), ("DATA", 503)]
    assert conn.phase is Phase.FAILED


def test_bdat_session() -> None:
    conn = greeted()
    out = conn.mail(Path.parse("<a@example.net>"), MailParams(body=Body.BINARY_MIME))
    out += conn.rcpt(Path.parse("<b@example.org>"))
    with pytest.raises(LocalProtocolError):
        conn.data()  # BINARYMIME needs BDAT
    out += conn.bdat(b"\x00\r\n.\r\n", last=False)
    out += conn.bdat(b"tail", last=True)
    assert out == (
        b"MAIL FROM:<a@example.net> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\n"
        b"BDAT 6\r\n\x00\r\n.\r\nBDAT 4 LAST\r\ntail"
    )
    evs = events(conn, b"250 Ok\r\n250 Ok\r\n250 2.0.0 6 octets\r\n250 2.0.0 Queued\r\n")
    assert codes(evs) == [
        ("MAIL", 250),
        ("RCPT", 250),
        ("BDAT", 250),
        ("BDAT LAST", 250),
    ]
    assert conn.phase is Phase.IDLE


def test_bdat_chunk_refused_fails_transaction() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<b@example.org>"))
    conn.bdat(b"abc", last=False)
    evs = events(conn, b"250 Ok\r\n250 Ok\r\n452 4.3.1 No space\r\n")
    assert codes(evs)[-1] == ("BDAT", 452)
    with pytest.raises(LocalProtocolError):
        conn.bdat(b"more", last=True)  # RFC 3030 §2: no more chunks after a failure
    assert conn.rset() == b"RSET\r\n"


def test_starttls_forgets_extensions_and_read_ahead() -> None:
    conn = greeted()
    assert conn.starttls() == b"STARTTLS\r\n"
    # A reply injected after the 220 in the same segment must never be read.
    evs = events(conn, b"220 2.0.0 Ready\r\n250 2.1.0 injected\r\n")
    assert codes(evs) == [("STARTTLS", 220)]
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.receive_data(b"250 more plaintext\r\n")
    conn.tls_established()
    assert conn.tls_active and conn.extensions is None
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"))  # must EHLO again (RFC 3207 §4.2)
    assert isinstance(conn.next_event(), NeedData)
    conn.ehlo()
    (done,) = events(conn, b"250-mx.example.org\r\n250 PIPELINING\r\n")
    assert isinstance(done, EhloDone) and not done.extensions.starttls
    with pytest.raises(LocalProtocolError):
        conn.starttls()


def test_starttls_refused_continues_in_plaintext() -> None:
    conn = greeted()
    conn.starttls()
    assert codes(events(conn, b"454 4.7.0 TLS not available\r\n")) == [("STARTTLS", 454)]
    assert not conn.tls_active
    assert conn.mail(Path.parse("<a@example.net>")).startswith(b"MAIL")


def test_auth_plain_initial_response() -> None:
    conn = greeted()
    out = conn.auth("PLAIN", b"\x00user\x00secret")
    assert out == b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"))  # AUTH ends the group
    (ev,) = events(conn, b"235 2.7.0 Authentication successful\r\n")
    assert ev == ReplyReceived(Command.AUTH, Reply(235, "2.7.0", "Authentication successful"))
    assert conn.authenticated


def test_auth_challenge_exchange() -> None:
    conn = greeted()
    assert conn.auth("login") == b"AUTH LOGIN\r\n"
    assert events(conn, b"334 VXNlcm5hbWU6\r\n") == [AuthChallenge(b"Username:")]
    with pytest.raises(LocalProtocolError):
        conn.noop()
    assert conn.auth_response(b"user") == b"dXNlcg==\r\n"
    assert events(conn, b"334 UGFzc3dvcmQ6\r\n") == [AuthChallenge(b"Password:")]
    assert conn.auth_response(b"") == b"\r\n"
    (ev,) = events(conn, b"535 5.7.8 Authentication credentials invalid\r\n")
    assert isinstance(ev, ReplyReceived) and ev.reply.code == 535
    assert not conn.authenticated


def test_auth_empty_initial_response_and_cancel() -> None:
    conn = greeted()
    assert conn.auth("EXTERNAL", b"") == b"AUTH EXTERNAL =\r\n"
    assert events(conn, b"334 \r\n") == [AuthChallenge(b"")]
    assert conn.auth_cancel() == b"*\r\n"
    assert codes(events(conn, b"501 5.7.0 cancelled\r\n")) == [("AUTH", 501)]


def test_helo_fallback() -> None:
    conn = ClientConnection(ClientConfig(hostname="client.example.net"))
    events(conn, b"220 old.example ready\r\n")
    conn.ehlo()
    assert codes(events(conn, b"502 Command not implemented\r\n")) == [("EHLO", 502)]
    assert conn.extensions is None
    assert conn.helo() == b"HELO client.example.net\r\n"
    assert codes(events(conn, b"250 old.example\r\n")) == [("HELO", 250)]
    ext = conn.extensions
    assert ext is not None and not ext.pipelining and not ext.size
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"), MailParams(body=Body.EIGHT_BIT_MIME))
    assert conn.mail(Path.parse("<>")) == b"MAIL FROM:<>\r\n"


def test_421_mid_session() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<b@example.org>"))
    conn.rcpt(Path.parse("<c@example.org>"))
    evs = events(conn, b"250 Ok\r\n421 4.3.2 Shutting down\r\n250 Ok\r\n")
    assert evs[0] == ReplyReceived(
        Command.MAIL, Reply(250, None, "Ok"), Path.parse("a@example.net")
    )
    assert evs[1] == ServiceClosing(
        Reply(421, "4.3.2", "Shutting down"), (Command.RCPT, Command.RCPT)
    )
    assert evs[2] == ConnectionClosed((Command.RCPT, Command.RCPT))
    with pytest.raises(LocalProtocolError):
        conn.rset()


def test_421_greeting() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    (ev, closed) = events(conn, b"421 busy\r\n")
    assert isinstance(ev, ServiceClosing) and ev.outstanding == ()
    assert isinstance(closed, ConnectionClosed)


def test_554_greeting_then_quit() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    assert events(conn, b"554 5.7.1 go away\r\n") == [Greeting(Reply(554, "5.7.1", "go away"))]
    assert conn.quit() == b"QUIT\r\n"
    assert codes(events(conn, b"221 Bye\r\n")) == [("QUIT", 221)]


def test_eof_with_message_outstanding() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<b@example.org>"))
    conn.data()
    events(conn, b"250 Ok\r\n250 Ok\r\n354 Go\r\n")
    conn.message(b"x\r\n")
    conn.receive_data(b"25")
    conn.receive_data(b"")
    assert events(conn) == [ConnectionClosed((Command.MESSAGE,))]


def test_commands_before_greeting_refused() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    with pytest.raises(LocalProtocolError):
        conn.ehlo()


def test_bad_ehlo_name_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ClientConfig(hostname="a b")
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.ehlo("x\r\nRSET")


def test_mail_parameters_need_their_extension() -> None:
    conn = greeted(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"), MailParams(size=10))
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"), MailParams(ret=Ret.HDRS))
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<jörg@example.net>"))
    with pytest.raises(LocalProtocolError):
        conn.mail(Path.parse("<a@example.net>"), requiretls=True)
    conn.mail(Path.parse("<a@example.net>"))
    events(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError):
        conn.rcpt(Path.parse("<b@example.org>"), RcptParams(notify=frozenset({Notify.NEVER})))


def test_mail_dsn_and_smtputf8_parameters() -> None:
    conn = greeted()
    params = MailParams(smtputf8=True, ret=Ret.FULL, envid="id+1 x")
    out = conn.mail(Path.parse("<jörg@bücher.example>"), params)
    assert out == "MAIL FROM:<jörg@bücher.example> SMTPUTF8 RET=FULL ENVID=id+2B1+20x\r\n".encode()
    assert conn.rcpt(Path.parse("<ü@example.org>")) == "RCPT TO:<ü@example.org>\r\n".encode()


def test_message_chunks_streaming() -> None:
    conn = greeted()
    conn.mail(Path.parse("<a@example.net>"))
    conn.rcpt(Path.parse("<b@example.org>"))
    conn.data()
    events(conn, b"250 Ok\r\n250 Ok\r\n354 Go\r\n")
    pieces = list(conn.message_chunks([b"a\r", b"\n.", b"b\r\n", b".", b"\r\n"]))
    assert b"".join(pieces) == b"a\r\n..b\r\n..\r\n.\r\n"
    assert conn.outstanding == (Command.MESSAGE,)


def test_noop_and_rset_replies() -> None:
    conn = greeted()
    conn.noop()
    assert codes(events(conn, b"250 2.0.0 Ok\r\n")) == [("NOOP", 250)]
    conn.rset()
    assert codes(events(conn, b"250 2.0.0 Ok\r\n")) == [("RSET", 250)]


def test_auth_long_initial_response_is_deferred() -> None:
    conn = greeted()
    token = b"x" * 600
    assert conn.auth("XOAUTH2", token) == b"AUTH XOAUTH2\r\n"  # RFC 4954 §4: 512 octets
    assert events(conn, b"334 \r\n") == [AuthChallenge(b"", send_initial_response=True)]
    out = conn.auth_response(token)
    assert len(out) > 512 and out.endswith(b"\r\n")
    assert codes(events(conn, b"235 2.7.0 ok\r\n")) == [("AUTH", 235)]


def test_non_ascii_ehlo_name_refused() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.ehlo("bücher.example")
