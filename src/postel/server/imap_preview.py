"""FETCH PREVIEW: up to 256 characters of a message's first text part, computed from
the stored message on demand.

The part is the first text/plain or text/html leaf, depth first, that is not an
attachment (enclosed messages are not entered, as their text is not the message's
own). Only the stored octets up to that part's end are read, and at most
``PREVIEW_SCAN_MAX`` of its body. The body is transfer- and charset-decoded as SEARCH
does (:mod:`postel.imap.textsearch`); HTML loses its head, style and script elements,
then its markup (:func:`postel.imap.textsearch.reduced_html`); runs of white space
become one space. A message without such a part has the empty preview.

Spec: RFC 8970 §3 (PREVIEW), §4 (preview algorithm), §7 (syntax).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from postel.imap.decode import UnknownTransferEncoding, decode_transfer
from postel.imap.textsearch import decode_charset, part_charset, reduced_html
from postel.mail.mime import BodyPart
from postel.mail.summary import MessageSummary
from postel.store import StoredMessage

if TYPE_CHECKING:
    from postel.store.api import Store

__all__ = ["PREVIEW_CHARS_MAX", "PREVIEW_SCAN_MAX", "first_text_part", "load_preview", "preview"]

PREVIEW_CHARS_MAX = 256
"""Most characters of a preview. Spec: RFC 8970 §3.1 ("MUST NOT exceed 256")."""
PREVIEW_SCAN_MAX = 64 * 1024
"""Most octets of the part's body read to build a preview (local bound: 256 characters
of text sit well inside this even in verbose HTML; keeps FETCH PREVIEW cheap)."""

_HIDDEN_HTML = re.compile(rb"<(head|style|script)\b.*?(</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def first_text_part(root: BodyPart) -> BodyPart | None:
    """The first text/plain or text/html leaf (depth first) that is not an attachment,
    not looking inside message/rfc822 parts; None if there is none.
    Spec: RFC 8970 §4; RFC 2183 §2.2 (attachment)."""
    stack = [root]
    while stack:
        part = stack.pop()
        if part.is_multipart:
            stack.extend(reversed(part.parts))
            continue
        if part.type != "text" or part.subtype not in ("plain", "html") or part.opaque:
            continue
        if (part.disposition or b"").lower() == b"attachment":
            continue
        return part
    return None


def preview(body: bytes, part: BodyPart) -> str:
    """The preview of a part from its (raw, transfer-encoded) body octets: decoded,
    HTML reduced to text, white space collapsed, at most PREVIEW_CHARS_MAX characters.
    Never raises. Spec: RFC 8970 §3.1, §4."""
    try:
        octets = decode_transfer(body, part.encoding)
    except UnknownTransferEncoding:
        octets = body
    if part.subtype == "html":
        octets = _HIDDEN_HTML.sub(b" ", octets)
    text = decode_charset(octets, part_charset(part))
    if part.subtype == "html":
        text = reduced_html(text)
    return _SPACE.sub(" ", text).strip()[:PREVIEW_CHARS_MAX]


async def load_preview(
    store: Store, message: StoredMessage, summary: MessageSummary, data: bytes | None
) -> str:
    """The PREVIEW of a stored message. ``data`` is its octets when already loaded;
    otherwise only the octets up to the end of the first text part (at most
    PREVIEW_SCAN_MAX of its body) are streamed from the store. Raises NotFound.
    Spec: RFC 8970 §3."""
    part = first_text_part(summary.body)
    if part is None:
        return ""
    start = len(message.trace_prefix) + part.body_offset
    end = start + min(part.body_length, PREVIEW_SCAN_MAX)
    if data is None:
        data = await _read_upto(store, message, end)
    return preview(data[start:end], part)


async def _read_upto(store: Store, message: StoredMessage, want: int) -> bytes:
    out = bytearray()
    chunks = store.open_message(message.mailbox_id, message.uid)
    try:
        async for chunk in chunks:
            out += chunk
            if len(out) >= want:
                break
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return bytes(out[:want])
