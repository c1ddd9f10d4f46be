"""REQUIRETLS end to end: a message submitted with ``MAIL FROM:<...> REQUIRETLS`` leaves
instance A only over TLS with a verified certificate, to a server that offers
REQUIRETLS itself. Receiver B's certificate is issued for its MX name by a test CA that
A trusts (``[delivery] ca_file``): delivered. Receiver C presents a self-signed
certificate: the message waits in the queue, and plain mail to C still goes out
(opportunistic TLS is unchanged for it).

Spec: RFC 8689 §4.1 (the MAIL parameter, offered over TLS only), §4.2.1 (verified TLS).
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Iterator

import pytest
import trustme

from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import PASSWORD, add_accounts
from .server import PostelServer
from .stored import read_inbox

ALICE = "alice@a.test"
BOB = "bob@b.test"
CAROL = "carol@c.test"
WAIT = 30.0
_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""
ZONES = {
    "b.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
    "c.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
}

Chain = tuple[PostelServer, PostelServer, PostelServer]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    base = tmp_path_factory.mktemp("requiretls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    issued = ca.issue_cert("mx.b.test")
    issued.cert_chain_pems[0].write_to_path(str(base / "b-cert.pem"))
    issued.private_key_pem.write_to_path(str(base / "b-key.pem"))
    try:
        dns_server = DnsServer(ZONES).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    ns_host, ns_port = dns_server.nameserver
    b = PostelServer(base / "b", cert_file=base / "b-cert.pem", key_file=base / "b-key.pem")
    c = PostelServer(base / "c")  # a self-signed certificate
    # Both receivers listen on one port number each; A reaches them by MX on its
    # configured delivery port, so each gets its own sender configuration below.
    add_accounts(b, BOB)
    add_accounts(c, CAROL)
    b.start()
    c.start()
    senders = []
    for receiver in (b, c):
        sender = PostelServer(
            base / f"a-{receiver.data.name}",
            delivery={
                "enabled": True,
                "port": receiver.smtp_port,
                "ca_file": str(base / "ca.pem"),
                "first_retry": 60,
            },
            dns={"nameservers": [f"{ns_host}:{ns_port}"]},
        )
        add_accounts(sender, ALICE)
        sender.start()
        senders.append(sender)
    try:
        yield senders[0], senders[1], b
    finally:
        for server in (*senders, b, c):
            server.stop()
        dns_server.stop()


def _submit(sender: PostelServer, rcpt: str, marker: str, *, requiretls: bool) -> None:
    content = f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: rt\r\n\r\n{marker}\r\n".encode()
    context = ssl.create_default_context(cafile=str(sender.data / "tls" / "cert.pem"))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", sender.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        client.ehlo()
        assert client.has_extn("requiretls")
        options = ["REQUIRETLS"] if requiretls else []
        assert client.sendmail(ALICE, [rcpt], content, mail_options=options) == {}


def test_requiretls_mail_reaches_a_verified_server(chain: Chain) -> None:
    to_b, _, b = chain
    _submit(to_b, BOB, "requiretls-verified", requiretls=True)
    deadline = time.monotonic() + WAIT
    found: list[bytes] = []
    while time.monotonic() < deadline and not found:
        found = [m.content for m in read_inbox(b, BOB) if b"requiretls-verified" in m.content]
        time.sleep(0.3)
    assert found, to_b.log.read_text()[-3000:]
    assert b"with ESMTPS" in found[0]


def test_requiretls_mail_waits_for_an_unverifiable_server(chain: Chain) -> None:
    _, to_c, _ = chain
    _submit(to_c, CAROL, "requiretls-unverified", requiretls=True)
    _submit(to_c, CAROL, "plain-to-c", requiretls=False)
    deadline = time.monotonic() + WAIT
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = json.loads(to_c.cli("queue", "list", "--json").stdout or "[]")
        if any(r["state"] == "deferred" and r.get("last_reply") for r in rows):
            break
        time.sleep(0.3)
    deferred = [r for r in rows if r["state"] == "deferred"]
    assert len(deferred) == 1, rows
    assert "4.7.5" in str(deferred[0]["last_reply"]), rows
    log = to_c.log.read_text()
    assert log.count("delivery.sent") == 1  # only the plain message went out
