"""Reply reading, EHLO keywords and the per-message plan of the SMTP client core."""

from __future__ import annotations

import pytest

from postel.smtp import Reply
from postel.smtp.client import ClientConfig, ClientConnection
from postel.smtp.client_events import (
    CannotDeliver,
    ConnectionClosed,
    Extensions,
    Greeting,
    NeedsConversion,
    TransactionPlan,
)
from postel.smtp.client_replies import (
    REPLY_LINE_MAX,
    REPLY_LINES_MAX,
    ReplyReader,
    SmtpClientProtocolError,
    parse_extensions,
    plan_transaction,
)
from postel.smtp.params import Body, MailParams


def read_all(data: bytes) -> list[Reply]:
    reader = ReplyReader()
    reader.feed(data)
    out = []
    while (reply := reader.next_reply()) is not None:
        out.append(reply)
    return out


def test_multi_line_reply_with_enhanced_codes() -> None:
    (reply,) = read_all(b"550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n")
    assert reply == Reply(550, "5.1.1", ("first", "second", "third"))


def test_enhanced_code_class_must_match() -> None:
    assert read_all(b"250 5.0.0 odd\r\n") == [Reply(250, None, "5.0.0 odd")]
    assert read_all(b"250 2.0.0\r\n") == [Reply(250, "2.0.0", "")]
    assert read_all(b"250 2.0.0x\r\n") == [Reply(250, None, "2.0.0x")]


def test_bare_code_and_lf_line_end() -> None:
    assert read_all(b"250\n354 go\r\n") == [Reply(250, None, ""), Reply(354, None, "go")]


@pytest.mark.parametrize(
    "data",
    [
        b"25 short\r\n",
        b"abc text\r\n",
        b"199 too low\r\n",
        b"600 too high\r\n",
        b"250-a\r\n251 b\r\n",
        b"250_x\r\n",
    ],
)
def test_malformed_replies(data: bytes) -> None:
    with pytest.raises(SmtpClientProtocolError):
        read_all(data)


def test_line_bound() -> None:
    reader = ReplyReader()
    reader.feed(b"250 " + b"x" * (REPLY_LINE_MAX - 6) + b"\r\n")
    assert reader.next_reply() is not None
    reader.feed(b"250 " + b"x" * REPLY_LINE_MAX)
    with pytest.raises(SmtpClientProtocolError):
        reader.next_reply()


def test_lines_bound() -> None:
    ok = b"250-x\r\n" * (REPLY_LINES_MAX - 1) + b"250 x\r\n"
    assert len(read_all(ok)[0].lines) == REPLY_LINES_MAX
    with pytest.raises(SmtpClientProtocolError):
        read_all(b"250-x\r\n" * REPLY_LINES_MAX + b"250 x\r\n")


def test_protocol_error_ends_the_session() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    conn.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(SmtpClientProtocolError):
        conn.next_event()
    assert conn.next_event() == ConnectionClosed(())
    assert conn.closed


def test_unsolicited_reply_is_a_protocol_error() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    conn.receive_data(b"220 hi\r\n250 surprise\r\n")
    assert isinstance(conn.next_event(), Greeting)
    with pytest.raises(SmtpClientProtocolError):
        conn.next_event()


def test_challenge_must_be_base64_and_answer_auth() -> None:
    conn = ClientConnection(ClientConfig(hostname="c.example"))
    conn.receive_data(b"220 hi\r\n")
    conn.next_event()
    conn.noop()
    conn.receive_data(b"334 VXNlcm5hbWU6\r\n")
    with pytest.raises(SmtpClientProtocolError):
        conn.next_event()


def test_parse_extensions() -> None:
    reply = Reply(
        250,
        None,
        (
            "mx.example.org greets you",
            "size 0",
            "AUTH=LOGIN",
            "AUTH PLAIN cram-md5",
            "X-CUSTOM a b",
            "REQUIRETLS",
            "ENHANCEDSTATUSCODES",
            "",
            "!bad keyword",
        ),
    )
    ext = parse_extensions(reply)
    assert ext.size and ext.size_max is None
    assert ext.auth == frozenset({"LOGIN", "PLAIN", "CRAM-MD5"})
    assert ext.requiretls and ext.enhanced_status_codes and not ext.pipelining
    assert "X-CUSTOM" in ext.keywords
    assert parse_extensions(Reply(250, None, "only.a.name")) == Extensions()
    assert parse_extensions(Reply(250, None, ("n", "SIZE 52428800"))).size_max == 52428800


EXT = Extensions(size=True, size_max=1000, eight_bit_mime=True, smtputf8=True)


def test_plan_plain_message() -> None:
    plan = plan_transaction(EXT, message_is_8bit=False, needs_smtputf8=False, size=500)
    assert plan == TransactionPlan(MailParams(size=500))


def test_plan_8bit_and_smtputf8() -> None:
    plan = plan_transaction(EXT, message_is_8bit=True, needs_smtputf8=True, size=None)
    assert plan == TransactionPlan(MailParams(body=Body.EIGHT_BIT_MIME, smtputf8=True))


def test_plan_8bit_without_8bitmime_needs_conversion() -> None:
    plan = plan_transaction(Extensions(), message_is_8bit=True, needs_smtputf8=False, size=10)
    assert isinstance(plan, NeedsConversion)
    plan = plan_transaction(Extensions(), message_is_8bit=False, needs_smtputf8=False, size=10)
    assert plan == TransactionPlan(MailParams())  # no SIZE when not offered


def test_plan_smtputf8_missing_bounces() -> None:
    ext = Extensions(eight_bit_mime=True)
    plan = plan_transaction(ext, message_is_8bit=True, needs_smtputf8=True, size=10)
    assert isinstance(plan, CannotDeliver)
    assert (plan.reply.code, plan.reply.enhanced) == (553, "5.6.7")


def test_plan_too_big_bounces() -> None:
    plan = plan_transaction(EXT, message_is_8bit=False, needs_smtputf8=False, size=1001)
    assert isinstance(plan, CannotDeliver)
    assert (plan.reply.code, plan.reply.enhanced) == (552, "5.3.4")
