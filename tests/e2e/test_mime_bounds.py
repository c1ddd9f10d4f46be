"""The bound on a message's MIME structure summary (limits.MIME_SUMMARY_MAX): the
ENVELOPE/BODYSTRUCTURE data is stored with every copy of a message, so a message made
of thousands of parts with kilobytes of header text each is refused with 552 5.3.4 on
port 25 and on submission, before anything is stored, and IMAP APPEND answers it
NO [LIMIT] (the whole command: MULTIAPPEND stores none of its messages); a large but
real structure is taken.

Spec: RFC 3463 §3.4; RFC 9051 §6.3.12, §7.1; RFC 3502 §6.3.11; RELIABILITY.md D3.
"""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Iterator

import pytest

from postel import limits

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, RawImap, add_accounts, imaps, tls_context
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


def _subjects(server: PostelServer, user: str) -> list[bytes]:
    client = imaps(server, user)
    try:
        client.select("Drafts")
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        client.logout()


def test_imap_append_refuses_a_structure_over_the_bound(server: PostelServer) -> None:
    client = imaps(server, SENDER)
    try:
        status, data = client.append(
            "Drafts", "", imaplib.Time2Internaldate(0), TOO_LARGE.replace(b"too-large", b"app")
        )
        assert status == "NO"
        assert data[0].startswith(b"[LIMIT]")
        status, _ = client.append("Drafts", "", imaplib.Time2Internaldate(0), LARGE_BUT_REAL)
        assert status == "OK"  # the session goes on, and a real structure is taken
        client.noop()
    finally:
        client.logout()
    subjects = b"".join(_subjects(server, SENDER))
    assert b"many-parts" in subjects and b"app" not in subjects
    assert "Traceback" not in server.log.read_text()


def test_multiappend_with_one_over_the_bound_stores_none(server: PostelServer) -> None:
    first = LARGE_BUT_REAL.replace(b"many-parts", b"multi-first")
    second = TOO_LARGE.replace(b"too-large", b"multi-second")
    raw = RawImap(server)
    try:
        raw.login(SENDER)
        raw.send(b"M1 APPEND Drafts {%d+}\r\n" % len(first) + first)
        raw.send(b" {%d+}\r\n" % len(second) + second + b"\r\n")
        lines = raw.until_tagged(b"M1")
        assert lines[-1].startswith(b"M1 NO [LIMIT]"), lines
        assert raw.command(b"M2 NOOP")[-1].startswith(b"M2 OK")
    finally:
        raw.close()
    subjects = b"".join(_subjects(server, SENDER))
    assert b"multi-first" not in subjects and b"multi-second" not in subjects
