"""Mail goes out: a user of domain A submits a message (smtplib, and swaks --auth) on
postel instance A; A's delivery worker finds domain B's mail exchanger through a real
DNS server (Knot, on loopback) and delivers to postel instance B, where the user reads
it over IMAP with a DKIM signature that verifies against the zone's key record.

Spec: RFC 6409; RFC 5321 §5.1 (MX); RFC 6376, RFC 8463 (DKIM); RFC 3207 (STARTTLS).
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.resolver
import pytest

import dkim
from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@b.test"
DELIVERED_WITHIN = 20.0

_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PostelServer, PostelServer, DnsServer, dict[str, str]]]:
    base = tmp_path_factory.mktemp("outbound")
    receiver = PostelServer(base / "b")
    zones = {
        "a.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
        "b.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
    }
    # The DKIM key of a.test is made first (on A's data dir) so the zone can publish it.
    sender = PostelServer(base / "a")
    add_accounts(sender, ALICE)
    out = sender.cli("dkim", "generate", "a.test", "--json").stdout
    records = {row["name"]: row["value"] for row in json.loads(out)}
    for name, value in records.items():
        label = name.removesuffix(".a.test")
        chunks = " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))
        zones["a.test"] += f"{label} IN TXT {chunks}\n"
    try:
        dns_server = DnsServer(zones).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    ns_host, ns_port = dns_server.nameserver
    sender = PostelServer(
        base / "a",
        delivery={"enabled": True, "port": receiver.smtp_port},
        dns={"nameservers": [f"{ns_host}:{ns_port}"]},
    )
    add_accounts(receiver, BOB)
    receiver.start()
    sender.start()
    try:
        yield sender, receiver, dns_server, records
    finally:
        sender.stop()
        receiver.stop()
        dns_server.stop()


def _inbox(receiver: PostelServer, marker: bytes) -> bytes | None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", receiver.imaps_port, ssl_context=tls_context(receiver), timeout=10
    )
    try:
        client.login(BOB, PASSWORD)
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "BODY", marker.decode())
        numbers = data[0].split()
        if not numbers:
            return None
        _, fetched = client.fetch(numbers[-1], "(BODY.PEEK[])")
        item = fetched[0]
        assert isinstance(item, tuple)
        return bytes(item[1])
    finally:
        client.logout()


def _wait_for(receiver: PostelServer, marker: bytes) -> bytes:
    deadline = time.monotonic() + DELIVERED_WITHIN
    while time.monotonic() < deadline:
        found = _inbox(receiver, marker)
        if found is not None:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{marker!r} did not arrive at {BOB}")


def _verify(message: bytes, dns_server: DnsServer) -> bool:
    resolver = dns.resolver.Resolver(configure=False)
    host, port = dns_server.nameserver
    resolver.nameservers = [host]
    resolver.port = port

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


def test_submitted_with_smtplib_arrives_at_the_other_domain_signed(
    chain: tuple[PostelServer, PostelServer, DnsServer, dict[str, str]],
) -> None:
    sender, receiver, dns_server, _ = chain
    content = (
        f"From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: across\r\n\r\nacross-smtplib\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", sender.submission_port, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [BOB], content) == {}
    received = _wait_for(receiver, b"across-smtplib")
    assert received.count(b"DKIM-Signature:") == 2
    assert _verify(received, dns_server)
    header = received.split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPS" in header  # B received it over STARTTLS
    assert b"Message-ID: <" in header and b"Date: " in header  # added by A's submission


def test_submitted_with_swaks_auth_arrives(
    chain: tuple[PostelServer, PostelServer, DnsServer, dict[str, str]], tmp_path: Path
) -> None:
    sender, receiver, _, _ = chain
    result = subprocess.run(
        [
            "swaks", "--server", f"127.0.0.1:{sender.submission_port}", "--tls",
            "--auth", "LOGIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
            "--from", ALICE, "--to", BOB, "--header", f"From: {ALICE}",
            "--header", "Subject: swaks", "--body", "across-swaks",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert _wait_for(receiver, b"across-swaks")


def test_a_permanent_failure_comes_back_as_one_rfc3464_report(
    chain: tuple[PostelServer, PostelServer, DnsServer, dict[str, str]],
) -> None:
    """B refuses an unknown recipient with 550 5.1.1; A's sender gets one delivery
    status notification in her INBOX, which Python's email package parses
    (RFC 3464, RFC 6522)."""
    import email
    from email import policy

    sender, _, _, _ = chain
    content = f"From: {ALICE}\r\nTo: nobody@b.test\r\nSubject: doomed\r\n\r\ndoomed\r\n".encode()
    with smtplib.SMTP("127.0.0.1", sender.submission_port, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, ["nobody@b.test"], content) == {}
    deadline = time.monotonic() + DELIVERED_WITHIN
    reports: list[bytes] = []
    while time.monotonic() < deadline and not reports:
        client4 = imaplib.IMAP4_SSL(
            "127.0.0.1", sender.imaps_port, ssl_context=tls_context(sender), timeout=10
        )
        client4.login(ALICE, PASSWORD)
        client4.select("INBOX", readonly=True)
        _, data = client4.search(None, "SUBJECT", "Undelivered")
        for number in data[0].split():
            _, fetched = client4.fetch(number, "(BODY.PEEK[])")
            item = fetched[0]
            assert isinstance(item, tuple)
            reports.append(bytes(item[1]))
        client4.logout()
        time.sleep(0.5)
    assert len(reports) == 1, reports
    report = email.message_from_bytes(reports[0], policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = list(report.iter_parts())
    assert parts[1].get_content_type() == "message/delivery-status"
    status = parts[1].as_bytes()
    assert b"Final-Recipient: rfc822; nobody@b.test" in status
    assert b"Action: failed" in status and b"Status: 5.1.1" in status
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: doomed" in parts[2].as_bytes()
