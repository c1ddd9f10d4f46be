"""Helpers for the outbound end-to-end tests: zones for the test DNS server, submission
as an authenticated user, reading a mailbox over IMAP, the outbound queue as JSON,
delivery status notifications, Received fields, and self-signed certificates.

Every postel instance of these tests has its own loopback address (127.0.0.2,
127.0.0.3 ...), so the client IP a receiver records is the sender's own.

Spec: RFC 6409 (submission); RFC 5321 §4.4 (Received), §5.1 (MX); RFC 7505 (null MX);
RFC 3464, RFC 6522 (delivery status notifications); RFC 1035 §5 (master files).
"""

from __future__ import annotations

import datetime as dt
import email
import imaplib
import json
import re
import smtplib
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path

from .imap_helpers import PASSWORD, tls_context
from .server import PostelServer

SENDER_HOST = "127.0.0.2"
"""Loopback address of the sending postel instance (A)."""
RECEIVER_HOST = "127.0.0.3"
"""Loopback address of the receiving postel instance (B)."""

DELIVERED_WITHIN = 20.0
"""Seconds a message may take from submission to the receiver's mailbox."""
BOUNCED_WITHIN = 20.0
"""Seconds a failure report may take to reach the sender's INBOX (the bounce loop looks
every 5 seconds)."""
IMAP_TIMEOUT = 10.0
"""Seconds an IMAP or SMTP client socket waits for the server."""

SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""
"""The head of every test zone (RFC 1035 §5): SOA and NS."""


def mx_zone(address: str, *, extra: str = "") -> str:
    """A zone whose apex has one MX, ``mx``, with the A record ``address``."""
    return SOA + f"@ IN MX 10 mx\nmx IN A {address}\n" + extra


def null_mx_zone() -> str:
    """A zone publishing a null MX (``MX 0 .``) and nothing else. Spec: RFC 7505 §3."""
    return SOA + "@ IN MX 0 .\n"


def txt_records(records: dict[str, str], origin: str) -> str:
    """Master-file TXT lines for ``records`` (owner name -> value), each value split
    into strings of at most 200 characters (RFC 1035 §3.3.14 allows 255)."""
    lines = []
    for name, value in records.items():
        label = name.removesuffix("." + origin)
        chunks = " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))
        lines.append(f"{label} IN TXT {chunks}\n")
    return "".join(lines)


def dkim_records(server: PostelServer, domain: str) -> dict[str, str]:
    """Generate ``domain``'s DKIM keys on ``server``; returns the TXT records to publish
    (owner name -> value)."""
    out = server.cli("dkim", "generate", domain, "--json").stdout
    return {row["name"]: row["value"] for row in json.loads(out)}


def submit(server: PostelServer, user: str, recipients: list[str], content: bytes) -> None:
    """Submit ``content`` from ``user`` to ``recipients`` on ``server``'s submission port
    (STARTTLS, AUTH); asserts every recipient was accepted. Spec: RFC 6409."""
    with smtplib.SMTP(*server.submission_address, timeout=30) as client:
        client.starttls(context=tls_context(server))
        client.login(user, PASSWORD)
        assert client.sendmail(user, recipients, content) == {}


def simple_message(sender: str, recipient: str, subject: str, body: str) -> bytes:
    """A small RFC 5322 message with CRLF line endings."""
    return (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    ).encode()


def mailbox_messages(server: PostelServer, user: str, *criteria: str) -> list[bytes]:
    """Every message of ``user``'s INBOX on ``server`` matching the IMAP SEARCH
    ``criteria`` (all when none), read-only. Spec: RFC 9051 §6.4.4."""
    client = imaplib.IMAP4_SSL(
        server.host, server.imaps_port, ssl_context=tls_context(server), timeout=IMAP_TIMEOUT
    )
    try:
        client.login(user, PASSWORD)
        client.select("INBOX", readonly=True)
        _, data = client.search(None, *(criteria or ("ALL",)))
        found = []
        for number in data[0].split():
            _, fetched = client.fetch(number, "(BODY.PEEK[])")
            item = fetched[0]
            assert isinstance(item, tuple)
            found.append(bytes(item[1]))
        return found
    finally:
        client.logout()


