"""FETCH arguments: the data items (macros expanded, sections, partial ranges) and the
CHANGEDSINCE modifier, parsed into ``postel.imap.fetch_items`` values.

Spec: RFC 9051 §6.4.5, §9 (fetch, fetch-att, section, partial); RFC 3516 §4.2
(BINARY, BINARY.PEEK, BINARY.SIZE); RFC 3501 §6.4.5 (RFC822 items);
RFC 7162 §3.1.4.1 (CHANGEDSINCE), §3.2.6 (VANISHED); RFC 8970 §3 (PREVIEW).
"""

from __future__ import annotations

import functools

from postel.imap.fetch_items import (
    BinarySize,
    BodySection,
    FetchAttr,
    FetchItem,
    Section,
    SectionText,
)
from postel.imap.grammar import Cursor, ImapSyntaxError

__all__ = ["FETCH_ARGS_MEMO_OCTETS", "MACROS", "parse_fetch_args", "parse_fetch_tail"]

MACROS: dict[str, tuple[FetchItem, ...]] = {
    "ALL": (FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE, FetchAttr.ENVELOPE),
    "FAST": (FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE),
    "FULL": (
        FetchAttr.FLAGS,
        FetchAttr.INTERNALDATE,
        FetchAttr.RFC822_SIZE,
        FetchAttr.ENVELOPE,
        FetchAttr.BODY,
    ),
}
"""FETCH macros and what they stand for. Spec: RFC 9051 §6.4.5."""

_DIGITS = frozenset(b"0123456789")
_NAME = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_SECTION_TEXT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
_MSGTEXT = {
    "HEADER": SectionText.HEADER,
    "HEADER.FIELDS": SectionText.HEADER_FIELDS,
    "HEADER.FIELDS.NOT": SectionText.HEADER_FIELDS_NOT,
    "TEXT": SectionText.TEXT,
}


def parse_fetch_args(cur: Cursor) -> tuple[tuple[FetchItem, ...], int | None, bool]:
    """Read ``(ALL | FAST | FULL | fetch-att | "(" fetch-att *(SP fetch-att) ")")
    [SP "(" CHANGEDSINCE n [SP VANISHED] ")"]``.

    Returns (items without duplicates, changed_since, vanished). Raises ImapSyntaxError.
    Spec: RFC 9051 §9 (fetch), RFC 7162 §3.1.4.1, §3.2.6.
    """
    items: list[FetchItem] = []
    if cur.peek() == 0x28:
        cur.open()
        items.append(_fetch_att(cur))
        while cur.take(b" "):
            items.append(_fetch_att(cur))
        cur.close()
    else:
        mark = cur.mark()
        name = cur.run(_NAME).decode("ascii").upper()
        if name in MACROS and cur.peek() in (-1, 0x20):
            items.extend(MACROS[name])
        else:
            cur.seek(mark)
            items.append(_fetch_att(cur))
    changed_since, vanished = _modifiers(cur)
    return tuple(dict.fromkeys(items)), changed_since, vanished


FETCH_ARGS_MEMO_OCTETS = 256
"""Longest FETCH argument text whose parse is remembered (``parse_fetch_tail``); with
at most FETCH_ARGS_MEMO_ENTRIES of them, the memo holds a bounded few KiB."""
FETCH_ARGS_MEMO_ENTRIES = 128


def parse_fetch_tail(cur: Cursor) -> tuple[tuple[FetchItem, ...], int | None, bool]:
    """``parse_fetch_args`` of the rest of a command, which must end there (the cursor is
    left at its end). A short argument text on the command's last line segment (what
    clients send: the same few item lists again and again) is parsed once and
    remembered. Raises ImapSyntaxError with the command's tag. Spec: RFC 9051 §9 (fetch).
    """
    if not cur.in_last_segment() or cur.rest_length() > FETCH_ARGS_MEMO_OCTETS:
        found = parse_fetch_args(cur)
        cur.end()
        return found
    text = bytes(cur.rest_of_segment())
    try:
        return _remembered_fetch_args(text, cur.utf8)
    except ImapSyntaxError as exc:
        raise cur.error(exc.text) from None


@functools.lru_cache(maxsize=FETCH_ARGS_MEMO_ENTRIES)
def _remembered_fetch_args(
    text: bytes, utf8: bool
) -> tuple[tuple[FetchItem, ...], int | None, bool]:
    cur = Cursor([text], utf8=utf8)
    found = parse_fetch_args(cur)
    cur.end()
    return found


def _modifiers(cur: Cursor) -> tuple[int | None, bool]:
    """``[SP "(" fetch-modifier *(SP fetch-modifier) ")"]``: at least one modifier, each
    at most once. Spec: RFC 4466 §2.4 (fetch-modifiers), RFC 7162 §3.1.4.1, §3.2.6."""
    if not cur.take(b" "):
        return None, False
    cur.open()
    changed_since: int | None = None
    vanished = False
    seen: set[str] = set()
    while True:
        name = cur.atom().upper()
        if name in seen:
            raise cur.error(f"FETCH modifier {name} given twice")
        seen.add(name)
        if name == "CHANGEDSINCE":
            cur.sp()
            changed_since = cur.number64()
        elif name == "VANISHED":
            vanished = True
        else:
            raise cur.error(f"unknown FETCH modifier {name[:30]}")
        if cur.closing():
            break
        cur.sp()
    if vanished and changed_since is None:
        raise cur.error("VANISHED needs CHANGEDSINCE")
    return changed_since, vanished


