"""Sender authentication end to end: a real DNS server on loopback (Knot, one zone for
the whole ``test`` TLD, so absent names are real NXDOMAINs) publishes SPF, DKIM and
DMARC records; postel A (a.test, 127.0.0.2) submits and delivers to postel B (b.test,
127.0.0.3), which checks every message on port 25 and records its verdicts in an
Authentication-Results field:

* A's signed mail arrives with ``spf=pass``, ``dkim=pass`` and ``dmarc=pass``;
* a forged From: of a ``p=reject`` domain is refused with 550 5.7.1 in the dialogue;
* a forged From: of a ``p=quarantine`` domain lands in Junk;
* a message altered after signing gets ``dkim=fail`` (and still passes DMARC by SPF);
* an Authentication-Results field claiming B's authserv-id is removed.

Spec: RFC 7208, RFC 6376, RFC 9989, RFC 8601 §2.7, §5.
"""

from __future__ import annotations

import imaplib
import smtplib
import time
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import PASSWORD, add_accounts, tls_context
from .outbound_helpers import RECEIVER_HOST, SENDER_HOST, SOA, dkim_records
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@b.test"
FORGER_HOST = "127.0.0.4"
WAIT = 20.0

Setup = tuple[PostelServer, PostelServer]


def _zone(dkim: dict[str, str]) -> str:
    lines = [
        SOA,
        f"a IN MX 10 mx.a\nmx.a IN A {SENDER_HOST}\n",
        f"b IN MX 10 mx.b\nmx.b IN A {RECEIVER_HOST}\n",
        f'a IN TXT "v=spf1 ip4:{SENDER_HOST} -all"\n',
        '_dmarc.a IN TXT "v=DMARC1; p=reject"\n',
        'q IN TXT "v=spf1 -all"\n',
        '_dmarc.q IN TXT "v=DMARC1; p=quarantine"\n',
        'evil IN TXT "v=spf1 ?all"\n',
    ]
    for name, value in dkim.items():
        chunks = " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))
        lines.append(f"{name.removesuffix('.test')} IN TXT {chunks}\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("sender-auth")
    sender = PostelServer(base / "a", host=SENDER_HOST)
    add_accounts(sender, ALICE)
    records = dkim_records(sender, "a.test")
    try:
        dns_server = DnsServer({"test": _zone(records)}).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    nameservers = {"nameservers": ["{}:{}".format(*dns_server.nameserver)]}
    receiver = PostelServer(
        base / "b",
        host=RECEIVER_HOST,
        dns=nameservers,
        config_extra="[authentication]\nignore_clients = []\n",
    )
    sender = PostelServer(
        base / "a",
        host=SENDER_HOST,
        delivery={"enabled": True, "port": receiver.smtp_port, "bind_address": SENDER_HOST},
        dns=nameservers,
    )
    add_accounts(receiver, BOB)
    try:
        receiver.start()
        sender.start()
        yield sender, receiver
    finally:
        sender.stop()
        receiver.stop()
        dns_server.stop()


def _find(receiver: PostelServer, mailbox: str, marker: str) -> bytes | None:
    client = imaplib.IMAP4_SSL(
        receiver.host, receiver.imaps_port, ssl_context=tls_context(receiver), timeout=10
    )
    try:
        client.login(BOB, PASSWORD)
        client.select(mailbox, readonly=True)
        _, data = client.search(None, "BODY", marker)
        numbers = data[0].split()
        if not numbers:
            return None
        _, fetched = client.fetch(numbers[-1], "(BODY.PEEK[])")
        item = fetched[0]
        assert isinstance(item, tuple)
        return bytes(item[1])
    finally:
        client.logout()


def _wait(receiver: PostelServer, mailbox: str, marker: str) -> bytes:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = _find(receiver, mailbox, marker)
        if found is not None:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{marker} not in {mailbox}: {receiver.log.read_text()[-3000:]}")


def _authentication_results(message: bytes) -> str:
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ")
    fields = [f for f in unfolded.split("\r\n") if f.startswith("Authentication-Results:")]
    assert len(fields) == 1, fields
    return " ".join(fields[0].split())


def _send_direct(receiver: PostelServer, source: str, mail_from: str, content: bytes) -> None:
    """Port 25 of B from ``source`` (a loopback address), as another MTA would."""
    with smtplib.SMTP(
        receiver.host, receiver.smtp_port, source_address=(source, 0), timeout=30
    ) as client:
        client.ehlo("mx.example")
        client.sendmail(mail_from, [BOB], content)


def test_signed_mail_from_the_other_instance_passes_everything(setup: Setup) -> None:
    sender, receiver = setup
    content = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: genuine\r\n\r\nauth-genuine\r\n"
    with smtplib.SMTP(*sender.submission_address, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], content.encode())
    results = _authentication_results(_wait(receiver, "INBOX", "auth-genuine"))
    assert results.startswith(f"Authentication-Results: {receiver_name(receiver)};")
    assert "spf=pass smtp.mailfrom=alice@a.test" in results
    assert "dkim=pass header.d=a.test" in results
    assert "dmarc=pass header.from=a.test" in results


