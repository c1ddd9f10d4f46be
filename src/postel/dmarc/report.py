"""DMARC aggregate reports: the values, the XML document, its file name and the mail.

Pure: no I/O. ``render_report`` writes the ``feedback`` document in the
``urn:ietf:params:xml:ns:dmarc-2.0`` namespace with its elements in the order the XML
Schema asks for; ``gzip_report`` compresses it (a fixed mtime, so the same report gives
the same octets); ``report_filename`` and ``report_message`` give the attachment name
and the RFC 5322 message that carries it to a ``mailto:`` reporting URI.
Reading reports received from others is ``postel.dmarc.report_parse``.

Bounds defined here: ``DMARC_REPORT_DKIM_MAX`` (DKIM results per record, RFC 9990
§2.1.3: "no more than 100 signatures for a given row") and ``DMARC_REPORT_TEXT_MAX``.

Section numbers are those of draft-ietf-dmarc-aggregate-reporting-30, the text that
became RFC 9990.

Spec: RFC 9990 (§2.1 content, §2.1.3 DKIM signatures, §2.5.1 Report-ID, §2.5.2 mail,
Appendix A schema); RFC 1952 (gzip); RFC 6713 (application/gzip); RFC 5322.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import gzip
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum

DMARC_NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"
"""The XML namespace of aggregate reports. Spec: RFC 9990 §2.1.1, §5.1."""
DMARC_REPORT_VERSION = "1.0"
"""The ``version`` element's only value. Spec: RFC 9990 §2.1.1.1."""
DMARC_REPORT_DKIM_MAX = 100
"""DKIM results written per record, best first. Spec: RFC 9990 §2.1.3."""
DMARC_REPORT_TEXT_MAX = 1024
"""Characters kept of one free-text value (comments, human results, errors) written
or read. Postel policy: RFC 9990 §2.1.5 leaves "comment" unbounded; §2.1.4 asks that
"error" not contain an extremely large body."""

_MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)
"""CRLF, and the Subject on one line (RFC 5322 §2.1.1: at most 998 characters; the
stdlib would otherwise fold it right after the colon)."""

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UNIQUE = re.compile(r"^[A-Za-z0-9]{1,64}$")


class ActionDisposition(StrEnum):
    """``policy_evaluated/disposition``: ``pass`` for mail that passed DMARC under an
    enforcing policy. Spec: RFC 9990 Appendix A (ActionDispositionType)."""

    NONE = "none"
    PASS = "pass"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class SpfScope(StrEnum):
    """Which identity SPF checked. Spec: RFC 9990 Appendix A (SPFDomainScope)."""

    HELO = "helo"
    MFROM = "mfrom"


@dataclass(frozen=True, slots=True)
class DkimAuth:
    """One DKIM signature's outcome: ``d=``, ``s=`` and the RFC 8601 §2.7.1 result.
    Spec: RFC 9990 §2.1.2 (dkim element)."""

    domain: str
    selector: str
    result: str


@dataclass(frozen=True, slots=True)
class SpfAuth:
    """The SPF outcome: the domain checked, its ``scope`` and the RFC 8601 §2.7.2
    result. Spec: RFC 9990 §2.1.2 (spf element)."""

    domain: str
    scope: SpfScope
    result: str


