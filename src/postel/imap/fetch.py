"""FETCH rendering: the ``label value`` pairs of one ``* n FETCH (...)`` response.

A stored message is ``trace_prefix + blob``; its MessageSummary describes the blob, so
every offset of the summary moves by ``len(trace_prefix)`` and the top-level header
(which holds the trace fields) starts at 0 and grows by ``len(trace_prefix)``.

Section rules (RFC 9051 §6.4.5), with Dovecot's answers where the RFC is silent:

* Part numbers follow :func:`postel.mail.summary.find_part`: a non-multipart message
  has part 1 (its body), parts of a message/rfc822 part are numbered below it.
* ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT`` and ``TEXT`` apply to the message
  or to a message/rfc822 part; ``MIME`` is the part's own header. The MIME header of
  part 1 of a non-multipart message is the message header.
* A section that does not exist (no such part, HEADER of a part that is not
  message/rfc822, MIME without a part number) is the empty string, sent as ``{0}``,
  as Dovecot does (imap-msgpart.c: "MIME part not found. return an empty part.").
* ``HEADER.FIELDS (...)``: the matching fields (names compared case-insensitively) in
  message order, each with its own folding, then the empty line; the empty line is
  there even when no field matches. Lines that are not header fields are dropped.
* ``<origin.count>``: octets ``origin`` to ``origin + count`` of the section, labelled
  ``BODY[...]<origin>``; an origin at or past the end gives the empty string.
* A literal must not contain NUL (RFC 9051 §9, CHAR8): in BODY[...] and RFC822 values a
  NUL octet is sent as 0x80, as Dovecot does. BINARY values holding NUL are sent as
  ``literal8`` (``~{n}``), others as plain literals (RFC 3516 §4.2).
* ``BINARY[part]`` decodes the part's Content-Transfer-Encoding
  (:mod:`postel.imap.decode`); an unknown one raises
  :class:`~postel.imap.decode.UnknownTransferEncoding` (answer ``NO [UNKNOWN-CTE]``,
  RFC 3516 §4.3). A multipart or message/rfc822 part, whose own encoding may only be
  7bit, 8bit or binary (RFC 2045 §6.4, RFC 2046 §5.2.1), and ``BINARY[]`` give their
  octets unchanged; Dovecot instead decodes every leaf inside them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from postel.errors import LocalProtocolError
from postel.imap.decode import UnknownTransferEncoding, decode_transfer, transfer_encoding
from postel.imap.fetch_items import (
    BinarySize,
    BodySection,
    FetchAttr,
    FetchItem,
    Section,
    SectionText,
)
from postel.imap.responses import nstring
from postel.mail.header import split_header
from postel.mail.imapfmt import render_body, render_bodystructure, render_envelope
from postel.mail.mime import BodyPart
from postel.mail.summary import MessageSummary, find_part

__all__ = [
    "ATTRIBUTE_ITEMS",
    "MESSAGE_ATTRS",
    "FetchDataMissing",
    "FetchPlan",
    "FetchSource",
    "UnknownTransferEncoding",
    "binary_octets",
    "decodable",
    "format_internal_date",
    "named_part",
    "needs_bytes",
    "needs_summary",
    "plan",
    "render_attributes",
    "render_flags",
    "render_item",
    "render_items",
    "section_octets",
    "sets_seen",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NUL_TO_80 = bytes.maketrans(b"\x00", b"\x80")
_BYTES_ATTRS = frozenset({FetchAttr.RFC822, FetchAttr.RFC822_HEADER, FetchAttr.RFC822_TEXT})
_SEEN_ATTRS = frozenset({FetchAttr.RFC822, FetchAttr.RFC822_TEXT})
_LABELS = {attr: attr.value.encode("ascii") for attr in FetchAttr}
FLAG_LISTS_CACHED = 4096
"""Distinct flag sets whose rendered list is remembered (flag sets of one mailbox are
few and shared; local bound on the memo)."""


class FetchDataMissing(LocalProtocolError):
    """An item needs the message octets but ``FetchSource.data`` is None (the driver
    should have loaded them: see :func:`needs_bytes`)."""


@dataclass(frozen=True, slots=True)
class FetchSource:
    """What FETCH reads of one message.

    ``size`` is RFC822.SIZE (``len(trace_prefix)`` + blob size); ``summary`` is the
    MessageSummary of the blob; ``data`` is the stored message (``trace_prefix + blob``)
    or None when no requested item needs it. ``internal_date`` should be aware (a naive
    one is taken as UTC).

    Spec: RFC 9051 §2.3 (message attributes), §7.5.2.
    """

    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    summary: MessageSummary
    trace_prefix: bytes = b""
    data: bytes | None = None
    modseq: int = 0
    """The message's MODSEQ (RFC 7162 §3.1.4.1)."""
    preview: str | None = None
    """The PREVIEW text (RFC 8970 §3), computed by the driver; None is sent as NIL."""
    email_id: str = ""
    """The EMAILID (RFC 8474 §5.1), computed by the driver."""
    save_date: dt.datetime | None = None
    """The SAVEDATE (RFC 8514 §2.1); None is sent as NIL."""
    envelope: bytes | None = None
    """The ENVELOPE already rendered (postel.mail.summary.imap_envelope); None: rendered
    from ``summary``."""


