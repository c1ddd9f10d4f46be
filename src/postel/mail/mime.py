"""The MIME tree of a message with byte offsets, parsed in one pass.

Every part records where its header and body lie in the message, so that an IMAP
server can answer BODY[section]<partial> by slicing the stored octets without
parsing again.

Boundaries (RFC 2046 §5.1.1): a line that starts with ``--`` followed by the boundary
of any enclosing multipart is a delimiter; the longest matching boundary wins, so an
inner boundary that is a prefix of an outer one does not capture the outer delimiter.
Anything after the boundary on that line other than ``--`` (transport padding, or
garbage) is ignored. The line break before a delimiter belongs to the delimiter. A
delimiter of an outer multipart ends every inner part still open (missing closing
delimiters are tolerated); a multipart with no closing delimiter ends with its parent
or at the end of the data.

Bounds (RELIABILITY.md D3, D7): nesting deeper than limits.MIME_DEPTH_MAX, or a part
beyond limits.MIME_PARTS_MAX, is not parsed further: it becomes an opaque leaf of type
application/octet-stream (``opaque=True``) whose body is all its octets up to the next
delimiter of an enclosing multipart. Once MIME_PARTS_MAX parts exist, a multipart lists
no further children: their octets stay inside its body. Header fields past limits.MIME_HEADER_FIELDS_MAX
per part are ignored. Delimiters are found by :mod:`postel.mail.delimiter`, which builds
no pattern from the message and bounds its work whatever the boundaries; body line
counts are carried forward through the parse, so each octet is counted about once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postel import limits
from postel.mail.delimiter import DelimiterScanner, Hit
from postel.mail.envelope import Envelope, envelope_from_header, field_value, first_fields
from postel.mail.header import HeaderBlock, HeaderField, split_header
from postel.mail.params import (
    ContentType,
    Param,
    parse_content_disposition,
    parse_content_language,
    parse_content_type,
)

__all__ = ["BOUNDARY_MAX", "BodyPart", "EnclosedMessage", "parse_mime", "parse_mime_header"]

BOUNDARY_MAX = 1024
"""Boundary parameters longer than this are not used as boundaries (the multipart is
then opaque). RFC 2046 §5.1.1 allows 70 characters; real messages overrun it (the
mime4j corpus has one of 743), and the cap keeps delimiter searches cheap
(RELIABILITY.md D7)."""

_US_ASCII = (Param(b"charset", b"us-ascii"),)


@dataclass(frozen=True, slots=True)
class EnclosedMessage:
    """The message inside a message/rfc822 part: its ENVELOPE and its root entity.

    Spec: RFC 2046 §5.2.1, RFC 9051 §7.5.2 (body-type-msg).
    """

    envelope: Envelope
    body: BodyPart


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity with offsets into the message octets.

    ``header_offset``/``header_length`` cover its header section including the empty
    separator line; ``body_offset``/``body_length`` its body (for a multipart: preamble,
    parts and epilogue). ``body_lines`` counts body lines (LF octets in the body, so a
    final line without line break is not counted, as Dovecot does). ``type``/``subtype`` are lower-case; other values are raw
    octets (unfolded, outer whitespace removed). ``parts`` holds the children of a
    multipart; ``message`` the enclosed message of a message/rfc822 part.

    Spec: RFC 2045 §5-8, RFC 2046 §5, RFC 2183, RFC 3282, RFC 2557 §4, RFC 1864,
    RFC 9051 §7.5.2 (BODYSTRUCTURE fields).
    """

    header_offset: int
    header_length: int
    body_offset: int
    body_length: int
    body_lines: int
    type: str = "text"
    subtype: str = "plain"
    params: tuple[Param, ...] = ()
    content_id: bytes | None = None
    description: bytes | None = None
    encoding: bytes | None = None
    md5: bytes | None = None
    disposition: bytes | None = None
    disposition_params: tuple[Param, ...] = ()
    language: tuple[bytes, ...] = ()
    location: bytes | None = None
    parts: tuple[BodyPart, ...] = ()
    message: EnclosedMessage | None = None
    opaque: bool = False

    @property
    def is_multipart(self) -> bool:
        """True for a multipart entity that was parsed into children."""
        return self.type == "multipart" and not self.opaque