def wait_for_message(
    server: PostelServer, user: str, marker: str, within: float = DELIVERED_WITHIN
) -> bytes:
    """The newest message in ``user``'s INBOX whose body holds ``marker``, waiting up to
    ``within`` seconds; AssertionError when none arrives."""
    deadline = time.monotonic() + within
    while True:
        found = mailbox_messages(server, user, "BODY", marker)
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} did not arrive at {user} within {within} s")
        time.sleep(0.3)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One recipient of ``postel queue list --json``."""

    queue_id: str
    sender: str
    recipient: str
    state: str
    attempts: int
    next_attempt: dt.datetime
    last_reply: str


def queue_rows(server: PostelServer, *, domain: str | None = None) -> list[QueueRow]:
    """``postel queue list --json`` (only recipients at ``domain`` when given)."""
    args = ["queue", "list", "--json"] + (["--domain", domain] if domain else [])
    rows = json.loads(server.cli(*args).stdout)
    return [
        QueueRow(
            queue_id=row["queue_id"],
            sender=row["from"],
            recipient=row["recipient"],
            state=row["state"],
            attempts=int(row["attempts"]),
            next_attempt=dt.datetime.fromisoformat(row["next_attempt"]),
            last_reply=row["last_reply"],
        )
        for row in rows
    ]


def wait_for_empty_queue(server: PostelServer, domain: str, within: float = 20.0) -> None:
    """Wait until no recipient at ``domain`` is in ``server``'s queue (finished entries
    are forgotten by the bounce loop, which looks every 5 seconds)."""
    deadline = time.monotonic() + within
    while True:
        rows = queue_rows(server, domain=domain)
        if not rows:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queue for {domain} not empty after {within} s: {rows}")
        time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Report:
    """A parsed delivery status notification: the whole message, its per-message
    fields and one dict of fields per recipient block. Spec: RFC 3464 §2.2, §2.3."""

    message: EmailMessage
    per_message: dict[str, str]
    recipients: list[dict[str, str]]


def parse_report(raw: bytes) -> Report:
    """Parse ``raw`` as a multipart/report; asserts its RFC 6522 shape (human part,
    message/delivery-status, original or its header). Spec: RFC 6522 §3, RFC 3464 §2."""
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    parts = list(message.iter_parts())
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() in ("text/rfc822-headers", "message/rfc822")
    blocks = _status_blocks(parts[1])
    assert blocks, "no per-message block"
    return Report(message, blocks[0], blocks[1:])


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field groups of a message/delivery-status part (email parses each group as
    a sub-message; the raw text is split by blank lines when it does not)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): str(v) for k, v in block.items()}
            for block in payload
            if isinstance(block, Message)
        ]
    text = str(payload)
    blocks = []
    for chunk in re.split(r"\r?\n\r?\n", text.strip()):
        fields = {}
        for line in re.sub(r"\r?\n[ \t]+", " ", chunk).splitlines():
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        blocks.append(fields)
    return blocks


def wait_for_reports(
    server: PostelServer, user: str, marker: str, within: float = BOUNCED_WITHIN
) -> list[Report]:
    """Delivery status notifications in ``user``'s INBOX whose returned header holds
    ``marker`` (e.g. the original Subject), waiting up to ``within`` seconds for one."""
    deadline = time.monotonic() + within
    while True:
        raw = mailbox_messages(server, user, "SUBJECT", "Undelivered", "TEXT", marker)
        if raw:
            return [parse_report(r) for r in raw]
        if time.monotonic() > deadline:
            raise AssertionError(f"no report for {marker!r} in {user}'s INBOX after {within} s")
        time.sleep(0.5)


def header_of(message: bytes) -> bytes:
    """The header section of ``message`` (up to the empty line)."""
    return message.split(b"\r\n\r\n", 1)[0]


def received_fields(message: bytes) -> list[str]:
    """The Received fields of ``message``, topmost (the last hop) first, unfolded.
    Spec: RFC 5321 §4.4, RFC 5322 §3.6.7."""
    parsed = email.message_from_bytes(message, policy=policy.compat32)
    return [re.sub(r"\s+", " ", str(v)) for v in parsed.get_all("Received", [])]


def make_certificate(cert_file: Path, key_file: Path, hostname: str) -> None:
    """A self-signed certificate (EC P-256, valid for a day) for ``hostname``, written
    as PEM (the key 0600). Spec: RFC 5280, RFC 7468."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