MESSAGE_ATTRS = frozenset(
    {
        FetchAttr.UID,
        FetchAttr.FLAGS,
        FetchAttr.INTERNALDATE,
        FetchAttr.RFC822_SIZE,
        FetchAttr.MODSEQ,
        FetchAttr.EMAILID,
        FetchAttr.THREADID,
        FetchAttr.SAVEDATE,
    }
)
"""The items that read only the message's row (no summary, no octets)."""
_NO_SUMMARY_ATTRS = MESSAGE_ATTRS | {FetchAttr.RFC822}


def needs_summary(items: Iterable[FetchItem]) -> bool:
    """True when some item reads the message summary (ENVELOPE, BODY, BODYSTRUCTURE,
    PREVIEW, a part or the header or text of a section, BINARY); the message
    attributes and the whole message (``BODY[]``, ``RFC822``, any partial of them) do
    not. Spec: RFC 9051 §6.4.5."""
    for item in items:
        if isinstance(item, BodySection):
            whole = not item.binary and not item.section.part
            if whole and item.section.text is SectionText.NONE:
                continue
            return True
        if isinstance(item, BinarySize) or item not in _NO_SUMMARY_ATTRS:
            return True
    return False


ATTRIBUTE_ITEMS = frozenset(
    {
        FetchAttr.UID,
        FetchAttr.FLAGS,
        FetchAttr.INTERNALDATE,
        FetchAttr.RFC822_SIZE,
        FetchAttr.MODSEQ,
        FetchAttr.ENVELOPE,
    }
)
"""The items :func:`render_attributes` renders (what clients ask of every message when
they synchronise a mailbox's list)."""


def render_attributes(
    items: Sequence[FetchAttr],
    msn: int,
    uid: int,
    flags: frozenset[str],
    size: int,
    modseq: int,
    internal_date: dt.datetime,
    envelope: bytes,
) -> bytes:
    """The whole ``* msn FETCH (...)`` line of ``items`` (all in ATTRIBUTE_ITEMS, in the
    order given), as :func:`render_items` renders them, without a FetchSource: the
    per-message work of a FETCH over a whole mailbox. ``envelope`` is the rendered
    ENVELOPE (unused when not asked). Spec: RFC 9051 §7.5.2."""
    parts: list[bytes] = []
    for item in items:
        if item is FetchAttr.UID:
            parts.append(b"UID %d" % uid)
        elif item is FetchAttr.FLAGS:
            parts.append(b"FLAGS " + _flag_list(flags))
        elif item is FetchAttr.RFC822_SIZE:
            parts.append(b"RFC822.SIZE %d" % size)
        elif item is FetchAttr.ENVELOPE:
            parts.append(b"ENVELOPE " + envelope)
        elif item is FetchAttr.MODSEQ:
            parts.append(b"MODSEQ (%d)" % modseq)
        else:
            parts.append(b'INTERNALDATE "' + format_internal_date(internal_date) + b'"')
    return b"* %d FETCH (" % msn + b" ".join(parts) + b")\r\n"


