"""Per-account sending limits on submission: past the hourly message limit MAIL gets
``450 4.7.1``, past the recipient limit RCPT does, ``submission.limit`` names the
account in the log, and other accounts keep sending. Loopback clients are not exempt:
the limit is the account's, not the address's.

Spec: RFC 6409 §5; RFC 5321 §4.2.2 (450); RFC 3463 §3.8 (X.7.1).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer

ALICE = "alice@limits.test"
BOB = "bob@limits.test"
CAROL = "carol@limits.test"
DAVE = "dave@limits.test"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers(
        "limits",
        abuse={
            "max_messages_per_hour_per_account": 3,
            "max_recipients_per_hour_per_account": 4,
            "exempt": ["127.0.0.0/8"],
        },
    )
    add_accounts(srv, ALICE, BOB, CAROL, DAVE)
    srv.start()
    yield srv
    assert srv.stop() == 0


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@limits.test>\r\n\r\n{subject} body\r\n"
    ).encode()


def login(server: PostelServer, user: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30)
    client.ehlo("client.test")
    client.starttls(context=tls_context(server))
    client.ehlo("client.test")
    client.login(user, PASSWORD)
    return client


def test_the_fourth_message_in_an_hour_is_refused(server: PostelServer) -> None:
    with login(server, ALICE) as client:
        for n in range(3):
            assert client.sendmail(ALICE, [BOB], message(ALICE, f"a{n}")) == {}
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(ALICE, [BOB], message(ALICE, "a3"))
        assert refused.value.smtp_code == 450
        assert refused.value.smtp_error.startswith(b"4.7.1")
    with login(server, ALICE) as client:  # a new connection does not reset the count
        code, text = client.mail(ALICE)
        assert (code, text[:5]) == (450, b"4.7.1")
    with login(server, CAROL) as client:  # another account is unaffected
        assert client.sendmail(CAROL, [BOB], message(CAROL, "c0")) == {}
    log = server.log.read_text()
    assert "submission.limit" in log
    line = next(x for x in log.splitlines() if "submission.limit" in x)
    assert f"account={ALICE}" in line and "limit=messages" in line


def test_recipients_past_the_limit_are_refused_at_rcpt(server: PostelServer) -> None:
    with login(server, DAVE) as client:
        assert client.sendmail(DAVE, [BOB, CAROL, ALICE], message(DAVE, "d0")) == {}
        # One more recipient fits the hourly four; the next is refused, the message
        # still goes to the first.
        refused = client.sendmail(DAVE, [BOB, CAROL], message(DAVE, "d1"))
        assert refused == {CAROL: (450, refused[CAROL][1])}
        assert refused[CAROL][1].startswith(b"4.7.1")
        # Refused transactions count nothing; the window is now full.
        code, _ = client.mail(DAVE)
        assert code == 250
        code, text = client.rcpt(BOB)
        assert (code, text[:5]) == (450, b"4.7.1")
        client.rset()
    log = server.log.read_text()
    assert any(
        f"account={DAVE}" in x and "limit=recipients" in x
        for x in log.splitlines()
        if "submission.limit" in x
    )