@dataclass(frozen=True, slots=True)
class OverrideReason:
    """``policy_evaluated/reason``: a PolicyOverrideType value and a comment.
    Spec: RFC 9990 §2.1.5."""

    type: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One ``record``: ``count`` messages from ``source_ip`` that shared the
    disposition, the aligned DKIM/SPF outcomes (``dkim_aligned``/``spf_aligned``:
    True is "pass"), the identifiers (domains; ``envelope_from`` "" for the null
    reverse-path, None when not reported) and the raw authentication results.
    Spec: RFC 9990 §2.1.1 (row, policy_evaluated, identifiers, auth_results)."""

    source_ip: str
    count: int
    disposition: ActionDisposition | str
    dkim_aligned: bool
    spf_aligned: bool
    header_from: str
    envelope_from: str | None = None
    envelope_to: str | None = None
    dkim: tuple[DkimAuth, ...] = ()
    spf: tuple[SpfAuth, ...] = ()
    reasons: tuple[OverrideReason, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    """``policy_published``: the DMARC Policy Record as applied (defaults filled in),
    ``p``/``sp``/``np`` as Policy names; ``sp``/``np`` None when not published.
    Spec: RFC 9990 §2.1.1 (policy_published); RFC 9989 §4.7."""

    domain: str
    p: str
    sp: str | None = None
    np: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    testing: bool = False
    fo: str | None = None
    discovery_method: str | None = "treewalk"


@dataclass(frozen=True, slots=True)
class ReportMetadata:
    """``report_metadata``: who reports, the Report-ID and the reporting period
    (``begin``/``end``, seconds since the epoch, UTC). Spec: RFC 9990 §2.1.1."""

    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    extra_contact_info: str | None = None
    generator: str | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AggregateReport:
    """A whole aggregate report: one Policy Domain, one period, its records.
    Spec: RFC 9990 §2.1."""

    metadata: ReportMetadata
    policy: PublishedPolicy
    records: tuple[ReportRecord, ...]

    @property
    def messages(self) -> int:
        """Messages counted over every record."""
        return sum(r.count for r in self.records)

    @property
    def passing(self) -> int:
        """Messages that passed DMARC (an aligned DKIM or SPF pass). Spec: RFC 9989 §4.4."""
        return sum(r.count for r in self.records if r.dkim_aligned or r.spf_aligned)


def render_report(report: AggregateReport) -> bytes:
    """The ``feedback`` document of ``report``, UTF-8 with an XML declaration; text
    that XML cannot carry (control characters) is dropped. Raises ValueError for a
    report without records (the schema asks for one or more).
    Spec: RFC 9990 §2.1.1, Appendix A."""
    if not report.records:
        raise ValueError("an aggregate report needs at least one record")
    root = ET.Element(_q("feedback"))
    _text(root, "version", DMARC_REPORT_VERSION)
    _metadata(ET.SubElement(root, _q("report_metadata")), report.metadata)
    _policy(ET.SubElement(root, _q("policy_published")), report.policy)
    for record in report.records:
        _record(ET.SubElement(root, _q("record")), record)
    body: bytes = ET.tostring(root, encoding="utf-8", default_namespace=DMARC_NAMESPACE)
    if body.startswith(b"<?xml"):
        return body
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def gzip_report(document: bytes) -> bytes:
    """``document`` compressed with gzip (mtime 0: reproducible). Spec: RFC 1952;
    RFC 9990 §2.5.2 (SHOULD be compressed)."""
    return gzip.compress(document, compresslevel=9, mtime=0)


def report_filename(receiver: str, policy_domain: str, begin: int, end: int, unique: str) -> str:
    """``receiver!policy-domain!begin!end!unique-id.xml.gz``. Raises ValueError when
    ``unique`` is not 1*(ALPHA / DIGIT). Spec: RFC 9990 §2.5.2 (filename ABNF)."""
    if not _UNIQUE.match(unique):
        raise ValueError("unique-id must be letters and digits")
    return f"{receiver}!{policy_domain}!{begin}!{end}!{unique}.xml.gz"


def report_subject(policy_domain: str, submitter: str, report_id: str) -> str:
    """``Report Domain: <policy domain> Submitter: <us> Report-ID: <id>``.
    Spec: RFC 9990 §2.5.2 (dmarc-subject ABNF)."""
    return f"Report Domain: {policy_domain} Submitter: {submitter} Report-ID: <{report_id}>"


@dataclass(frozen=True, slots=True)
class ReportMail:
    """What a report message needs besides the report: ``submitter`` (our domain),
    ``from_address``, ``to_address`` (from the ``mailto:`` URI), ``date``."""

    submitter: str
    from_address: str
    to_address: str
    date: dt.datetime


def report_message(
    report: AggregateReport, attachment: bytes, filename: str, mail: ReportMail
) -> bytes:
    """The RFC 5322 message (CRLF line ends) carrying ``attachment`` (the gzip'd
    document) as ``application/gzip`` named ``filename``, a short text part, the
    Subject of RFC 9990 and the Report-ID as Message-ID.
    Spec: RFC 9990 §2.5.2; RFC 6713; RFC 2045; RFC 2183."""
    meta, domain = report.metadata, report.policy.domain
    message = EmailMessage(policy=email.policy.SMTP)  # base64 lines of 76
    message["From"] = mail.from_address
    message["To"] = mail.to_address
    message["Subject"] = report_subject(domain, mail.submitter, meta.report_id)
    message["Date"] = format_datetime(mail.date.astimezone(dt.UTC))
    message["Message-ID"] = f"<{meta.report_id}>"
    message.set_content(
        f"DMARC aggregate report for {domain} from {mail.submitter}\r\n"
        f"Report-ID: {meta.report_id}\r\n"
        f"Period: {_iso(meta.begin)} to {_iso(meta.end)}\r\n"
        f"Messages: {report.messages} in {len(report.records)} record(s)\r\n"
    )
    message.add_attachment(attachment, maintype="application", subtype="gzip", filename=filename)
    return message.as_bytes(policy=_MAIL_POLICY)


def clean_text(value: str, limit: int = DMARC_REPORT_TEXT_MAX) -> str:
    """``value`` without characters XML 1.0 cannot carry, cut at ``limit``.
    Spec: XML 1.0 §2.2 (Char)."""
    return _NOT_XML_CHAR.sub("", value)[:limit]


def _q(name: str) -> str:
    return f"{{{DMARC_NAMESPACE}}}{name}"


def _text(parent: ET.Element, name: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, _q(name))
    element.text = clean_text(value)
    return element


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _metadata(parent: ET.Element, meta: ReportMetadata) -> None:
    _text(parent, "org_name", meta.org_name)
    _text(parent, "email", meta.email)
    if meta.extra_contact_info:
        _text(parent, "extra_contact_info", meta.extra_contact_info)
    _text(parent, "report_id", meta.report_id)
    date_range = ET.SubElement(parent, _q("date_range"))
    _text(date_range, "begin", str(meta.begin))
    _text(date_range, "end", str(meta.end))
    for error in meta.errors:
        _text(parent, "error", error)
    if meta.generator:
        _text(parent, "generator", meta.generator)


def _policy(parent: ET.Element, policy: PublishedPolicy) -> None:
    _text(parent, "domain", policy.domain)
    if policy.discovery_method:
        _text(parent, "discovery_method", policy.discovery_method)
    _text(parent, "adkim", policy.adkim)
    _text(parent, "aspf", policy.aspf)
    _text(parent, "p", policy.p)
    _text(parent, "sp", policy.sp or policy.p)  # RFC 9989 §4.7: sp defaults to p
    if policy.np:
        _text(parent, "np", policy.np)
    _text(parent, "testing", "y" if policy.testing else "n")
    if policy.fo:
        _text(parent, "fo", policy.fo)


def _record(parent: ET.Element, record: ReportRecord) -> None:
    row = ET.SubElement(parent, _q("row"))
    _text(row, "source_ip", record.source_ip)
    _text(row, "count", str(record.count))
    evaluated = ET.SubElement(row, _q("policy_evaluated"))
    _text(evaluated, "disposition", str(record.disposition))
    _text(evaluated, "dkim", "pass" if record.dkim_aligned else "fail")
    _text(evaluated, "spf", "pass" if record.spf_aligned else "fail")
    for reason in record.reasons:
        element = ET.SubElement(evaluated, _q("reason"))
        _text(element, "type", reason.type)
        if reason.comment:
            _text(element, "comment", reason.comment)
    identifiers = ET.SubElement(parent, _q("identifiers"))
    if record.envelope_to is not None:
        _text(identifiers, "envelope_to", record.envelope_to)
    if record.envelope_from is not None:
        _text(identifiers, "envelope_from", record.envelope_from)
    _text(identifiers, "header_from", record.header_from)
    auth = ET.SubElement(parent, _q("auth_results"))
    for dkim in record.dkim[:DMARC_REPORT_DKIM_MAX]:
        element = ET.SubElement(auth, _q("dkim"))
        _text(element, "domain", dkim.domain)
        _text(element, "selector", dkim.selector)
        _text(element, "result", dkim.result)
    spf_results = record.spf or (SpfAuth(record.header_from, SpfScope.MFROM, "none"),)
    for spf in spf_results:
        element = ET.SubElement(auth, _q("spf"))
        _text(element, "domain", spf.domain)
        _text(element, "scope", str(spf.scope))
        _text(element, "result", spf.result)
