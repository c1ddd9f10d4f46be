"""Smarthost relay end to end: instance A sends every message through one relay (postel
instance B's submission service, reached by the name relay.test from a real DNS server
on loopback) with verified TLS and AUTH PLAIN, and never looks up the recipient
domain's MX. B's certificate is issued for relay.test by a test CA that A trusts
through ``[delivery] ca_file``.

Spec: RFC 6409 §3 (submission to a relay), RFC 8314 §3.3 (implicit TLS), RFC 3207
(STARTTLS), RFC 4954 and RFC 4616 (AUTH PLAIN).
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import PASSWORD, add_accounts
from .server import PostelServer
from .stored import read_inbox

ALICE = "alice@a.test"
BOB = "bob@b.test"
WAIT = 30.0
# Only the relay's name exists in DNS: a lookup of b.test's MX would fail.
ZONES = {
    "relay.test": """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
@ IN A 127.0.0.1
"""
}


@pytest.fixture(scope="module")
def relay_setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PostelServer, DnsServer, Path]]:
    """B, the relay (accounts alice@a.test for AUTH and the recipient bob@b.test), and
    the DNS server; yields them with the directory holding ca.pem."""
    base = tmp_path_factory.mktemp("smarthost")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    issued = ca.issue_cert("relay.test")
    issued.cert_chain_pems[0].write_to_path(str(base / "relay-cert.pem"))
    issued.private_key_pem.write_to_path(str(base / "relay-key.pem"))
    try:
        dns_server = DnsServer(ZONES).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    relay = PostelServer(
        base / "relay", cert_file=base / "relay-cert.pem", key_file=base / "relay-key.pem"
    )
    add_accounts(relay, ALICE, BOB)
    relay.start()
    try:
        yield relay, dns_server, base
    finally:
        relay.stop()
        dns_server.stop()


def _sender(
    setup: tuple[PostelServer, DnsServer, Path], name: str, port: int, tls: str, password: str
) -> PostelServer:
    _, dns_server, base = setup
    secret = base / f"{name}-relay-password"
    secret.write_text(password + "\n")
    ns_host, ns_port = dns_server.nameserver
    sender = PostelServer(
        base / name,
        delivery={
            "enabled": True,
            "smarthost": f"relay.test:{port}",
            "smarthost_tls": tls,
            "smarthost_username": ALICE,
            "smarthost_password_file": str(secret),
            "ca_file": str(base / "ca.pem"),
        },
        dns={"nameservers": [f"{ns_host}:{ns_port}"]},
    )
    add_accounts(sender, ALICE)
    sender.start()
    return sender


def _submit(sender: PostelServer, marker: str) -> None:
    content = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: relayed\r\n\r\n{marker}\r\n".encode()
    context = ssl.create_default_context(cafile=str(sender.data / "tls" / "cert.pem"))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", sender.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [BOB], content) == {}


def _arrived(relay: PostelServer, marker: str) -> bool:
    return any(marker.encode() in m.content for m in read_inbox(relay, BOB))


def test_all_mail_goes_through_the_relay_with_implicit_tls_and_auth(
    relay_setup: tuple[PostelServer, DnsServer, Path],
) -> None:
    relay = relay_setup[0]
    sender = _sender(relay_setup, "implicit", relay.submissions_port, "implicit", PASSWORD)
    try:
        _submit(sender, "smarthost-implicit")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not _arrived(relay, "smarthost-implicit"):
            time.sleep(0.3)
        assert _arrived(relay, "smarthost-implicit"), sender.log.read_text()[-3000:]
        log = sender.log.read_text()
        assert "host=relay.test" in log and "tls=TLSv1.3" in log
    finally:
        sender.stop()


def test_a_refused_login_keeps_the_mail_queued(
    relay_setup: tuple[PostelServer, DnsServer, Path],
) -> None:
    """A wrong relay password is our configuration's fault, not the recipient's: the
    message waits (4.7.0) instead of bouncing. Spec: RFC 4954 §6; RFC 3463."""
    relay = relay_setup[0]
    sender = _sender(relay_setup, "starttls", relay.submission_port, "starttls", "wrong")
    try:
        _submit(sender, "smarthost-refused")
        deadline = time.monotonic() + WAIT
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            rows = json.loads(sender.cli("queue", "list", "--json").stdout or "[]")
            if rows and "refused AUTH" in str(rows[0].get("last_reply")):
                break
            time.sleep(0.3)
        assert rows and rows[0]["state"] == "deferred", rows
        assert "4.7.0" in str(rows[0]["last_reply"]), rows
        assert not _arrived(relay, "smarthost-refused")
    finally:
        sender.stop()