def receiver_name(receiver: PostelServer) -> str:
    return receiver.config.read_text().split('hostname = "', 1)[1].split('"', 1)[0]


def test_a_forged_from_of_a_reject_domain_is_refused(setup: Setup) -> None:
    _, receiver = setup
    content = b"From: ceo@a.test\r\nTo: bob@b.test\r\nSubject: wire money\r\n\r\nauth-forged\r\n"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send_direct(receiver, FORGER_HOST, "someone@evil.test", content)
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error
    assert _find(receiver, "INBOX", "auth-forged") is None


def test_a_forged_from_of_a_quarantine_domain_lands_in_junk(setup: Setup) -> None:
    _, receiver = setup
    content = b"From: news@q.test\r\nTo: bob@b.test\r\nSubject: offer\r\n\r\nauth-quarantined\r\n"
    _send_direct(receiver, FORGER_HOST, "someone@evil.test", content)
    junk = _wait(receiver, "Junk", "auth-quarantined")
    assert "dmarc=fail header.from=q.test policy.dmarc=quarantine" in _authentication_results(junk)
    assert _find(receiver, "INBOX", "auth-quarantined") is None


def test_a_message_altered_after_signing_fails_dkim(setup: Setup) -> None:
    sender, receiver = setup
    # A signs (its submission), the test intercepts nothing: it re-sends A's signed copy
    # with an altered body, from A's address so SPF still passes.
    original = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: edit\r\n\r\nauth-original\r\n"
    with smtplib.SMTP(*sender.submission_address, timeout=30) as client:
        client.starttls(context=tls_context(sender))
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], original.encode())
    delivered = _wait(receiver, "INBOX", "auth-original")
    signed = delivered[delivered.index(b"DKIM-Signature:") :]
    altered = signed.replace(b"auth-original", b"auth-altered-copy")
    altered = altered.replace(b"Authentication-Results:", b"X-Old-Results:")
    _send_direct(receiver, SENDER_HOST, ALICE, altered)
    results = _authentication_results(_wait(receiver, "INBOX", "auth-altered-copy"))
    assert "dkim=fail" in results and "dkim=pass" not in results
    assert "spf=pass" in results and "dmarc=pass" in results


def test_results_claiming_our_name_are_removed(setup: Setup) -> None:
    _, receiver = setup
    name = receiver_name(receiver)
    content = (
        f"Authentication-Results: {name}; dkim=pass header.d=bank.test\r\n"
        f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: claim\r\n\r\nauth-claimed\r\n"
    ).encode()
    _send_direct(receiver, SENDER_HOST, ALICE, content)
    stored = _wait(receiver, "INBOX", "auth-claimed")
    results = _authentication_results(stored)
    assert "bank.test" not in results and "spf=pass" in results
