"""Forwarding end to end: postel A (a.test, 127.0.0.2) has the alias fwd@a.test →
bob@b.test; postel B (b.test, 127.0.0.3) checks every message on port 25. A real DNS
server on loopback (Knot, one zone for the whole ``test`` TLD) publishes r.test's SPF
(``ip4:127.0.0.4 -all``) and DMARC ``p=reject``, a.test's SPF and DKIM keys.

A message from user@r.test, authenticated by SPF only (no DKIM), sent from 127.0.0.4
to fwd@a.test, is forwarded by A with MAIL FROM rewritten by SRS (so SPF at B passes
for a.test, but is not aligned with r.test: DMARC fails) and an ARC Set sealed by a.test:

* B trusting a.test as an ARC sealer accepts it (local override, ``arc=pass``);
* B without that trust rejects it with 550 5.7.1, A records the failure and sends the
  bounce to its SRS address, which goes back to user@r.test.

And bounces to A's SRS addresses: a valid one reaches the original sender (a local
account of A, or the queue for a remote one), a forged one gets 550 5.1.1.

Spec: RFC 5321 §3.9; RFC 7208 Appendix D (SRS); RFC 8617 §5.1, §7.2; RFC 9989.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, DnsServerMissing
from postel.mail.srs import Srs

from .imap_helpers import add_accounts
from .outbound_helpers import (
    RECEIVER_HOST,
    SENDER_HOST,
    SOA,
    dkim_records,
    mailbox_messages,
    queue_rows,
    txt_records,
    wait_for_message,
)
from .server import PostelServer

BOB = "bob@b.test"
CAROL = "carol@c.test"
ALIAS = "fwd@a.test"
ORIGINATOR = "user@r.test"
ORIGIN_HOST = "127.0.0.4"
"""r.test's mail server (its SPF allows it); nothing listens there on the SMTP port."""
TRUSTED = 'trusted_arc_sealers = ["a.test"]'
UNTRUSTED = "trusted_arc_sealers = []"
WAIT = 20.0

Setup = tuple[PostelServer, PostelServer]


