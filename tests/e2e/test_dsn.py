"""Delivery status notifications end to end: a user submits with DSN parameters
(smtplib) and finds the reports in their own INBOX: "delivered" for a local recipient
that asked NOTIFY=SUCCESS, "failed" with the whole message for RET=FULL (a null-MX
domain, RFC 7505), and one "delayed" report while a destination's MX does not answer.

Spec: RFC 3461 §4, §5.2.3, §5.2.5-5.2.6, §6.1; RFC 3464 §2.3.3, §2.3.9; RFC 7505.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import smtplib
import time
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, DnsServerMissing

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer, free_port
from .stored import read_inbox

ALICE = "alice@dsn.test"
BOB = "bob@dsn.test"
REPORT_WITHIN = 40.0
"""Seconds a report may take: a delivery attempt, the delay, the Bouncer's 5 s poll."""

_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""
ZONES = {
    "far.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
    "nullmx.test": _SOA + "@ IN MX 0 .\n",
}
"""``far.test``'s MX is loopback on a port where nothing listens (deferred);
``nullmx.test`` accepts no mail at all (failed at once)."""


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    try:
        dns_server = DnsServer(ZONES).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    host, port = dns_server.nameserver
    srv = module_servers(
        "dsn",
        delivery={
            "enabled": True,
            "port": free_port(),
            "first_retry": 1,
            "delay_notice_after": 2,
        },
        dns={"nameservers": [f"{host}:{port}"]},
    )
    add_accounts(srv, ALICE, BOB)
    srv.start()
    try:
        yield srv
        assert srv.stop() == 0
    finally:
        dns_server.stop()


def message(rcpt: str, subject: str) -> bytes:
    return (
        f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@dsn.test>\r\nDate: Sun, 1 Mar 2026 12:00:00 +0000\r\n\r\n"
        f"{subject} body that only a full return carries\r\n"
    ).encode()


def submit(
    server: PostelServer,
    rcpt: str,
    subject: str,
    *,
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> None:
    with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30) as client:
        client.ehlo("client.test")
        client.starttls(context=tls_context(server))
        client.ehlo("client.test")
        assert client.has_extn("dsn")
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(
            ALICE, [rcpt], message(rcpt, subject), list(mail_options), list(rcpt_options)
        )
        assert refused == {}


def wait_for_report(server: PostelServer, subject: str) -> email.message.EmailMessage:
    """The first report in Alice's INBOX whose returned part names ``subject``."""
    deadline = time.monotonic() + REPORT_WITHIN
    while time.monotonic() < deadline:
        for stored in read_inbox(server, ALICE):
            if b"multipart/report" in stored.content and subject.encode() in stored.content:
                msg = email.message_from_bytes(stored.content, policy=email.policy.default)
                assert isinstance(msg, email.message.EmailMessage)
                return msg
        time.sleep(0.5)
    pytest.fail(f"no report about {subject!r}:\n{server.log.read_text()[-3000:]}")


def blocks(msg: email.message.EmailMessage) -> list[email.message.Message]:
    part = next(p for p in msg.walk() if p.get_content_type() == "message/delivery-status")
    payload = part.get_payload()
    assert isinstance(payload, list)
    return payload


def test_local_delivery_with_notify_success_is_reported_delivered(server: PostelServer) -> None:
    submit(
        server,
        BOB,
        "success-1",
        mail_options=("ENVID=ok-1",),
        rcpt_options=("NOTIFY=SUCCESS", "ORCPT=rfc822;bob+2Bold@dsn.test"),
    )
    assert any(b"success-1 body" in m.content for m in read_inbox(server, BOB))
    report = wait_for_report(server, "success-1")
    assert report["Subject"] == "Successful Mail Delivery Report"
    assert report.get_param("report-type") == "delivery-status"
    per_message, per_recipient = blocks(report)
    assert per_message["Original-Envelope-Id"] == "ok-1"
    assert per_recipient["Action"] == "delivered"
    assert per_recipient["Status"] == "2.0.0"
    assert per_recipient["Final-Recipient"] == f"rfc822; {BOB}"
    assert per_recipient["Original-Recipient"].lower() == "rfc822; bob+old@dsn.test"
    returned = list(report.iter_parts())[2]
    assert returned.get_content_type() == "text/rfc822-headers"


def test_no_success_report_unless_asked(server: PostelServer) -> None:
    submit(server, BOB, "quiet-1")
    submit(server, BOB, "marker-after-quiet", rcpt_options=("NOTIFY=SUCCESS",))
    wait_for_report(server, "marker-after-quiet")
    assert not any(b"quiet-1" in m.content for m in read_inbox(server, ALICE))


def test_failure_with_ret_full_carries_the_whole_message(server: PostelServer) -> None:
    submit(server, "carol@nullmx.test", "fail-full", mail_options=("RET=FULL", "ENVID=f-1"))
    report = wait_for_report(server, "fail-full")
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    per_message, per_recipient = blocks(report)
    assert per_message["Original-Envelope-Id"] == "f-1"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"].startswith("5.")
    returned = list(report.iter_parts())[2]
    assert returned.get_content_type() == "message/rfc822"
    original = returned.get_payload()[0]
    assert original["Subject"] == "fail-full"
    assert "fail-full body that only a full return carries" in original.get_content()


def test_one_delay_report_while_the_destination_does_not_answer(server: PostelServer) -> None:
    submit(server, "dave@far.test", "slow-1")
    report = wait_for_report(server, "slow-1")
    assert report["Subject"] == "Delayed Mail (still being retried)"
    _, per_recipient = blocks(report)
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"].startswith("4.")
    assert per_recipient["Final-Recipient"] == "rfc822; dave@far.test"
    assert per_recipient["Will-Retry-Until"]
    assert list(report.iter_parts())[2].get_content_type() == "text/rfc822-headers"
    time.sleep(7)  # more retries and at least one more Bouncer pass
    delayed = [
        m
        for m in read_inbox(server, ALICE)
        if b"slow-1" in m.content and b"Action: delayed" in m.content
    ]
    assert len(delayed) == 1