def _fetch_att(cur: Cursor) -> FetchItem:
    name = cur.run(_NAME).decode("ascii").upper()
    if cur.peek() == 0x5B:  # "["
        if name in ("BODY", "BODY.PEEK"):
            section = _section(cur)
            return BodySection(section, peek=name == "BODY.PEEK", partial=_partial(cur))
        if name in ("BINARY", "BINARY.PEEK"):
            part = _binary_part(cur)
            partial = _partial(cur)
            return BodySection(
                Section(part), peek=name == "BINARY.PEEK", partial=partial, binary=True
            )
        if name == "BINARY.SIZE":
            return BinarySize(_binary_part(cur))
        raise cur.error(f"no section allowed after {name[:30]}")
    try:
        attr = FetchAttr(name)
    except ValueError as exc:
        raise cur.error(f"unknown FETCH item {name[:30]}") from exc
    if attr is FetchAttr.PREVIEW:
        _preview_modifiers(cur)
    return attr


def _preview_modifiers(cur: Cursor) -> None:
    """``[SP "(" preview-mod *(SP preview-mod) ")"]`` with ``preview-mod = "LAZY"``;
    a parenthesised list that does not start with LAZY is left alone (it is FETCH's
    own modifier list). Spec: RFC 8970 §7 (fetch-att, preview-mod)."""
    mark = cur.mark()
    if not cur.take(b" (") or cur.run(_NAME).decode("ascii").upper() != "LAZY":
        cur.seek(mark)
        return
    while cur.take(b" "):
        if cur.run(_NAME).decode("ascii").upper() != "LAZY":
            raise cur.error("unknown PREVIEW modifier")
    cur.expect(b")")


def _part_numbers(cur: Cursor) -> list[int]:
    part = [_part_number(cur)]
    while cur.peek() == 0x2E:
        mark = cur.mark()
        cur.expect(b".")
        if cur.peek() in _DIGITS:
            part.append(_part_number(cur))
        else:
            cur.seek(mark)
            break
    return part


def _part_number(cur: Cursor) -> int:
    """One ``nz-number`` of a section-part: no leading zero, so that a part has one
    spelling. Spec: RFC 9051 §9 (section-part, nz-number)."""
    if cur.peek() == 0x30:
        raise cur.error("part number with a leading zero")
    return cur.nz_number()


def _section(cur: Cursor) -> Section:
    cur.expect(b"[")
    part: list[int] = []
    text = SectionText.NONE
    fields: tuple[str, ...] = ()
    if cur.peek() in _DIGITS:
        part = _part_numbers(cur)
        if cur.take(b"."):
            text = _section_text(cur, allow_mime=True)
    elif cur.peek() != 0x5D:
        text = _section_text(cur, allow_mime=False)
    if text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
        cur.sp()
        fields = _header_list(cur)
    cur.expect(b"]")
    return Section(tuple(part), text, fields)


def _section_text(cur: Cursor, *, allow_mime: bool) -> SectionText:
    name = cur.run(_SECTION_TEXT).decode("ascii").upper()
    if name == "MIME" and allow_mime:
        return SectionText.MIME
    text = _MSGTEXT.get(name)
    if text is None:
        raise cur.error(f"bad section text {name[:30]}")
    return text


def _header_list(cur: Cursor) -> tuple[str, ...]:
    cur.open()
    fields = [_field_name(cur)]
    while cur.take(b" "):
        fields.append(_field_name(cur))
    cur.close()
    return tuple(fields)


def _field_name(cur: Cursor) -> str:
    name = cur.astring().decode("ascii", "replace").upper()
    if not name or any(not 0x21 <= ord(c) <= 0x7E or c == ":" for c in name):
        raise cur.error("bad header field name")
    return name


def _binary_part(cur: Cursor) -> tuple[int, ...]:
    cur.expect(b"[")
    part: list[int] = []
    if cur.peek() != 0x5D:
        part = _part_numbers(cur)
    cur.expect(b"]")
    return tuple(part)


def _partial(cur: Cursor) -> tuple[int, int] | None:
    if not cur.take(b"<"):
        return None
    origin = cur.number64()
    cur.expect(b".")
    count = cur.number64()
    if count == 0:
        raise cur.error("partial count must be non-zero")
    cur.expect(b">")
    return origin, count


def parse_section(text: bytes) -> Section:
    """A section spec without its brackets (``1.2.HEADER``, ``TEXT``, ``b""`` for the
    whole message), as IMAP URLs carry it. Raises ImapSyntaxError.
    Spec: RFC 9051 §6.4.5 (section-spec); RFC 5092 §3 (isection)."""
    cur = Cursor([b"[" + text + b"]"])
    section = _section(cur)
    cur.end()
    return section


def parse_fetch_att(cur: Cursor) -> FetchItem:
    """One ``fetch-att`` (no macro), as NOTIFY's MessageNew list carries them.
    Raises ImapSyntaxError. Spec: RFC 9051 §9 (fetch-att); RFC 5465 §8."""
    return _fetch_att(cur)
