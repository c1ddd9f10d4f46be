"""AUTH in the SMTP server core (submission role): the exchange, its ordering rules, and
MAIL refused before AUTH where it is required. Bytes in, bytes out, with random splits.

Spec: RFC 4954 §3-§6; RFC 6409 §4.3.
"""

from __future__ import annotations

import base64

import pytest
from smtp_fake_driver import bytewise, random_splits, whole

from postel import limits
from postel.smtp import (
    AuthLine,
    AuthRequested,
    AutoReply,
    Hello,
    MailFrom,
    NeedData,
    Quit,
    Reply,
    ServerConfig,
    ServerConnection,
)

OK_AUTH = Reply(235, "2.7.0", "Authentication successful")
BAD_AUTH = Reply(535, "5.7.8", "Authentication credentials invalid")
PLAIN = base64.b64encode(b"\0alice@example.test\0secret").decode()


def run(data: bytes, split, *, required: bool = True, verdict: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    """Drive a submission-role core: EHLO 250, AUTH exchanges (LOGIN asks two
    questions; PLAIN accepts its initial response), MAIL 250, everything else as the
    core says. Returns everything the server wrote."""
    config = ServerConfig("mx.test", auth_mechanisms=("PLAIN", "LOGIN"), auth_required=required)
    conn = ServerConnection(config)
    out = bytearray(conn.greeting())
    asked = 0
    for piece in [*split(data), b""]:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if isinstance(event, NeedData):
                break
            match event:
                case Hello():
                    out += conn.send(conn.ehlo_reply())
                case AuthRequested(mechanism="LOGIN"):
                    asked = 1
                    out += conn.send(Reply(334, None, base64.b64encode(b"Username:").decode()))
                case AuthRequested(initial_response=initial):
                    assert initial == PLAIN
                    out += conn.send(OK_AUTH if verdict else BAD_AUTH)
                case AuthLine(too_long=True):
                    out += conn.send(
                        Reply(500, "5.5.6", "Authentication Exchange line is too long")
                    )
                case AuthLine(line=b"*"):
                    out += conn.send(Reply(501, "5.0.0", "Authentication cancelled"))
                case AuthLine():
                    if asked == 1:
                        asked = 2
                        out += conn.send(Reply(334, None, base64.b64encode(b"Password:").decode()))
                    else:
                        out += conn.send(OK_AUTH if verdict else BAD_AUTH)
                case MailFrom():
                    out += conn.send(Reply(250, "2.1.0", "Ok"))
                case AutoReply(reply=reply) | Quit(reply=reply):
                    out += conn.send(reply)
                case _:
                    return bytes(out)
    return bytes(out)


SPLITS = [whole, bytewise, random_splits(1), random_splits(7)]


@pytest.mark.parametrize("split", SPLITS)
def test_plain_with_initial_response_then_mail(split) -> None:  # type: ignore[no-untyped-def]
    out = run(
        f"EHLO c\r\nAUTH PLAIN {PLAIN}\r\nMAIL FROM:<alice@example.test> AUTH=<>\r\nQUIT\r\n".encode(),
        split,
    )
    assert b"250-AUTH PLAIN LOGIN\r\n" in out
    assert b"235 2.7.0" in out and b"250 2.1.0 Ok" in out


@pytest.mark.parametrize("split", SPLITS)
def test_login_exchange_takes_the_next_lines_whatever_they_look_like(split) -> None:  # type: ignore[no-untyped-def]
    # The answers could be mistaken for commands: during AUTH they are not commands.
    out = run(b"EHLO c\r\nAUTH LOGIN\r\nQUIT\r\nRSET\r\nMAIL FROM:<a@b.c>\r\nQUIT\r\n", split)
    assert out.count(b"334 ") == 2
    assert (
        b"235 2.7.0" in out
        and b"250 2.1.0 Ok" in out
        and out.endswith(b"221 2.0.0 mx.test closing connection\r\n")
    )


def test_mail_before_auth_is_530_and_auth_twice_is_503() -> None:
    out = run(
        f"EHLO c\r\nMAIL FROM:<a@b.c>\r\nAUTH PLAIN {PLAIN}\r\nAUTH PLAIN {PLAIN}\r\nQUIT\r\n".encode(),
        whole,
    )
    assert b"530 5.7.0 Authentication required" in out
    assert b"503 5.5.1 Already authenticated" in out
    assert b"250-AUTH" in out


def test_failed_auth_leaves_the_session_unauthenticated() -> None:
    out = run(
        f"EHLO c\r\nAUTH PLAIN {PLAIN}\r\nMAIL FROM:<a@b.c>\r\n".encode(), whole, verdict=False
    )
    assert b"535 5.7.8" in out and b"530 5.7.0" in out


def test_unknown_mechanism_cancel_and_auth_before_ehlo() -> None:
    out = run(b"AUTH PLAIN\r\nEHLO c\r\nAUTH CRAM-MD5\r\nAUTH LOGIN\r\n*\r\nQUIT\r\n", whole)
    assert b"503 5.5.1" in out  # before EHLO
    assert b"504 5.5.4 Unrecognized authentication type" in out
    assert b"501 5.0.0 Authentication cancelled" in out


def test_port_25_role_offers_no_auth() -> None:
    conn = ServerConnection(ServerConfig("mx.test"))
    conn.greeting()
    assert b"AUTH" not in conn.ehlo_reply().render()


@pytest.mark.parametrize("split", SPLITS)
def test_an_overlong_auth_line_fails_the_exchange_and_the_session_goes_on(split) -> None:  # type: ignore[no-untyped-def]
    """A response line past the command line bound is the AUTH exchange's line: it is
    discarded to its CRLF and the exchange ends with 500 5.5.6; the next line is a
    command again. Spec: RFC 4954 §4."""
    for size in (limits.SMTP_COMMAND_LINE_HARD_MAX + 1, 70_000):
        out = run(b"EHLO c\r\nAUTH LOGIN\r\n" + b"A" * size + b"\r\nNOOP\r\nQUIT\r\n", split)
        assert out.endswith(
            b"334 VXNlcm5hbWU6\r\n500 5.5.6 Authentication Exchange line is too long\r\n"
            b"250 2.0.0 OK\r\n221 2.0.0 mx.test closing connection\r\n"
        ), (size, out[-300:])
