"""DMARC aggregate reports end to end: postel B checks mail on port 25 for a policy
domain (a.test, ``p=quarantine; rua=mailto:dmarc@b.test``, the external destination
authorised by ``a.test._report._dmarc.b.test``), counts the evaluations, and at the end
of each (short, for the test) reporting period mails the gzip XML report to the rua
address. The reports for the test's traffic validate against the DMARC XML schema and
count exactly what was sent; a report received on port 25 is listed by
``postel dmarc reports``.

Spec: RFC 9990 §2.1 (report format), §2.5 (delivery, external destinations), §3.
"""

from __future__ import annotations

import asyncio
import email
import gzip
import json
import smtplib
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from dnsserver import DnsServer, DnsServerMissing
from postel.dkim import verify_message

from .imap_helpers import add_accounts
from .outbound_helpers import RECEIVER_HOST, SOA, dkim_records, mailbox_messages
from .server import PostelServer
from .stored import strip_trace

lxml_etree = pytest.importorskip("lxml.etree")

SCHEMA = Path(__file__).resolve().parents[1] / "dmarc" / "dmarc-2.0.xsd"
NS = "{urn:ietf:params:xml:ns:dmarc-2.0}"
GOOD_HOST = "127.0.0.2"
FORGER_HOST = "127.0.0.4"
PASSING, FAILING = 4, 3
WAIT = 40.0

ZONE = (
    SOA
    + f'a IN TXT "v=spf1 ip4:{GOOD_HOST} -all"\n'
    + '_dmarc.a IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@b.test"\n'
    + 'a.test._report._dmarc.b IN TXT "v=DMARC1"\n'
    + f"b IN MX 10 mx.b\nmx.b IN A {RECEIVER_HOST}\n"
)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    try:
        dns_server = DnsServer({"test": ZONE}).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    server = PostelServer(
        tmp_path_factory.mktemp("dmarc-reports"),
        host=RECEIVER_HOST,
        dns={"nameservers": ["{}:{}".format(*dns_server.nameserver)]},
        config_extra=(
            "[authentication]\nignore_clients = []\n"
            "[dmarc]\nreports = true\nreport_interval = 8.0\nflush_interval = 0.5\n"
            'report_from = "dmarc-noreply@b.test"\n'
        ),
    )
    add_accounts(server, "bob@b.test", "dmarc@b.test")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        dns_server.stop()


def _send(server: PostelServer, source: str, mail_from: str, content: bytes) -> None:
    with smtplib.SMTP(
        server.host, server.smtp_port, source_address=(source, 0), timeout=30
    ) as client:
        client.ehlo("mx.example")
        client.sendmail(mail_from, ["bob@b.test"], content)


class _KeyRecords:
    """A resolver answering the key records ``postel dkim generate`` printed."""

    def __init__(self, records: dict[str, str]) -> None:
        self._records = records

    async def txt(self, name: str) -> tuple[bytes, ...]:
        value = self._records.get(name)
        return (value.encode(),) if value is not None else ()


def _as_sent(stored: bytes) -> bytes:
    """The report as postel wrote it: without the trace fields of its local delivery."""
    return strip_trace(stored)


def _reports(server: PostelServer) -> list[tuple[bytes, bytes]]:
    """(report message, decompressed XML) of every report in dmarc@b.test's INBOX."""
    out = []
    for raw in mailbox_messages(server, "dmarc@b.test"):
        message = email.message_from_bytes(raw, policy=policy.default)
        for part in message.walk():
            if part.get_content_type() in ("application/gzip", "application/x-gzip"):
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                out.append((raw, gzip.decompress(payload)))
    return out


def _counts(documents: list[bytes]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for document in documents:
        root = lxml_etree.fromstring(document)
        for record in root.iter(f"{NS}record"):
            count = int(record.findtext(f"{NS}row/{NS}count"))
            disposition = record.findtext(f"{NS}row/{NS}policy_evaluated/{NS}disposition")
            totals[disposition] = totals.get(disposition, 0) + count
    return totals


@pytest.fixture(scope="module")
def report_keys(receiver: PostelServer) -> dict[str, str]:
    """b.test's DKIM key records (the reports' From: domain); keys are read per report."""
    return dkim_records(receiver, "b.test")


def test_the_aggregate_report_validates_and_counts_the_traffic(
    receiver: PostelServer, report_keys: dict[str, str]
) -> None:
    for n in range(PASSING):
        content = f"From: news@a.test\r\nTo: bob@b.test\r\nSubject: ok {n}\r\n\r\nok\r\n"
        _send(receiver, GOOD_HOST, "news@a.test", content.encode())
    for n in range(FAILING):
        content = f"From: ceo@a.test\r\nTo: bob@b.test\r\nSubject: forged {n}\r\n\r\nno\r\n"
        _send(receiver, FORGER_HOST, "someone@elsewhere.test", content.encode())
    schema = lxml_etree.XMLSchema(lxml_etree.parse(str(SCHEMA)))
    deadline = time.monotonic() + WAIT
    reports: list[tuple[bytes, bytes]] = []
    while time.monotonic() < deadline:
        reports = _reports(receiver)
        if sum(_counts([xml for _, xml in reports]).values()) >= PASSING + FAILING:
            break
        time.sleep(1.0)
    assert reports, receiver.log.read_text()[-3000:]
    for _, xml in reports:
        schema.assertValid(lxml_etree.fromstring(xml))
    assert _counts([xml for _, xml in reports]) == {"none": PASSING, "quarantine": FAILING}
    raw, xml = reports[0]
    root = lxml_etree.fromstring(xml)
    assert root.findtext(f"{NS}policy_published/{NS}domain") == "a.test"
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: Report Domain: a.test" in header
    # Signed with the keys of its From: domain (b.test), both of which verify.
    results = asyncio.run(verify_message(_as_sent(raw), _KeyRecords(report_keys)))
    assert [str(r.result) for r in results] == ["pass", "pass"], results
    assert {r.domain for r in results} == {"b.test"}

    # The same report, received on port 25 by a domain of ours, is listed.
    _send(receiver, GOOD_HOST, "news@a.test", raw[raw.index(b"From:") :])
    deadline = time.monotonic() + WAIT
    listed: list[dict[str, object]] = []
    while time.monotonic() < deadline and not listed:
        listed = json.loads(receiver.cli("dmarc", "reports", "--json").stdout or "[]")
        time.sleep(0.5)
    assert listed and listed[0]["domain"] == "a.test", listed
