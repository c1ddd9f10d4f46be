"""The bound on a message's MIME structure summary (limits.MIME_SUMMARY_MAX): the
ENVELOPE/BODYSTRUCTURE data is stored with every copy of a message, so a message made
of thousands of parts with kilobytes of header text each is refused with 552 5.3.4 on
port 25 and on submission, before anything is stored; a large but real structure is
taken.

Spec: RFC 3463 §3.4; RELIABILITY.md D3.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from postel import limits

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer
from .stored import read_inbox

RCPT = "deep@mime.test"
SENDER = "author@mime.test"


def _message(parts: int, description: int, subject: str) -> bytes:
    """multipart/mixed with ``parts`` text parts, each with a Content-Description of
    ``description`` octets."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    ).encode()
    part = b"--b\r\nContent-Type: text/plain\r\nContent-Description: %s\r\n\r\nx\r\n" % (
        b"d" * description
    )
    return head + part * parts + b"--b--\r\n"


TOO_LARGE = _message(1500, 1000, "too-large")
"""A summary of about 1.6 MB (over MIME_SUMMARY_MAX) in a 1.7 MB message."""
LARGE_BUT_REAL = _message(1000, 40, "many-parts")
"""1,000 attachments: a summary well under the bound."""


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("mime-bounds")
    add_accounts(srv, RCPT, SENDER)
    srv.start()
    yield srv


def test_the_bound_lies_between_the_two_messages() -> None:
    assert len(TOO_LARGE) < limits.MIME_SUMMARY_MAX * 2 < 50 * 1024 * 1024


def test_port_25_refuses_a_structure_over_the_bound_and_takes_a_large_real_one(
    server: PostelServer,
) -> None:
    with smtplib.SMTP(*server.address, timeout=60) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@far.test", [RCPT], TOO_LARGE)
        assert refused.value.smtp_code == 552
        assert refused.value.smtp_error.startswith(b"5.3.4")
        client.rset()
        assert client.sendmail("a@far.test", [RCPT], LARGE_BUT_REAL) == {}
    subjects = [m.content for m in read_inbox(server, RCPT)]
    assert any(b"Subject: many-parts" in c for c in subjects)
    assert not any(b"Subject: too-large" in c for c in subjects)
    assert "Traceback" not in server.log.read_text()


def test_submission_refuses_it_too(server: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=60) as client:
        client.starttls(context=tls_context(server))
        client.login(SENDER, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, [RCPT], TOO_LARGE.replace(b"too-large", b"submitted"))
        assert refused.value.smtp_code == 552
    assert not any(b"Subject: submitted" in m.content for m in read_inbox(server, RCPT))