@dataclass(slots=True)
class _Scanner:
    """Per-parse state: the octets, the part budget and the delimiter searches."""

    data: bytes
    delimiters: DelimiterScanner
    parts: int = 0
    root_header: HeaderBlock | None = None
    """The header section of the message itself, once split (``parse_message`` uses it)."""
    counted_to: int = 0
    counted: int = 0
    lines_at: dict[int, int] = field(default_factory=dict)

    def find(self, pos: int, *, blank: bool) -> Hit | None:
        """First delimiter of an open multipart (or empty line) at a line start >= pos."""
        return self.delimiters.find(pos, blank=blank)

    def body_starts(self, offset: int) -> None:
        """Note the number of lines before a body, counted as the parse moves forward."""
        self.lines_at[offset] = self.lines_before(offset)

    def lines(self, start: int, end: int) -> int:
        """LF octets in [start, end); each octet is counted about once per parse."""
        if end <= start:
            return 0
        first = self.lines_at.get(start)
        if first is None:  # pragma: no cover - every body start is noted
            return self.data.count(b"\n", start, end)
        return self.lines_before(end) - first

    def lines_before(self, offset: int) -> int:
        """LF octets before ``offset``, counting on from the last offset asked."""
        if offset >= self.counted_to:
            self.counted += self.data.count(b"\n", self.counted_to, offset)
            self.counted_to = offset
            return self.counted
        return self.counted - self.data.count(b"\n", offset, self.counted_to)


def parse_mime(data: bytes) -> BodyPart:
    """Parse the MIME structure of a whole message (RFC 5322 header + body).

    Never raises; malformed structure is tolerated as described in the module docstring.

    Spec: RFC 2045, RFC 2046 §5, RFC 5322 §2.1.
    """
    return parse_mime_header(data)[0]


def parse_mime_header(data: bytes) -> tuple[BodyPart, HeaderBlock]:
    """``parse_mime(data)`` and the message's own header section (its fields, as
    ``split_header`` gives them), split once for both. Never raises.

    Spec: RFC 2045, RFC 2046 §5, RFC 5322 §2.1.
    """
    scanner = _Scanner(data, DelimiterScanner(data))
    part, _ = _entity(scanner, 0, 0, digest_child=False)
    assert scanner.root_header is not None  # the first entity is the message
    return part, scanner.root_header


def _body_end(data: bytes, start: int, hit: Hit | None) -> int:
    """End of a body that stops before ``hit`` (its line break belongs to the delimiter)."""
    if hit is None:
        return len(data)
    end = hit.line_start - 1
    if end > start and data[end - 1] == 0x0D:
        end -= 1
    return max(end, start)


def _entity(
    sc: _Scanner, start: int, depth: int, *, digest_child: bool
) -> tuple[BodyPart, Hit | None]:
    """Parse one entity at ``start``; returns it and the delimiter that ended it."""
    sc.parts += 1
    data = sc.data
    hit = sc.find(start, blank=True)
    if hit is None:
        header_end = body_start = len(data)
    elif hit.level < 0:
        header_end, body_start = hit.line_start, hit.after
        hit = None
    else:
        header_end = body_start = hit.line_start
    sc.body_starts(body_start)
    header = split_header(data, start, header_end)
    header = HeaderBlock(header.fields, start, body_start - start, header.truncated)
    if sc.root_header is None:
        sc.root_header = header
    ctype = _content_type(header, digest_child)
    opaque = depth >= limits.MIME_DEPTH_MAX or sc.parts > limits.MIME_PARTS_MAX
    boundary = ctype.param(b"boundary") if ctype.type == "multipart" else None
    if boundary is not None and len(boundary) > BOUNDARY_MAX:
        opaque = True
    if opaque or (ctype.type == "multipart" and not boundary):
        # Without a usable boundary a multipart has no parts (IMAP shows one empty
        # text/plain part, see imapfmt); past a bound the entity is opaque.
        hit = sc.find(body_start, blank=False) if hit is None else hit
        end = _body_end(data, body_start, hit)
        return _leaf(sc, header, ctype, opaque, body_start, end, hit)
    if boundary:
        return _multipart(sc, header, ctype, boundary, body_start, depth)
    if ctype.type == "message" and ctype.subtype == "rfc822":
        inner, hit = _entity(sc, body_start, depth + 1, digest_child=False)
        end = _body_end(data, body_start, hit)
        enclosed = EnclosedMessage(envelope_from_header(_inner_header(data, inner)), inner)
        return _make(sc, header, ctype, body_start, end, parts=(), message=enclosed), hit
    hit = sc.find(body_start, blank=False)
    return _leaf(sc, header, ctype, False, body_start, _body_end(data, body_start, hit), hit)


