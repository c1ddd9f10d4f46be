"""Reading DMARC aggregate reports received from other Mail Receivers.

Pure: no I/O. ``parse_report`` takes the report as it came (gzip, zip or plain XML,
recognised by its first octets), decompresses at most ``DMARC_REPORT_XML_MAX`` octets
and parses the XML with expat directly: a document type declaration (and so any
entity declaration: billion laughs, external entities) is refused before anything is
expanded, as defusedxml's ``forbid_dtd`` does; element depth and count are bounded.
``find_report`` picks the report attachment out of a message.

Both the RFC 9990 format (namespace ``urn:ietf:params:xml:ns:dmarc-2.0``) and the
RFC 7489 one (no namespace) are read; element names are compared without namespace.

Bounds defined here (RELIABILITY.md D7): ``DMARC_REPORT_XML_MAX``,
``DMARC_REPORT_COMPRESSED_MAX``, ``DMARC_REPORT_ELEMENTS_MAX``,
``DMARC_REPORT_DEPTH_MAX``, ``DMARC_REPORT_RECORDS_MAX``.

Spec: RFC 9990 §2.1, §2.5.2, §7.1 ("Report Contents as an Attack": zip and XML
bombs); RFC 7489 §7.2.1.1, Appendix C; RFC 1952; XML 1.0 §2.8 (doctypedecl).
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from xml.parsers import expat

from postel.dmarc.record import DmarcError
from postel.dmarc.report import (
    AggregateReport,
    DkimAuth,
    OverrideReason,
    PublishedPolicy,
    ReportMetadata,
    ReportRecord,
    SpfAuth,
    SpfScope,
    clean_text,
)
from postel.errors import ProtocolError
from postel.mail.mime import BodyPart, parse_mime

DMARC_REPORT_XML_MAX = 10 * 1024 * 1024
"""Octets of XML read from one report after decompression; more is a ReportError
(gzip and zip bombs). Postel policy after RFC 9990 §7.1."""
DMARC_REPORT_COMPRESSED_MAX = 10 * 1024 * 1024
"""Octets of one report attachment as received (after base64). Postel policy."""
DMARC_REPORT_ELEMENTS_MAX = 1_000_000
"""XML elements in one report. Postel policy: a record has about 20 elements, so this
is ~50,000 records, more than 10 MiB of XML holds."""
DMARC_REPORT_DEPTH_MAX = 16
"""Element nesting depth; the schema nests 5 deep, extensions a few more."""
DMARC_REPORT_RECORDS_MAX = 100_000
"""Records kept from one report. Postel policy."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_REPORT_TYPES = frozenset(
    {
        ("application", "gzip"),
        ("application", "x-gzip"),
        ("application", "zip"),
        ("application", "x-zip-compressed"),
        ("text", "xml"),
        ("application", "xml"),
    }
)
"""Media types a report attachment comes as. Spec: RFC 9990 §2.5.2; RFC 7489 §7.2.1.1
(zip was allowed then)."""


class ReportError(DmarcError, ProtocolError):
    """A report that cannot be read: too large once decompressed, not XML, a DTD,
    too deep, or missing what the schema requires. Spec: RFC 9990 §2.1, §7.1."""


@dataclass(slots=True)
class _Node:
    name: str
    text: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)

    def child(self, name: str) -> _Node | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def all(self, name: str) -> list[_Node]:
        return [c for c in self.children if c.name == name]

    def value(self, name: str) -> str | None:
        node = self.child(name)
        return None if node is None else clean_text("".join(node.text).strip())


def parse_report(data: bytes) -> AggregateReport:
    """The aggregate report in ``data`` (gzip, zip or XML). Raises ReportError for
    anything else, or beyond the bounds above. Spec: RFC 9990 §2.1, §7.1."""
    return _report(_parse_xml(decompress_report(data)))


def decompress_report(data: bytes) -> bytes:
    """The XML of a report: gunzipped, unzipped (the first ``.xml`` entry) or as is,
    at most ``DMARC_REPORT_XML_MAX`` octets; ReportError beyond, or for a broken
    archive. Spec: RFC 1952; RFC 9990 §2.5.2, §7.1."""
    if len(data) > DMARC_REPORT_COMPRESSED_MAX:
        raise ReportError("report attachment too large")
    if data.startswith(_GZIP_MAGIC):
        return _gunzip(data)
    if data.startswith(_ZIP_MAGIC):
        return _unzip(data)
    if len(data) > DMARC_REPORT_XML_MAX:
        raise ReportError("report XML too large")
    return data


def find_report(message: bytes) -> bytes | None:
    """The decoded body of the first part of ``message`` whose media type carries a
    report (application/gzip, application/zip, text/xml ...), or None.
    Spec: RFC 9990 §2.5.2; RFC 2045 §6.8 (base64)."""
    part = _report_part(parse_mime(message), depth=0)
    if part is None:
        return None
    body = message[part.body_offset : part.body_offset + part.body_length]
    encoding = (part.encoding or b"").strip().lower()
    if encoding == b"base64":
        try:
            return _b64decode(body)
        except ValueError as exc:
            raise ReportError("bad base64 in the report attachment") from exc
    return body


def _b64decode(body: bytes) -> bytes:
    """Base64 with line breaks and missing padding tolerated; ValueError if invalid.
    Spec: RFC 2045 §6.8."""
    compact = b"".join(body.split())
    try:
        return base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _report_part(part: BodyPart, depth: int) -> BodyPart | None:
    if (part.type, part.subtype) in _REPORT_TYPES:
        return part
    if depth > DMARC_REPORT_DEPTH_MAX:
        return None
    for child in part.parts:
        found = _report_part(child, depth + 1)
        if found is not None:
            return found
    return None


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, DMARC_REPORT_XML_MAX + 1)
    except zlib.error as exc:
        raise ReportError("broken gzip data") from exc
    if len(out) > DMARC_REPORT_XML_MAX or inflater.unconsumed_tail:
        raise ReportError("report XML too large once decompressed")
    return out


