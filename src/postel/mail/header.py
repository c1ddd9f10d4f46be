"""Header sections: fields with byte offsets, unfolding, RFC 2047 encoded words.

A header section runs from its first octet to the first empty line (the empty line
belongs to the header section as its separator) or to the end of the data. Lines end
at LF; a CR before the LF is part of the line break (stored messages are CRLF, see
RELIABILITY.md D4, but the parser must not fail on anything else).

Malformed lines: a line that is not a continuation and has no colon, or whose
would-be field name is empty or contains characters outside ftext, is not a header
field (RFC 5322 §2.2, §3.6.8). It does not end the header section either: only the
empty line does (RFC 5322 §2.1). Such a line is skipped (it stays inside the header
section's octets, so sizes and offsets are unaffected) and counted in
``HeaderBlock.malformed``. Continuation lines that follow a skipped line are skipped
with it. Dovecot 2.3 reads such lines the same way: on the seven corpus messages with
malformed header lines (tests/mail, email-corpus) both give the same header size,
ENVELOPE and BODYSTRUCTURE. (Python's ``email`` instead starts the body at such a
line.)
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass

from postel import limits

__all__ = [
    "HeaderBlock",
    "HeaderField",
    "decode_encoded_words",
    "find_header_end",
    "split_header",
    "unfold",
]

_BLANK_LINE = re.compile(rb"\n\r?\n")
_FIELD_END = re.compile(rb"\n(?![ \t])")
_FTEXT_CLASS = rb"[\x21-\x39\x3b-\x7e]"
"""A field name's characters: printable US-ASCII except the colon. Spec: RFC 5322 §3.6.8."""
_FTEXT = re.compile(_FTEXT_CLASS + rb"+")
_WELL_FORMED = rb"((%s++)[ \t]*+:([^\n]*+(?:\n[ \t][^\n]*+)*+)\n)" % _FTEXT_CLASS
_WELL_FORMED_RUN = re.compile(rb"(?:%s)*+" % _WELL_FORMED)
"""Well-formed fields from the match position on, one after another: a field line and
its continuations up to the LF that no WSP follows. Possessive quantifiers only, so
the match never backtracks: it stops at the first line that is not such a field after
reading each octet at most once (a long line of name characters without a colon is
read once, not tried again from each of its octets)."""
_WELL_FORMED_FIELD = re.compile(_WELL_FORMED)
"""One field of a run ``_WELL_FORMED_RUN`` matched: (whole field, name without the WSP
before the colon, value with its final CR if any)."""
_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_EW_GAP = re.compile(rb"\?=[ \t\r\n]+=\?")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field as it appears in the message.

    ``name`` is the field name as written (case kept, trailing WSP before the colon
    removed); ``value`` the raw octets after the colon up to, not including, the line
    break ending the field (folding line breaks kept); ``offset`` and ``length`` locate
    the whole field including its final line break in the message.

    Spec: RFC 5322 §2.2, §3.6.8.
    """

    name: bytes
    value: bytes
    offset: int
    length: int

    def matches(self, name: bytes) -> bool:
        """True if this field's name equals ``name`` ignoring ASCII case. Spec: RFC 5322 §1.2.2."""
        return self.name.lower() == name.lower()


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """A parsed header section.

    ``offset``/``length`` cover the header section including the empty separator line
    when there is one; ``body_offset`` = ``offset + length``. ``truncated`` is true when
    more than ``max_fields`` fields were present (the rest are not listed);
    ``malformed`` counts skipped non-field lines.

    Spec: RFC 5322 §2.1, §2.2.
    """

    fields: tuple[HeaderField, ...]
    offset: int
    length: int
    truncated: bool = False
    malformed: int = 0

    @property
    def body_offset(self) -> int:
        """Offset of the first body octet (the end of the header section)."""
        return self.offset + self.length

    def first(self, name: bytes) -> HeaderField | None:
        """The first field called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for field in self.fields:
            if field.name.lower() == low:
                return field
        return None

    def last(self, name: bytes) -> HeaderField | None:
        """The last field called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for field in reversed(self.fields):
            if field.name.lower() == low:
                return field
        return None

    def get_all(self, name: bytes) -> tuple[HeaderField, ...]:
        """Every field called ``name`` (case-insensitive), in order."""
        low = name.lower()
        return tuple(f for f in self.fields if f.name.lower() == low)