def _inner_header(data: bytes, inner: BodyPart) -> HeaderBlock:
    end = inner.header_offset + inner.header_length
    return split_header(data, inner.header_offset, end)


def _leaf(
    sc: _Scanner,
    header: HeaderBlock,
    ctype: ContentType,
    opaque: bool,
    start: int,
    end: int,
    hit: Hit | None,
) -> tuple[BodyPart, Hit | None]:
    if opaque:
        ctype = ContentType("application", "octet-stream", ())
    part = _make(sc, header, ctype, start, end, parts=(), message=None, opaque=opaque)
    return part, hit


def _multipart(
    sc: _Scanner,
    header: HeaderBlock,
    ctype: ContentType,
    boundary: bytes,
    body_start: int,
    depth: int,
) -> tuple[BodyPart, Hit | None]:
    """Children of a multipart; ends at its close delimiter's parent delimiter or EOF.

    Spec: RFC 2046 §5.1.1 (preamble, delimiters, close delimiter, epilogue).
    """
    data = sc.data
    own = sc.delimiters.open(boundary)
    digest = ctype.subtype == "digest"
    children: list[BodyPart] = []
    hit = sc.find(body_start, blank=False)
    while hit is not None and hit.level == own:
        if data.startswith(b"--", hit.after) or sc.parts >= limits.MIME_PARTS_MAX:
            break
        child, hit = _entity(sc, _next_line(data, hit.after), depth + 1, digest_child=digest)
        children.append(child)
    sc.delimiters.close()
    if hit is not None and hit.level == own:  # close delimiter, or no room for more parts
        hit = sc.find(_next_line(data, hit.after), blank=False)
    end = _body_end(data, body_start, hit)
    part = _make(sc, header, ctype, body_start, end, parts=tuple(children), message=None)
    return part, hit


def _next_line(data: bytes, pos: int) -> int:
    nl = data.find(b"\n", pos)
    return len(data) if nl < 0 else nl + 1


def _content_type(header: HeaderBlock, digest_child: bool) -> ContentType:
    """Content-Type with the defaults of RFC 2045 §5.2 and RFC 2046 §5.1.5."""
    value = field_value(first_fields(header, b"content-").get(b"content-type"))
    if value is None:
        if digest_child:
            return ContentType("message", "rfc822", ())
        return ContentType("text", "plain", _US_ASCII)
    ctype = parse_content_type(value)
    if not ctype.valid:
        return ContentType("text", "plain", _US_ASCII, valid=False)
    if ctype.type == "text" and ctype.param(b"charset") is None:
        return ContentType(ctype.type, ctype.subtype, (*ctype.params, *_US_ASCII))
    return ctype


def _make(
    sc: _Scanner,
    header: HeaderBlock,
    ctype: ContentType,
    start: int,
    end: int,
    *,
    parts: tuple[BodyPart, ...],
    message: EnclosedMessage | None,
    opaque: bool = False,
) -> BodyPart:
    mime = first_fields(header, b"content-")
    disposition = parse_content_disposition(field_value(mime.get(b"content-disposition")) or b"")
    language = field_value(mime.get(b"content-language"))
    return BodyPart(
        header_offset=header.offset,
        header_length=header.length,
        body_offset=start,
        body_length=end - start,
        body_lines=sc.lines(start, end),
        type=ctype.type,
        subtype=ctype.subtype,
        params=ctype.params,
        content_id=_stripped(mime, b"content-id"),
        description=_stripped(mime, b"content-description"),
        encoding=_stripped(mime, b"content-transfer-encoding"),
        md5=_stripped(mime, b"content-md5"),
        disposition=None if disposition is None else disposition[0],
        disposition_params=() if disposition is None else disposition[1],
        language=() if language is None else parse_content_language(language),
        location=_stripped(mime, b"content-location"),
        parts=parts,
        message=message,
        opaque=opaque,
    )


def _stripped(mime: dict[bytes, HeaderField], name: bytes) -> bytes | None:
    value = field_value(mime.get(name))
    return None if value is None else value.rstrip(b" \t\r\n")