def _unzip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
            xml = [i for i in entries if i.filename.lower().endswith(".xml")] or entries
            if not xml:
                raise ReportError("empty zip archive")
            if xml[0].file_size > DMARC_REPORT_XML_MAX:
                raise ReportError("report XML too large once decompressed")
            with archive.open(xml[0]) as member:
                out = member.read(DMARC_REPORT_XML_MAX + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError, EOFError) as exc:
        raise ReportError("broken zip archive") from exc
    if len(out) > DMARC_REPORT_XML_MAX:
        raise ReportError("report XML too large once decompressed")
    return out


class _Builder:
    """expat callbacks building a bounded tree; any DTD is refused."""

    def __init__(self) -> None:
        self.stack: list[_Node] = []
        self.root: _Node | None = None
        self.elements = 0

    def start(self, name: str, attributes: object) -> None:
        self.elements += 1
        if self.elements > DMARC_REPORT_ELEMENTS_MAX:
            raise ReportError("too many XML elements")
        if len(self.stack) >= DMARC_REPORT_DEPTH_MAX:
            raise ReportError("XML nested too deep")
        node = _Node(name.rpartition(" ")[2])
        if self.stack:
            self.stack[-1].children.append(node)
        elif self.root is None:
            self.root = node
        self.stack.append(node)

    def end(self, name: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack and sum(map(len, self.stack[-1].text)) < DMARC_REPORT_ELEMENTS_MAX:
            self.stack[-1].text.append(text)

    @staticmethod
    def forbid(*args: object) -> int:
        raise ReportError("document type declarations are not accepted")


def _parse_xml(document: bytes) -> _Node:
    builder = _Builder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = builder.forbid
    parser.EntityDeclHandler = builder.forbid
    parser.ExternalEntityRefHandler = builder.forbid
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(document, True)
    except expat.ExpatError as exc:
        raise ReportError(f"not well-formed XML: {expat.ErrorString(exc.code)}") from exc
    if builder.root is None or builder.root.name != "feedback":
        raise ReportError("not a DMARC feedback document")
    return builder.root


def _required(node: _Node | None, name: str) -> str:
    value = None if node is None else node.value(name)
    if not value:
        raise ReportError(f"report without {name}")
    return value


def _integer(node: _Node | None, name: str) -> int:
    text = _required(node, name)
    try:
        return int(text)
    except ValueError:
        raise ReportError(f"{name} is not an integer") from None


def _report(root: _Node) -> AggregateReport:
    meta = root.child("report_metadata")
    dates = None if meta is None else meta.child("date_range")
    published = root.child("policy_published")
    metadata = ReportMetadata(
        org_name=_required(meta, "org_name"),
        email=(meta.value("email") if meta else None) or "",
        report_id=_required(meta, "report_id"),
        begin=_integer(dates, "begin"),
        end=_integer(dates, "end"),
        extra_contact_info=meta.value("extra_contact_info") if meta else None,
        generator=meta.value("generator") if meta else None,
        errors=tuple(clean_text("".join(e.text)) for e in meta.all("error")[:16]) if meta else (),
    )
    policy = PublishedPolicy(
        domain=_required(published, "domain").lower(),
        p=(published.value("p") if published else None) or "none",
        sp=published.value("sp") if published else None,
        np=published.value("np") if published else None,
        adkim=(published.value("adkim") if published else None) or "r",
        aspf=(published.value("aspf") if published else None) or "r",
        testing=(published.value("testing") if published else None) == "y",
        fo=published.value("fo") if published else None,
        discovery_method=published.value("discovery_method") if published else None,
    )
    nodes = root.all("record")
    if len(nodes) > DMARC_REPORT_RECORDS_MAX:
        raise ReportError("too many records")
    return AggregateReport(metadata, policy, tuple(_record(n) for n in nodes))


def _record(node: _Node) -> ReportRecord:
    row = node.child("row")
    evaluated = None if row is None else row.child("policy_evaluated")
    identifiers = node.child("identifiers")
    auth = node.child("auth_results")
    count = _integer(row, "count")
    if count < 0:
        raise ReportError("negative count")
    reasons = tuple(
        OverrideReason(r.value("type") or "other", r.value("comment") or "")
        for r in (evaluated.all("reason")[:16] if evaluated else [])
    )
    dkim = tuple(
        DkimAuth(d.value("domain") or "", d.value("selector") or "", d.value("result") or "")
        for d in (auth.all("dkim")[:100] if auth else [])
    )
    spf = tuple(
        SpfAuth(
            s.value("domain") or "",
            SpfScope.HELO if s.value("scope") == "helo" else SpfScope.MFROM,
            s.value("result") or "",
        )
        for s in (auth.all("spf")[:16] if auth else [])
    )
    return ReportRecord(
        source_ip=_required(row, "source_ip"),
        count=count,
        disposition=(evaluated.value("disposition") if evaluated else None) or "none",
        dkim_aligned=(evaluated.value("dkim") if evaluated else None) == "pass",
        spf_aligned=(evaluated.value("spf") if evaluated else None) == "pass",
        header_from=(identifiers.value("header_from") if identifiers else None) or "",
        envelope_from=identifiers.value("envelope_from") if identifiers else None,
        envelope_to=identifiers.value("envelope_to") if identifiers else None,
        dkim=dkim,
        spf=spf,
        reasons=reasons,
    )