def _zone(dkim: dict[str, str]) -> str:
    return (
        SOA
        + f"a IN MX 10 mx.a\nmx.a IN A {SENDER_HOST}\n"
        + f"b IN MX 10 mx.b\nmx.b IN A {RECEIVER_HOST}\n"
        + f"r IN MX 10 mx.r\nmx.r IN A {ORIGIN_HOST}\n"
        + f'a IN TXT "v=spf1 ip4:{SENDER_HOST} -all"\n'
        + f'r IN TXT "v=spf1 ip4:{ORIGIN_HOST} -all"\n'
        + '_dmarc.r IN TXT "v=DMARC1; p=reject"\n'
        + txt_records(dkim, "test")
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("forwarding")
    forwarder = PostelServer(base / "a", host=SENDER_HOST)
    add_accounts(forwarder, CAROL)
    forwarder.cli("domain", "add", "a.test")
    forwarder.cli("alias", "add", ALIAS, BOB)
    records = dkim_records(forwarder, "a.test")
    try:
        dns_server = DnsServer({"test": _zone(records)}).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    nameservers: dict[str, object] = {"nameservers": ["{}:{}".format(*dns_server.nameserver)]}
    receiver = PostelServer(
        base / "b",
        host=RECEIVER_HOST,
        dns=nameservers,
        config_extra=f"[authentication]\nignore_clients = []\n{TRUSTED}\n",
    )
    forwarder = PostelServer(
        base / "a",
        host=SENDER_HOST,
        delivery={"enabled": True, "port": receiver.smtp_port, "bind_address": SENDER_HOST},
        dns=nameservers,
        config_extra='[authentication]\nignore_clients = []\n\n[forwarding]\nsrs_domain = "a.test"\n',
    )
    add_accounts(receiver, BOB)
    try:
        receiver.start()
        forwarder.start()
        yield forwarder, receiver
    finally:
        forwarder.stop()
        receiver.stop()
        dns_server.stop()


def _trust(receiver: PostelServer, trusted: bool) -> None:
    """Restart B with or without a.test as a trusted ARC sealer (when it changes)."""
    text = receiver.config.read_text()
    wanted, other = (TRUSTED, UNTRUSTED) if trusted else (UNTRUSTED, TRUSTED)
    if wanted in text:
        return
    receiver.stop()
    receiver.config.write_text(text.replace(other, wanted))
    receiver.start()


def _send(server: PostelServer, mail_from: str, rcpt: str, content: bytes) -> str:
    """One transaction on ``server``'s port 25 from r.test's address; returns the
    queue id of the 250 reply (``Ok: queued as ID``)."""
    with smtplib.SMTP(
        server.host, server.smtp_port, source_address=(ORIGIN_HOST, 0), timeout=30
    ) as client:
        client.ehlo("mx.r.test")
        assert client.mail(mail_from)[0] == 250
        code, reply = client.rcpt(rcpt)
        assert code == 250, reply
        code, reply = client.data(content)
        assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def _message(marker: str) -> bytes:
    return (
        f"From: {ORIGINATOR}\r\nTo: {ALIAS}\r\nSubject: forwarded {marker}\r\n"
        f"Message-ID: <{marker}@r.test>\r\n\r\n{marker}\r\n"
    ).encode()


def _field(message: bytes, name: str) -> str:
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ")
    fields = [f for f in unfolded.split("\r\n") if f.lower().startswith(name.lower() + ":")]
    assert len(fields) == 1, (name, fields)
    return " ".join(fields[0].split())


def _wait_for_log(server: PostelServer, *needles: str) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for line in server.log.read_text().splitlines():
            if all(n in line for n in needles):
                return line
        time.sleep(0.3)
    raise AssertionError(f"no log line with {needles}: {server.log.read_text()[-3000:]}")


def _wait_for_row(server: PostelServer, recipient: str, sender: str, exclude: set[str]) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for row in queue_rows(server, domain=recipient.rpartition("@")[2]):
            if (row.recipient, row.sender) == (recipient, sender) and row.queue_id not in exclude:
                return row.queue_id
        time.sleep(0.5)
    raise AssertionError(f"no queue entry {sender!r} -> {recipient} in {queue_rows(server)}")


def test_a_trusted_arc_sealer_gets_the_forwarded_message_accepted(setup: Setup) -> None:
    forwarder, receiver = setup
    _trust(receiver, True)
    _send(forwarder, ORIGINATOR, ALIAS, _message("fwd-trusted"))
    delivered = wait_for_message(receiver, BOB, "fwd-trusted")
    results = _field(delivered, "Authentication-Results")
    assert "arc=pass" in results
    assert 'spf=pass smtp.mailfrom="SRS0=' in results and "=r.test=user@a.test" in results
    assert "dmarc=fail header.from=r.test" in results  # failed, but overridden
    assert "d=a.test" in _field(delivered, "ARC-Seal") and "cv=none" in _field(
        delivered, "ARC-Seal"
    )
    sealed_results = _field(delivered, "ARC-Authentication-Results")
    assert "spf=pass smtp.mailfrom=user@r.test" in sealed_results
    assert "dmarc=pass header.from=r.test" in sealed_results and "arc=none" in sealed_results
    return_path = _field(delivered, "Return-Path")
    assert "<SRS0=" in return_path and "=r.test=user@a.test>" in return_path


def test_without_the_trust_the_forwarded_message_is_rejected(setup: Setup) -> None:
    forwarder, receiver = setup
    _trust(receiver, False)
    try:
        before = {r.queue_id for r in queue_rows(forwarder, domain="r.test")}
        queue_id = _send(forwarder, ORIGINATOR, ALIAS, _message("fwd-untrusted"))
        line = _wait_for_log(forwarder, "delivery.sent", f"queue_id={queue_id}", "550 5.7.1")
        assert "DMARC" in line
        _wait_for_log(receiver, "smtp.transaction", "rejected: DMARC policy")
        # A's bounce goes to its SRS address, i.e. back to the original sender.
        _wait_for_log(forwarder, "dsn.sent", f"queue_id={queue_id}", "to=SRS0=")
        _wait_for_row(forwarder, ORIGINATOR, "<>", before)
        assert mailbox_messages(receiver, BOB, "BODY", "fwd-untrusted") == []
    finally:
        _trust(receiver, True)


def _srs(forwarder: PostelServer, address: str) -> str:
    secret = (forwarder.data / "secret").read_bytes()
    return Srs(secret, "a.test").forward(address, int(time.time() // 86_400))


def test_a_bounce_to_an_srs_address_reaches_the_local_sender(setup: Setup) -> None:
    forwarder, _ = setup
    bounce = (
        b"From: MAILER-DAEMON@b.test\r\nTo: carol@c.test\r\n"
        b"Subject: Undelivered Mail\r\n\r\nsrs-bounce-local\r\n"
    )
    _send(forwarder, "", _srs(forwarder, CAROL), bounce)
    delivered = wait_for_message(forwarder, CAROL, "srs-bounce-local")
    assert _field(delivered, "Return-Path") == "Return-Path: <>"


def test_a_bounce_to_an_srs_address_of_a_remote_sender_is_queued(setup: Setup) -> None:
    forwarder, _ = setup
    before = {r.queue_id for r in queue_rows(forwarder, domain="r.test")}
    bounce = b"From: MAILER-DAEMON@b.test\r\nSubject: Undelivered\r\n\r\nsrs-bounce-remote\r\n"
    queue_id = _send(forwarder, "", _srs(forwarder, ORIGINATOR), bounce)
    assert _wait_for_row(forwarder, ORIGINATOR, "<>", before) == queue_id


def test_a_forged_srs_address_is_unknown(setup: Setup) -> None:
    forwarder, _ = setup
    genuine = _srs(forwarder, ORIGINATOR)
    local = genuine.split("@")[0]
    forged = local[:5] + ("AAAA" if local[5:9] != "AAAA" else "BBBB") + local[9:] + "@a.test"
    expired = Srs((forwarder.data / "secret").read_bytes(), "a.test").forward(
        ORIGINATOR, int(time.time() // 86_400) - 30
    )
    with smtplib.SMTP(
        forwarder.host, forwarder.smtp_port, source_address=(ORIGIN_HOST, 0), timeout=30
    ) as client:
        client.ehlo("mx.r.test")
        assert client.mail("")[0] == 250
        for address in (forged, expired):
            code, reply = client.rcpt(address)
            assert (code, reply[:5]) == (550, b"5.1.1"), address
