"""FETCH data items: what ``FETCH``/``UID FETCH`` ask for.

The parser in ``postel.imap.commands`` builds these; ``postel.imap.fetch`` renders the
answer. Macros ALL, FAST and FULL are expanded by the parser (RFC 9051 §6.4.5).

Spec: RFC 9051 §6.4.5, RFC 3516 §4.2 (BINARY, BINARY.SIZE), RFC 3501 §6.4.5 (RFC822,
RFC822.HEADER, RFC822.TEXT), RFC 7162 §3.1.4 (MODSEQ), RFC 8970 §3 (PREVIEW), RFC 8474 §5 (EMAILID, THREADID).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BinarySize", "BodySection", "FetchAttr", "FetchItem", "Section", "SectionText"]


class FetchAttr(StrEnum):
    """A FETCH data item without a section. ``BODY`` is BODYSTRUCTURE without extension
    data; ``RFC822`` is BODY[], ``RFC822.HEADER`` BODY.PEEK[HEADER], ``RFC822.TEXT``
    BODY[TEXT] (IMAP4rev1 names, kept for their own response labels)."""

    UID = "UID"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    ENVELOPE = "ENVELOPE"
    BODY = "BODY"
    BODYSTRUCTURE = "BODYSTRUCTURE"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_TEXT = "RFC822.TEXT"
    MODSEQ = "MODSEQ"
    """The message's mod-sequence, ``MODSEQ (n)``. Spec: RFC 7162 §3.1.4.1."""
    EMAILID = "EMAILID"
    """The message's content identifier, ``EMAILID (id)``. Spec: RFC 8474 §5.1."""
    THREADID = "THREADID"
    """The message's thread identifier; NIL (threads are not computed). Spec: RFC
    8474 §5.2."""
    SAVEDATE = "SAVEDATE"
    """When the message was put into the mailbox, ``SAVEDATE "date-time"``.
    Spec: RFC 8514 §2.1."""
    PREVIEW = "PREVIEW"
    """A short plain-text preview of the message (``PREVIEW (LAZY)`` parses to this
    too: the preview is always computed). Spec: RFC 8970 §3."""


class SectionText(StrEnum):
    """The text part of a section spec; ``NONE`` for a bare part number or ``[]``."""

    NONE = ""
    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"


@dataclass(frozen=True, slots=True)
class Section:
    """``[1.2.HEADER.FIELDS (From To)]`` is Section((1, 2), HEADER_FIELDS, ("FROM", "TO")).

    ``part`` is empty for the message itself. ``fields`` (upper-cased field names) only
    with HEADER_FIELDS / HEADER_FIELDS_NOT. ``str(section)`` is the spec as it appears in
    the response label, e.g. ``1.2.HEADER.FIELDS (FROM TO)``.

    Spec: RFC 9051 §6.4.5 (section-spec), §7.5.2 (BODY[<section>]<<origin octet>>).
    """

    part: tuple[int, ...] = ()
    text: SectionText = SectionText.NONE
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [str(n) for n in self.part]
        if self.text is not SectionText.NONE:
            parts.append(self.text.value)
        spec = ".".join(parts)
        if self.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class BodySection:
    """``BODY[section]<partial>``, ``BODY.PEEK[...]``, ``BINARY[...]``, ``BINARY.PEEK[...]``.

    ``partial`` is (origin, count) in octets. ``peek`` items do not set \\Seen. ``binary``
    asks for the content-transfer-decoded part (RFC 3516); a binary section has no
    section text.

    Spec: RFC 9051 §6.4.5, RFC 3516 §4.2.
    """

    section: Section
    peek: bool = False
    partial: tuple[int, int] | None = None
    binary: bool = False


@dataclass(frozen=True, slots=True)
class BinarySize:
    """``BINARY.SIZE[part]``: size of the decoded part. Spec: RFC 3516 §4.2."""

    part: tuple[int, ...]


FetchItem = FetchAttr | BodySection | BinarySize
"""Every FETCH data item. Spec: RFC 9051 §9 (fetch-att)."""
