"""Mail goes out: a user of domain A submits a message (smtplib, and swaks --auth) on
postel instance A; A's delivery worker finds domain B's mail exchanger through a real
DNS server (Knot, on loopback) and delivers to postel instance B, where the user reads
it over IMAP with a DKIM signature that verifies against the zone's key record.

A listens on 127.0.0.2 and sends from it (``[delivery] bind_address``); B listens on
127.0.0.3, the address of b.test's MX, and records 127.0.0.2 as the client.

Spec: RFC 6409; RFC 5321 §5.1 (MX), §4.4 (Received); RFC 6376, RFC 8463 (DKIM); RFC 3207 (STARTTLS).
"""

from __future__ import annotations

import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator

import dns.resolver
import pytest

import dkim
from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import PASSWORD, add_accounts, tls_context
from .outbound_helpers import (
    DELIVERED_WITHIN,
    RECEIVER_HOST,
    SENDER_HOST,
    dkim_records,
    header_of,
    mailbox_messages,
    mx_zone,
    parse_report,
    received_fields,
    simple_message,
    submit,
    txt_records,
    wait_for_message,
)
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@b.test"

Chain = tuple[PostelServer, PostelServer, DnsServer, dict[str, str]]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A (a.test, on 127.0.0.2, sending from 127.0.0.2) and B (b.test, on 127.0.0.3),
    with a Knot DNS server publishing both domains' MX and a.test's DKIM keys."""
    base = tmp_path_factory.mktemp("outbound")
    receiver = PostelServer(base / "b", host=RECEIVER_HOST)
    # The DKIM key of a.test is made first (on A's data dir) so the zone can publish it.
    sender = PostelServer(base / "a", host=SENDER_HOST)
    add_accounts(sender, ALICE)
    records = dkim_records(sender, "a.test")
    zones = {
        "a.test": mx_zone(SENDER_HOST, extra=txt_records(records, "a.test")),
        "b.test": mx_zone(RECEIVER_HOST),
    }
    try:
        dns_server = DnsServer(zones).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    ns_host, ns_port = dns_server.nameserver
    sender = PostelServer(
        base / "a",
        host=SENDER_HOST,
        delivery={"enabled": True, "port": receiver.smtp_port, "bind_address": SENDER_HOST},
        dns={"nameservers": [f"{ns_host}:{ns_port}"]},
    )
    add_accounts(receiver, BOB)
    try:
        receiver.start()
        sender.start()
        yield sender, receiver, dns_server, records
    finally:
        sender.stop()
        receiver.stop()
        dns_server.stop()


def _verify(message: bytes, dns_server: DnsServer) -> bool:
    resolver = dns.resolver.Resolver(configure=False)
    host, port = dns_server.nameserver
    resolver.nameservers = [host]
    resolver.port = port

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


def test_submitted_with_smtplib_arrives_at_the_other_domain_signed(chain: Chain) -> None:
    sender, receiver, dns_server, _ = chain
    content = (
        f"From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: across\r\n\r\nacross-smtplib\r\n"
    ).encode()
    with smtplib.SMTP(*sender.submission_address, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [BOB], content) == {}
    received = wait_for_message(receiver, BOB, "across-smtplib")
    assert received.count(b"DKIM-Signature:") == 2
    assert _verify(received, dns_server)
    header = header_of(received)
    assert b"with ESMTPS" in header  # B received it over STARTTLS
    assert b"Message-ID: <" in header and b"Date: " in header  # added by A's submission


def test_the_receiver_sees_the_senders_own_address_as_client_ip(chain: Chain) -> None:
    """Instance A sends from its own address, so B sees the right client IP: B's
    Received field (the topmost one) names 127.0.0.2, A's ``[delivery] bind_address``,
    although the route to 127.0.0.3 would pick another source (127.0.0.1) by itself.
    Spec: RFC 5321 §4.4 (the from clause carries the client's address)."""
    sender, receiver, _, _ = chain
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(receiver.address)  # a route lookup only: UDP sends nothing here
        unbound_source = probe.getsockname()[0]
    assert unbound_source != SENDER_HOST  # else this test would show nothing
    submit(sender, ALICE, [BOB], simple_message(ALICE, BOB, "whence", "whence-marker"))
    received = wait_for_message(receiver, BOB, "whence-marker")
    fields = received_fields(received)
    assert len(fields) == 2, fields  # B's, then A's (submission)
    by_b, by_a = fields
    assert f"[{SENDER_HOST}]" in by_b, by_b
    assert "with ESMTPS" in by_b, by_b
    # A's own field names the submitting client, which connected unbound.
    assert f"[{unbound_source}]" in by_a and "with ESMTPSA" in by_a, by_a


def test_submitted_with_swaks_auth_arrives(chain: Chain) -> None:
    sender, receiver, _, _ = chain
    result = subprocess.run(
        [
            "swaks", "--server", f"{sender.host}:{sender.submission_port}", "--tls",
            "--auth", "LOGIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
            "--from", ALICE, "--to", BOB, "--header", f"From: {ALICE}",
            "--header", "Subject: swaks", "--body", "across-swaks",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert wait_for_message(receiver, BOB, "across-swaks")


def test_a_permanent_failure_comes_back_as_one_rfc3464_report(chain: Chain) -> None:
    """B refuses an unknown recipient with 550 5.1.1; A's sender gets one delivery
    status notification in her INBOX, which Python's email package parses
    (RFC 3464, RFC 6522)."""
    sender, _, _, _ = chain
    content = f"From: {ALICE}\r\nTo: nobody@b.test\r\nSubject: doomed\r\n\r\ndoomed\r\n".encode()
    submit(sender, ALICE, ["nobody@b.test"], content)
    deadline = time.monotonic() + DELIVERED_WITHIN
    reports: list[bytes] = []
    while not reports and time.monotonic() < deadline:
        reports = mailbox_messages(sender, ALICE, "SUBJECT", "Undelivered")
        time.sleep(0.5)
    assert len(reports) == 1, reports
    report = parse_report(reports[0])
    assert report.message.get_content_type() == "multipart/report"
    parts = list(report.message.iter_parts())
    status = parts[1].as_bytes()
    assert b"Final-Recipient: rfc822; nobody@b.test" in status
    assert b"Action: failed" in status and b"Status: 5.1.1" in status
    [block] = report.recipients
    assert block["status"] == "5.1.1" and "550" in block["diagnostic-code"]
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: doomed" in parts[2].as_bytes()


def test_a_submission_has_one_transaction_log_line_with_every_recipient(chain: Chain) -> None:
    """Local and remote recipients of one submission: one ``smtp.transaction`` line
    names them all (README: one line per SMTP transaction)."""
    sender, _receiver, _dns, _ = chain
    content = f"From: <{ALICE}>\r\nTo: {BOB}\r\nSubject: both\r\n\r\nboth-logged\r\n".encode()
    with smtplib.SMTP(*sender.submission_address, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [ALICE, BOB], content) == {}
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        lines = [
            line
            for line in sender.log.read_text().splitlines()
            if "smtp.transaction" in line and f"{ALICE},{BOB}" in line
        ]
        time.sleep(0.2)
    assert len(lines) == 1, sender.log.read_text()[-3000:]
    assert "delivered to 1 local recipient(s), queued for 1 remote recipient(s)" in lines[0]
