"""MTA-STS end to end: domain b.test publishes ``_mta-sts.b.test TXT "v=STSv1; id=1"``
in a real DNS server (Knot, loopback) and an enforce-mode policy over HTTPS (a server
on [::1]:443 with a trustme certificate for mta-sts.b.test; the sender trusts the
trustme CA through ``[delivery] ca_file``). While the receiving postel presents a
self-signed certificate (not valid for the MX name mx.b.test) the message stays queued
and nothing arrives; once the receiver's certificate is issued by the CA for
mx.b.test, the message is delivered. The receiver's own web listener serves its
policy for its domain.

The policy host must listen on port 443 (RFC 8461 §3.3; postel has no setting for
another port), so this test needs root; it is skipped otherwise.

Spec: RFC 8461 §3.1-§3.3, §4.2, §5.
"""

from __future__ import annotations

import http.server
import json
import os
import smtplib
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import trustme

from dnsserver import DnsServer, DnsServerMissing
from postel.server.tls import ensure_self_signed

from .imap_helpers import PASSWORD, add_accounts
from .server import PostelServer
from .stored import read_inbox

ALICE = "alice@a.test"
BOB = "bob@b.test"
POLICY_ADDRESS = "::1"
"""Where mta-sts.b.test points (AAAA only): IPv6 loopback, so that no test server
holding the IPv4 wildcard 0.0.0.0:443 (the web listener's default) is in the way."""
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.b.test\r\nmax_age: 86400\r\n"
WAIT = 30.0

_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""
ZONES = {
    "a.test": _SOA + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n",
    "b.test": _SOA
    + "@ IN MX 10 mx\nmx IN A 127.0.0.1\n"
    + '_mta-sts IN TXT "v=STSv1; id=1"\n'
    + f"mta-sts IN AAAA {POLICY_ADDRESS}\n",
}


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(f"{self.headers.get('Host')}{self.path}")
        if self.path != "/.well-known/mta-sts.txt":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(POLICY)))
        self.end_headers()
        self.wfile.write(POLICY)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Ipv6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def policy_host(ca: trustme.CA) -> Iterator[list[str]]:
    """HTTPS on [::1]:443 serving POLICY for mta-sts.b.test; yields the requests."""
    if os.geteuid() != 0:
        pytest.skip("the MTA-STS policy host needs port 443 (root)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("mta-sts.b.test").configure_cert(context)
    handler = type("Handler", (_PolicyHandler,), {"requests": []})
    server = _Ipv6Server((POLICY_ADDRESS, 443), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, policy_host: list[str]
) -> Iterator[tuple[PostelServer, PostelServer, Path, int]]:
    base = tmp_path_factory.mktemp("mta-sts")
    ca_file = base / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    # The receiver's certificate lives in files the test replaces later: at first a
    # self-signed one for mx.test, which is not valid for mx.b.test.
    cert, key = base / "receiver-cert.pem", base / "receiver-key.pem"
    ensure_self_signed(cert, key, "mx.test")
    try:
        dns_server = DnsServer(ZONES).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    ns_host, ns_port = dns_server.nameserver
    receiver = PostelServer(
        base / "b",
        cert_file=cert,
        key_file=key,
        config_extra='[mta_sts]\noutbound = false\nmode = "enforce"\nmax_age = 86400\n',
    )
    web_port = receiver.web_port
    sender = PostelServer(
        base / "a",
        delivery={"enabled": True, "port": receiver.smtp_port, "ca_file": str(ca_file)},
        dns={"nameservers": [f"{ns_host}:{ns_port}"]},
        config_extra="[mta_sts]\noutbound = true\n",
    )
    add_accounts(sender, ALICE)
    add_accounts(receiver, BOB)
    receiver.start()
    sender.start()
    try:
        yield sender, receiver, base, web_port
    finally:
        sender.stop()
        receiver.stop()
        dns_server.stop()


def _submit(sender: PostelServer, marker: str) -> None:
    content = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: sts\r\n\r\n{marker}\r\n".encode()
    context = ssl.create_default_context(cafile=str(sender.data / "tls" / "cert.pem"))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", sender.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [BOB], content) == {}


def _queue(sender: PostelServer) -> list[dict[str, object]]:
    rows = json.loads(sender.cli("queue", "list", "--json").stdout or "[]")
    return [row for row in rows if row.get("recipient") == BOB]


def _arrived(receiver: PostelServer, marker: str) -> bool:
    return any(marker.encode() in m.content for m in read_inbox(receiver, BOB))


def test_enforced_policy_holds_mail_until_the_mx_certificate_is_valid(
    chain: tuple[PostelServer, PostelServer, Path, int],
    ca: trustme.CA,
    policy_host: list[str],
) -> None:
    sender, receiver, base, _ = chain
    _submit(sender, "sts-marker-1")

    # 1. The receiver's certificate is self-signed: no delivery, the message stays queued.
    deadline = time.monotonic() + WAIT
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = _queue(sender)
        if rows and "4.7.5" in str(rows[0].get("last_reply") or ""):
            break
        time.sleep(0.5)
    assert rows and rows[0]["state"] == "deferred", rows
    assert "4.7.5" in str(rows[0]["last_reply"]), rows
    assert policy_host == ["mta-sts.b.test/.well-known/mta-sts.txt"]
    assert not _arrived(receiver, "sts-marker-1")
    log = sender.log.read_text()
    assert "mta_sts.policy_fetched" in log
    assert "delivery.sent" not in log

    # 2. A certificate issued by the trusted CA for the MX name: delivered.
    receiver.stop()
    issued = ca.issue_cert("mx.b.test")
    issued.cert_chain_pems[0].write_to_path(str(base / "receiver-cert.pem"))
    issued.private_key_pem.write_to_path(str(base / "receiver-key.pem"))
    receiver.start()
    sender.cli("queue", "flush")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not _arrived(receiver, "sts-marker-1"):
        time.sleep(0.5)
    assert _arrived(receiver, "sts-marker-1"), sender.log.read_text()[-3000:]
    assert not [r for r in _queue(sender) if r["state"] != "delivered"]
    assert len(policy_host) == 1  # the cached policy was used for the retry


def test_the_receiver_serves_its_own_policy(
    chain: tuple[PostelServer, PostelServer, Path, int],
) -> None:
    _, _, _, web_port = chain

    def get(host: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}/.well-known/mta-sts.txt", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    status, body = get("mta-sts.b.test")
    assert status == 200
    assert b"mode: enforce\r\n" in body and b"mx: mx.test\r\n" in body
    assert get("mta-sts.elsewhere.test")[0] == 404