def needs_bytes(items: Iterable[FetchItem]) -> bool:
    """True when some item needs the message octets (BODY[...], BINARY[...],
    BINARY.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT); UID, FLAGS, INTERNALDATE,
    RFC822.SIZE, ENVELOPE, BODY and BODYSTRUCTURE come from the summary.

    Spec: RFC 9051 §6.4.5.
    """
    return any(isinstance(item, BodySection | BinarySize) or item in _BYTES_ATTRS for item in items)


def sets_seen(items: Iterable[FetchItem]) -> bool:
    """True when FETCH of ``items`` sets \\Seen: a non-PEEK BODY[...] or BINARY[...],
    RFC822 or RFC822.TEXT. (The driver sets it only in a read-write mailbox.)

    Spec: RFC 9051 §6.4.5 (BODY[], BINARY[]), RFC 3501 §6.4.5 (RFC822, RFC822.TEXT).
    """
    return any(
        (isinstance(item, BodySection) and not item.peek) or item in _SEEN_ATTRS for item in items
    )


class FetchPlan(NamedTuple):
    """What answering a FETCH item list takes, decided once per distinct list
    (``plan``): the lane, what is read, whether \\Seen is set. Spec: RFC 9051 §6.4.5."""

    attributes_only: bool
    """Every item is in ATTRIBUTE_ITEMS (the message-list lane)."""
    sets_seen: bool
    needs_bytes: bool
    needs_summary: bool
    envelope_only: bool
    """Every item is a message attribute or ENVELOPE (the summary's MIME tree is not
    decoded)."""
    decodes: bool
    """Some item decodes a part's content-transfer-encoding (BINARY[...], BINARY.SIZE),
    which fails for an unknown encoding (see :func:`decodable`)."""


_ENVELOPE_ITEMS = MESSAGE_ATTRS | {FetchAttr.ENVELOPE}


@functools.lru_cache(maxsize=256)
def plan(items: tuple[FetchItem, ...]) -> FetchPlan:
    """The FetchPlan of ``items`` (cached: clients repeat a few item lists)."""
    return FetchPlan(
        attributes_only=all(item in ATTRIBUTE_ITEMS for item in items),
        sets_seen=sets_seen(items),
        needs_bytes=needs_bytes(items),
        needs_summary=needs_summary(items),
        envelope_only=all(item in _ENVELOPE_ITEMS for item in items),
        decodes=any(_binary_part(item) is not None for item in items),
    )


def _binary_part(item: FetchItem) -> tuple[int, ...] | None:
    if isinstance(item, BinarySize):
        return item.part
    if isinstance(item, BodySection) and item.binary:
        return item.section.part
    return None


def decodable(items: Iterable[FetchItem], summary: MessageSummary) -> bool:
    """False when some BINARY item of ``items`` names a leaf part whose
    Content-Transfer-Encoding is unknown, i.e. when :func:`render_items` would raise
    UnknownTransferEncoding; decided from the summary alone, without the octets.
    Spec: RFC 3516 §4.2 (UNKNOWN-CTE)."""
    for item in items:
        number = _binary_part(item)
        if not number:
            continue
        part = find_part(summary.body, number)
        if part is None or part.is_multipart or part.message is not None:
            continue
        try:
            transfer_encoding(part.encoding)
        except UnknownTransferEncoding:
            return False
    return True


def render_items(items: Sequence[FetchItem], msg: FetchSource) -> list[tuple[bytes, bytes]]:
    """``(label, value)`` for each item, in order, as they go inside ``* n FETCH (...)``.

    E.g. ``(b"UID", b"7")``, ``(b"BODY[HEADER.FIELDS (FROM)]<0>", b"{23}\\r\\n...")``.
    Raises UnknownTransferEncoding (BINARY/BINARY.SIZE of a part with an unknown
    Content-Transfer-Encoding) and FetchDataMissing (octets needed, ``data`` None).

    Spec: RFC 9051 §6.4.5, §7.5.2; RFC 3516 §4.2.
    """
    return [render_item(item, msg) for item in items]


def render_item(item: FetchItem, msg: FetchSource) -> tuple[bytes, bytes]:
    """One ``(label, value)`` pair; see :func:`render_items`. Spec: RFC 9051 §7.5.2."""
    if isinstance(item, BodySection):
        return _body_section(item, msg)
    if isinstance(item, BinarySize):
        label = b"BINARY.SIZE[" + _part_spec(item.part) + b"]"
        return label, b"%d" % len(binary_octets(msg, item.part))
    return _LABELS[item], _attr(item, msg)