def find_header_end(data: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Locate the end of the header section that begins at ``start``.

    Returns ``(header_end, body_start)``: the header section is ``data[start:header_end]``
    (every field line with its line break), the empty line is
    ``data[header_end:body_start]``. Without an empty line both are ``end``.

    Spec: RFC 5322 §2.1.
    """
    stop = len(data) if end is None else end
    if start >= stop:
        return stop, stop
    if data.startswith(b"\n", start):
        return start, start + 1
    if data.startswith(b"\r\n", start) and start + 2 <= stop:
        return start, start + 2
    m = _BLANK_LINE.search(data, start, stop)
    if m is None:
        return stop, stop
    return m.start() + 1, m.end()


def split_header(
    data: bytes,
    start: int = 0,
    end: int | None = None,
    *,
    max_fields: int = limits.MIME_HEADER_FIELDS_MAX,
) -> HeaderBlock:
    """Split the header section starting at ``start`` into fields with offsets.

    ``end`` bounds the search (default: end of data). The header section ends at the
    first empty line or at ``end``. At most ``max_fields`` fields are returned
    (limits.MIME_HEADER_FIELDS_MAX); past that the section's end is still found with
    one linear search. Never raises.

    Spec: RFC 5322 §2.1, §2.2.
    """
    stop = len(data) if end is None else end
    header_end, body_start = find_header_end(data, start, stop)
    fields, truncated, malformed = _fields(data, start, header_end, max_fields)
    return HeaderBlock(tuple(fields), start, body_start - start, truncated, malformed)


def _fields(
    data: bytes, start: int, end: int, max_fields: int
) -> tuple[list[HeaderField], bool, int]:
    """Fields in ``data[start:end]``, which holds whole header lines only.

    A header of well-formed fields only (the usual case) is split by regular
    expressions, in time linear in its length; when the range is not such a run of
    fields (a malformed line, a last line without its line break) or there are more
    than ``max_fields`` fields, the line-by-line reading below decides, with the same
    results."""
    run = _WELL_FORMED_RUN.match(data, start, end)
    found = _WELL_FORMED_FIELD.findall(data, start, end) if run and run.end() == end else None
    if found is not None and len(found) <= max_fields:
        fields: list[HeaderField] = []
        pos = start
        for whole, name, value in found:
            length = len(whole)
            if value.endswith(b"\r"):
                value = value[:-1]
            fields.append(HeaderField(name, value, pos, length))
            pos += length
        if pos == end:  # the matches cover every octet, so none was skipped
            return fields, False, 0
    return _fields_by_line(data, start, end, max_fields)


def _fields_by_line(
    data: bytes, start: int, end: int, max_fields: int
) -> tuple[list[HeaderField], bool, int]:
    """``_fields`` one field at a time, skipping malformed lines."""
    fields: list[HeaderField] = []
    malformed = 0
    pos = start
    while pos < end:
        m = _FIELD_END.search(data, pos, end)
        field_end = end if m is None else m.start() + 1
        if len(fields) >= max_fields:
            return fields, True, malformed
        field = _field(data, pos, field_end)
        if field is None:
            malformed += 1
        else:
            fields.append(field)
        pos = field_end
    return fields, False, malformed


def _field(data: bytes, start: int, end: int) -> HeaderField | None:
    """One field from ``data[start:end]`` (a field line plus its continuations)."""
    line_end = data.find(b"\n", start, end)
    first_line_end = end if line_end < 0 else line_end
    colon = data.find(b":", start, first_line_end)
    if colon <= start:
        return None
    name = data[start:colon].rstrip(b" \t")
    if not name or _FTEXT.fullmatch(name) is None:
        return None
    value_end = end
    if data.endswith(b"\n", start, end):
        value_end -= 1
        if value_end > colon + 1 and data[value_end - 1] == 0x0D:
            value_end -= 1
    return HeaderField(name, data[colon + 1 : value_end], start, end - start)


def unfold(value: bytes) -> bytes:
    """Remove folding line breaks (CRLF or LF before WSP), keeping the WSP.

    Spec: RFC 5322 §2.2.3.
    """
    if b"\n" not in value:
        return value
    for fold, wsp in ((b"\r\n ", b" "), (b"\r\n\t", b"\t"), (b"\n ", b" "), (b"\n\t", b"\t")):
        value = value.replace(fold, wsp)
    return value


def decode_encoded_words(value: bytes) -> str:
    """Decode RFC 2047 encoded words in an unfolded header value, for display and search.

    Octets outside encoded words are taken as UTF-8 (RFC 6532), falling back to latin-1.
    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2). An encoded word
    with an unknown charset or bad encoding is left as written. Never raises. IMAP
    ENVELOPE and BODYSTRUCTURE never use this: they return the raw octets.

    Spec: RFC 2047 §2, §4, §6.
    """
    text = _EW_GAP.sub(b"?==?", unfold(value))
    out: list[str] = []
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        out.append(_decode_raw(text[pos : m.start()]))
        decoded = _decode_word(m.group(1), m.group(2), m.group(3))
        out.append(decoded if decoded is not None else _decode_raw(m.group(0)))
        pos = m.end()
    out.append(_decode_raw(text[pos:]))
    return "".join(out)


def _decode_raw(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_word(charset: bytes, encoding: bytes, text: bytes) -> str | None:
    """One encoded word's text, or None if it cannot be decoded. Spec: RFC 2047 §4, RFC 2231 §5."""
    name = charset.split(b"*", 1)[0].decode("ascii", "replace")
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    try:
        if encoding in (b"b", b"B"):
            padded = text + b"=" * (-len(text) % 4)
            octets = base64.b64decode(padded, validate=False)
        else:
            octets = _q_decode(text)
        return octets.decode(name, "replace")
    except (binascii.Error, ValueError, UnicodeError):
        return None


def _q_decode(text: bytes) -> bytes:
    """The "Q" encoding: '_' is space, =XX a hex octet. Spec: RFC 2047 §4.2."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x5F:
            out.append(0x20)
        elif c == 0x3D and _is_hex(text[i + 1 : i + 3]):
            out.append(int(text[i + 1 : i + 3], 16))
            i += 2
        else:
            out.append(c)
        i += 1
    return bytes(out)


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
