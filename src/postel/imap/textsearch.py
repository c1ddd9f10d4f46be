"""The text of a message as SEARCH sees it: decoded header fields and body text.

Header fields are unfolded and their RFC 2047 encoded words decoded
(:func:`postel.mail.header.decode_encoded_words`). Body text is every text/* leaf part
(in multiparts and inside message/rfc822 parts, whose header fields count as body
text too), content-transfer-decoded (:mod:`postel.imap.decode`; an unknown encoding is
searched as written, as Dovecot does) and then charset-decoded. Other parts, preambles
and epilogues are not searched. A text/html part is searched twice over: as its decoded
source and as that source reduced to text (markup dropped, character references such as
``&amp;`` expanded), so a word matches whether it is split by markup or written as a
reference (:func:`search_texts`).

Charset decoding never fails: a charset Python knows decodes with U+FFFD for bad
octets; us-ascii, an unknown or missing charset, or a name that is not a text codec is
read as UTF-8 when the octets are valid UTF-8 and as windows-1252 otherwise (8-bit
octets under a us-ascii label are common in real mail).
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

from postel.imap.decode import UnknownTransferEncoding, decode_transfer
from postel.mail.header import decode_encoded_words, split_header
from postel.mail.mime import BodyPart

__all__ = [
    "CHARSET_NAME_MAX",
    "HeaderText",
    "body_texts",
    "decode_charset",
    "header_text",
    "part_charset",
    "reduced_html",
    "search_texts",
]

CHARSET_NAME_MAX = 64
"""Longer charset names are not looked up (local bound; IANA names are at most 40
characters). Spec: RFC 2978 §2.3."""

_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")
_ASCII_CODECS = frozenset({"ascii"})
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class HeaderText:
    """Decoded header fields: ``fields`` holds (lower-case name, decoded value) pairs in
    message order. Spec: RFC 5322 §2.2, RFC 2047 §6."""

    fields: tuple[tuple[str, str], ...]

    def values(self, name: str) -> list[str]:
        """Decoded values of every field called ``name`` (case-insensitive)."""
        low = name.lower()
        return [value for n, value in self.fields if n == low]

    def text(self) -> str:
        """All fields as ``name: value`` lines."""
        return "\n".join(f"{n}: {v}" for n, v in self.fields)


def header_text(data: bytes, start: int = 0, end: int | None = None) -> HeaderText:
    """The decoded fields of the header section at ``data[start:end]``. Never raises.

    Spec: RFC 5322 §2.2.3 (unfolding), RFC 2047 §6.
    """
    block = split_header(data, start, end)
    return HeaderText(
        tuple(
            (f.name.decode("latin-1").lower(), decode_encoded_words(f.value.strip(b" \t\r\n")))
            for f in block.fields
        )
    )


def part_charset(part: BodyPart) -> bytes | None:
    """The ``charset`` parameter of a part's Content-Type, or None. Spec: RFC 2046 §4.1.2."""
    for p in part.params:
        if p.name.lower() == b"charset":
            return p.value
    return None


def decode_charset(octets: bytes, charset: bytes | None) -> str:
    """Octets of a text part as a str (see the module docstring). Never raises.

    Spec: RFC 2046 §4.1.2, RFC 6532 §3 (UTF-8 where no charset applies).
    """
    name = _codec_name(charset)
    if name is not None and name not in _ASCII_CODECS:
        try:
            return octets.decode(name, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return octets.decode("cp1252", "replace")


def _codec_name(charset: bytes | None) -> str | None:
    if charset is None or len(charset) > CHARSET_NAME_MAX:
        return None
    text = charset.decode("latin-1").strip()
    if _CHARSET_NAME.fullmatch(text) is None:
        return None
    try:
        info = codecs.lookup(text)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def body_texts(data: bytes, root: BodyPart, shift: int = 0) -> Iterator[str]:
    """The decoded text of each text/* leaf (and each enclosed message's header), in
    message order. ``shift`` is added to every offset of ``root`` (len(trace_prefix)
    for a summary of the blob). Never raises.

    Spec: RFC 9051 §6.4.4 (BODY), RFC 2045 §6, RFC 2046 §5.
    """
    for text, _html in _texts(data, root, shift):
        yield text


def search_texts(data: bytes, root: BodyPart, shift: int = 0) -> list[str]:
    """The texts BODY matches: :func:`body_texts`, then each text/html leaf reduced
    to text (:func:`reduced_html`). A match lies within one of them. Never raises.

    Spec: RFC 9051 §6.4.4 (BODY: "contains the specified string in the body").
    """
    texts: list[str] = []
    reduced: list[str] = []
    for text, is_html in _texts(data, root, shift):
        texts.append(text)
        if is_html:
            reduced.append(reduced_html(text))
    return texts + reduced


def reduced_html(text: str) -> str:
    """HTML source reduced to text: markup dropped and character references expanded.
    Spec: HTML Living Standard §13.1 (syntax), §13.5 (named character references)."""
    return html.unescape(_TAG.sub("", text))


def _texts(data: bytes, root: BodyPart, shift: int) -> Iterator[tuple[str, bool]]:
    """(text, is text/html) of each leaf :func:`body_texts` reads, in message order."""
    stack = [root]
    while stack:
        part = stack.pop()
        if part.is_multipart:
            stack.extend(reversed(part.parts))
        elif part.message is not None:
            inner = part.message.body
            start = inner.header_offset + shift
            yield header_text(data, start, start + inner.header_length).text(), False
            stack.append(inner)
        elif part.type == "text" and not part.opaque:
            start = part.body_offset + shift
            body = data[start : start + part.body_length]
            yield _leaf_text(body, part), part.subtype == "html"


def _leaf_text(body: bytes, part: BodyPart) -> str:
    try:
        octets = decode_transfer(body, part.encoding)
    except UnknownTransferEncoding:
        octets = body
    return decode_charset(octets, part_charset(part))