def _attr(attr: FetchAttr, msg: FetchSource) -> bytes:
    if attr is FetchAttr.UID:
        return b"%d" % msg.uid
    if attr is FetchAttr.FLAGS:
        return _flag_list(msg.flags)
    if attr is FetchAttr.ENVELOPE:
        return msg.envelope if msg.envelope is not None else render_envelope(msg.summary)
    if attr is FetchAttr.INTERNALDATE:
        return b'"' + format_internal_date(msg.internal_date) + b'"'
    if attr is FetchAttr.RFC822_SIZE:
        return b"%d" % msg.size
    if attr is FetchAttr.MODSEQ:
        return b"(%d)" % msg.modseq
    if attr is FetchAttr.PREVIEW:
        return nstring(msg.preview)
    if attr is FetchAttr.EMAILID:
        return b"(" + msg.email_id.encode("ascii") + b")"
    if attr is FetchAttr.THREADID:
        return b"NIL"
    if attr is FetchAttr.SAVEDATE:
        if msg.save_date is None:
            return b"NIL"
        return b'"' + format_internal_date(msg.save_date) + b'"'
    if attr is FetchAttr.BODY:
        return render_body(msg.summary)
    if attr is FetchAttr.BODYSTRUCTURE:
        return render_bodystructure(msg.summary)
    if attr is FetchAttr.RFC822:
        return _literal(section_octets(msg, Section()))
    if attr is FetchAttr.RFC822_HEADER:
        return _literal(section_octets(msg, Section(text=SectionText.HEADER)))
    return _literal(section_octets(msg, Section(text=SectionText.TEXT)))


@functools.lru_cache(maxsize=FLAG_LISTS_CACHED)
def _flag_list(flags: frozenset[str]) -> bytes:
    return render_flags(flags)


def render_flags(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Label ...)``: system flags first, then keywords, each group sorted.

    Spec: RFC 9051 §7.5.2 (FLAGS), §2.3.2.
    """
    ordered = sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower(), f))
    return b"(" + " ".join(ordered).encode("utf-8") + b")"


def format_internal_date(when: dt.datetime) -> bytes:
    """``dd-Mon-yyyy hh:mm:ss +zzzz`` (day padded with a space), without the quotes.

    A naive datetime is taken as UTC. Spec: RFC 9051 §9 (date-time).
    """
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    text = (
        f"{when.day:2d}-{_MONTHS[when.month - 1]}-{when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{hours:02d}{mins:02d}"
    )
    return text.encode("ascii")


# --- BODY[section] and BINARY[part] --------------------------------------------------


def _body_section(item: BodySection, msg: FetchSource) -> tuple[bytes, bytes]:
    if item.binary:
        octets = binary_octets(msg, item.section.part)
        label = b"BINARY[" + _part_spec(item.section.part) + b"]"
    else:
        octets = section_octets(msg, item.section)
        label = b"BODY[" + str(item.section).encode("utf-8") + b"]"
    if item.partial is not None:
        origin, count = item.partial
        octets = octets[origin : origin + count] if origin < len(octets) else b""
        label += b"<%d>" % origin
    return label, _literal(octets, binary=item.binary)


def _part_spec(part: tuple[int, ...]) -> bytes:
    return ".".join(str(n) for n in part).encode("ascii")


def _literal(octets: bytes, *, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` + octets; NUL becomes 0x80, or, for BINARY, ``~{n}`` (literal8).

    Spec: RFC 9051 §4.3, §9 (literal, CHAR8); RFC 3516 §4.2 (literal8).
    """
    if b"\x00" in octets:
        if binary:
            return b"~{%d}\r\n" % len(octets) + octets
        octets = octets.translate(_NUL_TO_80)
    return b"{%d}\r\n" % len(octets) + octets


def _data(msg: FetchSource) -> bytes:
    if msg.data is None:
        raise FetchDataMissing("FETCH item needs the message octets")
    return msg.data


