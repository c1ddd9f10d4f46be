"""Aggregate reports: built from a day of evaluations, valid against the schema, the
right counts; parsing round trip; hostile inputs. Spec: RFC 9990."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import itertools
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from postel.clock import FixedClock
from postel.dmarc import DmarcRecord, DmarcResult, Policy, PolicyOverride, ReportUri, Result
from postel.dmarc.report import (
    DMARC_NAMESPACE,
    DkimAuth,
    SpfAuth,
    SpfScope,
    gzip_report,
    render_report,
    report_filename,
    report_subject,
)
from postel.dmarc.report_parse import (
    DMARC_REPORT_XML_MAX,
    ReportError,
    decompress_report,
    find_report,
    parse_report,
)
from postel.dmarc.reporting import (
    DmarcRecorder,
    DmarcReporter,
    ReporterSettings,
    build_reports,
    mailto_addresses,
)
from postel.store import open_store

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("dmarc-2.0.xsd"))))
DAY0 = dt.datetime(2026, 5, 11, tzinfo=dt.UTC)
SETTINGS = ReporterSettings(
    interval=86400,
    submitter="b.test",
    org_name="b.test",
    from_address="noreply-dmarc@b.test",
)
RECORD = DmarcRecord(
    p=Policy.REJECT,
    sp=Policy.QUARANTINE,
    rua=(ReportUri("mailto:dmarc@a.test", "mailto"),),
)


def result(passing: bool, *, override: PolicyOverride | None = None) -> DmarcResult:
    return DmarcResult(
        result=Result.PASS if passing else Result.FAIL,
        disposition=Policy.REJECT if not passing and override is None else "none",  # type: ignore[arg-type]
        author_domain="a.test",
        policy_domain="a.test",
        record=RECORD,
        requested=Policy.REJECT,
        override=override,
        dkim_aligned=passing,
        spf_aligned=False,
    )


def a_day_of_traffic(clock: FixedClock, recorder: DmarcRecorder) -> None:
    """40 passing from 192.0.2.1, 7 failing from 198.51.100.7, 3 failing but
    overridden from a trusted forwarder, all on one UTC day."""
    good = [DkimAuth("a.test", "s1", "pass")]
    spf_fail = SpfAuth("a.test", SpfScope.MFROM, "fail")
    for _ in range(40):
        recorder.record(
            result(True), source_ip="192.0.2.1", envelope_from="a.test", spf=spf_fail, dkim=good
        )
        clock.advance(600)
    for _ in range(7):
        recorder.record(
            result(False),
            source_ip="198.51.100.7",
            envelope_from="evil.test",
            spf=SpfAuth("evil.test", SpfScope.MFROM, "pass"),
            dkim=[],
        )
    override = PolicyOverride.TRUSTED_FORWARDER
    for _ in range(3):
        recorder.record(
            result(False, override=override),
            source_ip="2001:db8::25",
            envelope_from="list.test",
            spf=None,
            dkim=[DkimAuth("a.test", "s1", "fail")],
        )
    # Not counted: no record, or an error result.
    recorder.record(
        DmarcResult(Result.NONE), source_ip="192.0.2.9", envelope_from="", spf=None, dkim=[]
    )


def unique() -> str:
    return "f00d"


def test_a_day_of_evaluations_gives_a_valid_report_with_the_right_counts() -> None:
    clock = FixedClock(DAY0)
    recorder = DmarcRecorder(clock, 86400)
    a_day_of_traffic(clock, recorder)
    [report] = build_reports(recorder.drain(), SETTINGS, unique, 86400)
    document = render_report(report)
    tree = etree.fromstring(document)
    assert SCHEMA.validate(tree), SCHEMA.error_log
    ns = {"d": DMARC_NAMESPACE}
    counts = {
        r.findtext("d:row/d:source_ip", namespaces=ns): int(
            r.findtext("d:row/d:count", namespaces=ns)
        )
        for r in tree.findall("d:record", ns)
    }
    assert counts == {"192.0.2.1": 40, "198.51.100.7": 7, "2001:db8::25": 3}
    begin = int(DAY0.timestamp())
    assert tree.findtext("d:report_metadata/d:date_range/d:begin", namespaces=ns) == str(begin)
    assert tree.findtext("d:report_metadata/d:date_range/d:end", namespaces=ns) == str(
        begin + 86399
    )
    assert tree.findtext("d:policy_published/d:p", namespaces=ns) == "reject"
    dispositions = {
        r.findtext("d:row/d:source_ip", namespaces=ns): r.findtext(
            "d:row/d:policy_evaluated/d:disposition", namespaces=ns
        )
        for r in tree.findall("d:record", ns)
    }
    assert dispositions == {"192.0.2.1": "pass", "198.51.100.7": "reject", "2001:db8::25": "none"}
    reason = tree.find("d:record/d:row/d:policy_evaluated/d:reason/d:type", ns)
    assert reason is not None and reason.text == "trusted_forwarder"
    assert report.messages == 50 and report.passing == 40


def test_parse_round_trip_through_gzip_and_zip() -> None:
    clock = FixedClock(DAY0)
    recorder = DmarcRecorder(clock, 86400)
    a_day_of_traffic(clock, recorder)
    [report] = build_reports(recorder.drain(), SETTINGS, unique, 86400)
    document = render_report(report)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("report.xml", document)
    for data in (document, gzip_report(document), archive.getvalue()):
        parsed = parse_report(data)
        assert parsed.metadata == report.metadata
        assert parsed.policy.domain == "a.test" and parsed.policy.sp == "quarantine"
        assert parsed.messages == 50 and parsed.passing == 40
        assert {r.source_ip: r.count for r in parsed.records} == {
            r.source_ip: r.count for r in report.records
        }


def test_rfc7489_report_without_namespace_is_read() -> None:
    legacy = (
        b"<?xml version='1.0'?><feedback><report_metadata><org_name>google.com</org_name>"
        b"<email>n@google.com</email><report_id>123</report_id><date_range><begin>1</begin>"
        b"<end>2</end></date_range></report_metadata><policy_published><domain>B.test"
        b"</domain><p>none</p><pct>100</pct></policy_published><record><row><source_ip>"
        b"192.0.2.3</source_ip><count>5</count><policy_evaluated><disposition>none"
        b"</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>"
        b"<identifiers><header_from>b.test</header_from></identifiers><auth_results>"
        b"<spf><domain>b.test</domain><result>pass</result></spf></auth_results></record>"
        b"</feedback>"
    )
    parsed = parse_report(legacy)
    assert parsed.policy.domain == "b.test" and parsed.messages == 5 and parsed.passing == 5


def test_file_name_subject_and_mail_carry_the_report() -> None:
    clock = FixedClock(DAY0)
    recorder = DmarcRecorder(clock, 86400)
    a_day_of_traffic(clock, recorder)
    [report] = build_reports(recorder.drain(), SETTINGS, unique, 86400)
    begin = report.metadata.begin
    name = report_filename("b.test", "a.test", begin, begin + 86399, "f00d")
    assert name == f"b.test!a.test!{begin}!{begin + 86399}!f00d.xml.gz"
    assert report_subject("a.test", "b.test", "x@b.test") == (
        "Report Domain: a.test Submitter: b.test Report-ID: <x@b.test>"
    )
    with pytest.raises(ValueError):
        report_filename("b.test", "a.test", 1, 2, "no-dashes")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mailto:dmarc@a.test", ["dmarc@a.test"]),
        ("mailto:a@x.test,b%40y.test?subject=x", ["a@x.test"]),
        ("mailto:a@x.test,b@y.test", ["a@x.test", "b@y.test"]),
        ("mailto:bad%0d%0aRcpt@x.test", []),
        ("https://x.test/report", []),
    ],
)
def test_mailto_addresses(uri: str, expected: list[str]) -> None:
    assert mailto_addresses(uri)[: len(expected)] == expected[: len(mailto_addresses(uri))]
    assert len(mailto_addresses(uri)) == len(expected) or "%40" in uri


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"<" + b"a" * (DMARC_REPORT_XML_MAX + 10))
    assert len(bomb) < 100_000
    with pytest.raises(ReportError, match="too large"):
        decompress_report(bomb)


def test_zip_bomb_is_refused() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("r.xml", b"a" * (DMARC_REPORT_XML_MAX + 10))
    with pytest.raises(ReportError, match="too large"):
        parse_report(archive.getvalue())


def test_billion_laughs_and_external_entities_are_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">'.encode()
            for i in range(1, 10)
        )
        + b"]><feedback>&lol9;</feedback>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<feedback>&x;</feedback>"
    )
    for document in (laughs, external):
        with pytest.raises(ReportError, match="document type"):
            parse_report(document)


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not xml",
        b"<other/>",
        b"<feedback><report_metadata/></feedback>",
        b"<feedback>" + b"<a>" * 100 + b"</a>" * 100 + b"</feedback>",
        b"\x1f\x8bbroken gzip",
        b"PK\x03\x04broken zip",
    ],
)
def test_bad_documents_raise_report_error(document: bytes) -> None:
    with pytest.raises(ReportError):
        parse_report(document)


def test_huge_xml_is_refused() -> None:
    with pytest.raises(ReportError):
        parse_report(b"<feedback>" + b" " * DMARC_REPORT_XML_MAX + b"</feedback>")


async def test_reporter_sends_a_valid_report_once_the_day_is_over(tmp_path: Path) -> None:
    clock = FixedClock(DAY0)
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "blobs", clock=clock)
    await store.open()
    sent: list[tuple[str, bytes]] = []

    async def send(address: str, message: bytes) -> None:
        sent.append((address, message))

    recorder = DmarcRecorder(clock, 86400)
    ids = (f"id{n}" for n in itertools.count())
    reporter = DmarcReporter(
        store,
        recorder,
        send,
        clock=clock,
        settings=SETTINGS,
        resolver=None,
        unique=lambda: next(ids),
    )
    try:
        a_day_of_traffic(clock, recorder)
        assert await reporter.report_due() == 0  # the day is not over
        clock.advance(86400 - 40 * 600 + 300)
        await reporter._flush()
        assert await reporter.report_due() == 1
        assert await reporter.report_due() == 0  # each period is reported once
        [(address, message)] = sent
        assert address == "dmarc@a.test"
        assert b"Subject: Report Domain: a.test Submitter: b.test Report-ID: <id0." in message
        assert b"Content-Type: application/gzip" in message
        attachment = find_report(message)
        assert attachment is not None
        document = gzip.decompress(attachment)
        assert SCHEMA.validate(etree.fromstring(document)), SCHEMA.error_log
        assert parse_report(attachment).messages == 50
        [row] = await store.list_sent_dmarc_reports()
        assert row.policy_domain == "a.test" and row.messages == 50
    finally:
        await store.close()


def test_report_mail_lines_are_short_but_the_subject_is_whole() -> None:
    from postel.dmarc.report import ReportMail, report_message

    clock = FixedClock(DAY0)
    recorder = DmarcRecorder(clock, 86400)
    a_day_of_traffic(clock, recorder)
    [report] = build_reports(recorder.drain(), SETTINGS, unique, 86400)
    mail = ReportMail("b.test", "noreply-dmarc@b.test", "dmarc@a.test", DAY0)
    message = report_message(report, gzip_report(render_report(report)) * 3, "x.xml.gz", mail)
    lines = message.split(b"\r\n")
    assert b"\n" not in message.replace(b"\r\n", b"")
    assert any(
        line.startswith(b"Subject: Report Domain: a.test Submitter: b.test") for line in lines
    )
    assert max(len(line) for line in lines if not line.startswith(b"Subject:")) <= 78