@dataclass(frozen=True, slots=True)
class _View:
    """The stored octets with the blob's summary: ``shift`` = len(trace_prefix)."""

    data: bytes
    summary: MessageSummary
    shift: int

    @property
    def root(self) -> BodyPart:
        return self.summary.body

    def header(self, entity: BodyPart) -> tuple[int, int]:
        """(start, end) of an entity's header; the root's includes the trace fields."""
        if entity is self.root:
            return 0, self.shift + entity.header_length
        start = entity.header_offset + self.shift
        return start, start + entity.header_length

    def body(self, entity: BodyPart) -> tuple[int, int]:
        start = entity.body_offset + self.shift
        return start, start + entity.body_length

    def octets(self, span: tuple[int, int]) -> bytes:
        return self.data[span[0] : span[1]]


def _view(msg: FetchSource) -> _View:
    return _View(_data(msg), msg.summary, len(msg.trace_prefix))


def section_exists(summary: MessageSummary, section: Section) -> bool:
    """Whether ``section`` names something in the message ``summary`` describes (see
    ``named_part``). FETCH answers a missing section with an empty string; an IMAP URL
    naming one is invalid. Spec: RFC 9051 §6.4.5; RFC 5092 §3; RFC 4469 §5."""
    return named_part(summary.body, section) is not None


def named_part(root: BodyPart, section: Section) -> BodyPart | None:
    """The part whose octets ``section`` takes, in the tree under ``root``; None when
    there is none: the part number does not exist, HEADER, TEXT or HEADER.FIELDS of a
    part is asked of one that is not message/rfc822 (they then take the embedded
    message's own root part), or MIME comes without a part number.
    Spec: RFC 9051 §6.4.5."""
    if not section.part:
        return None if section.text is SectionText.MIME else root
    part = find_part(root, section.part)
    if part is None or section.text in (SectionText.NONE, SectionText.MIME):
        return part
    return part.message.body if part.message is not None else None


def section_octets(msg: FetchSource, section: Section) -> bytes:
    """The octets of ``BODY[section]`` (before any partial), b"" if it does not exist.

    Raises FetchDataMissing when ``msg.data`` is None. Spec: RFC 9051 §6.4.5.
    """
    view = _view(msg)
    if section.text is SectionText.NONE and not section.part:
        return view.data
    part = named_part(view.root, section)
    if part is None:
        return b""
    if section.text is SectionText.NONE:
        return view.octets(view.body(part))
    if section.text is SectionText.MIME:
        return view.octets(view.header(part))
    if section.text is SectionText.TEXT:
        if part is view.root:
            return view.data[view.body(part)[0] :]
        return view.octets(view.body(part))
    start, end = view.header(part)
    if section.text is SectionText.HEADER:
        return view.data[start:end]
    return _header_fields(
        view.data, start, end, section.fields, section.text is SectionText.HEADER_FIELDS_NOT
    )


def _header_fields(data: bytes, start: int, end: int, names: Sequence[str], exclude: bool) -> bytes:
    """The fields named (or, with ``exclude``, not named) in ``names``, then CRLF.

    Spec: RFC 9051 §6.4.5 (HEADER.FIELDS, HEADER.FIELDS.NOT).
    """
    wanted = {n.lower().encode("utf-8", "replace") for n in names}
    out: list[bytes] = []
    for field in split_header(data, start, end).fields:
        if (field.name.lower() in wanted) != exclude:
            raw = data[field.offset : field.offset + field.length]
            out.append(raw if raw.endswith(b"\n") else raw + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def binary_octets(msg: FetchSource, part_number: tuple[int, ...]) -> bytes:
    """The content-transfer-decoded body of a part (``BINARY[part]``), b"" if there is
    no such part. ``()`` is the whole message, and a multipart or message/rfc822 part is
    returned as stored (their encoding is an identity, RFC 2045 §6.4).

    Raises UnknownTransferEncoding for an unknown encoding of a leaf part, and
    FetchDataMissing when ``msg.data`` is None. Spec: RFC 3516 §4.2, §4.3.
    """
    view = _view(msg)
    if not part_number:
        return view.data
    part = find_part(view.root, part_number)
    if part is None:
        return b""
    body = view.octets(view.body(part))
    if part.is_multipart or part.message is not None:
        return body
    return decode_transfer(body, part.encoding)
