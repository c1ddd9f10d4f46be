"""Parsers of the mailbox commands: SELECT/EXAMINE (with parameters), CREATE (with
special use), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (LIST-EXTENDED, LIST-STATUS),
LSUB and STATUS; and mailbox name decoding.

Spec: RFC 9051 §5.1, §6.3; RFC 3501 §5.1.3, §6.3.9 (LSUB); RFC 4466 §2.1; RFC 5258 §3;
RFC 5819 §2; RFC 6154 §3, §5; RFC 6855 §3.
"""

from __future__ import annotations

from collections.abc import Callable

from postel.imap import mutf7
from postel.imap.command_types import (
    Command,
    Create,
    Delete,
    List,
    ListReturn,
    ListSelect,
    Lsub,
    Rename,
    Select,
    SelectParam,
    Status,
    StatusItem,
    Subscribe,
    Unsubscribe,
)
from postel.imap.grammar import Cursor
from postel.imap.mutf7 import MUtf7Error

__all__ = [
    "decode_name",
    "parse_create",
    "parse_list",
    "parse_lsub",
    "parse_one_mailbox",
    "parse_rename",
    "parse_select",
    "parse_status",
    "read_mailbox",
]


def read_mailbox(cur: Cursor) -> str:
    """``mailbox``: an astring, decoded (modified UTF-7 unless ``cur.utf8``), with
    ``INBOX`` normalised. Spec: RFC 9051 §5.1, §9 (mailbox); RFC 3501 §5.1.3."""
    return decode_name(cur, cur.astring(), inbox=True)


def decode_name(cur: Cursor, raw: bytes, *, inbox: bool) -> str:
    if cur.utf8:
        name = cur.text_utf8(raw)
    else:
        try:
            name = mutf7.decode(raw)
        except MUtf7Error as exc:
            raise cur.error(f"bad mailbox name: {exc}") from exc
    if inbox and name.upper() == "INBOX":
        return "INBOX"
    return name


def _tagged_ext_value(cur: Cursor) -> str:
    """``tagged-ext-val`` as its raw text (sequence set, number or nested list).
    Spec: RFC 4466 §2.1."""
    start = cur.mark()
    if cur.peek() == 0x28:
        depth = cur.depth
        cur.open()
        while cur.depth > depth:
            if cur.closing():
                continue
            if cur.take(b" "):
                continue
            if cur.peek() == 0x28:
                cur.open()
            elif cur.peek() == 0x22:
                cur.quoted()
            else:
                raw = cur.astring_atom()
                if not raw:
                    raw = cur.sequence_set().__str__().encode()
    else:
        cur.sequence_set()
    return cur.since(start)


def parse_select(examine: bool) -> Callable[[Cursor, str, bool], Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> Command:
        cur.sp()
        mailbox = read_mailbox(cur)
        params: list[SelectParam] = []
        if cur.take(b" "):
            cur.open()
            while not cur.closing():
                if params:
                    cur.sp()
                name = cur.atom().upper()
                value = None
                if cur.peek() == 0x20 and cur.take(b" "):
                    value = _tagged_ext_value(cur)
                params.append(SelectParam(name, value))
        return Select(tag, mailbox, tuple(params), examine=examine)

    return parse


def parse_create(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    mailbox = read_mailbox(cur)
    uses: tuple[str, ...] = ()
    if cur.take(b" "):
        cur.open()
        while not cur.closing():
            if cur.atom().upper() != "USE":
                raise cur.error("unknown CREATE parameter")
            cur.sp()
            uses = cur.flag_list()
            if any(not use.startswith("\\") for use in uses):
                raise cur.error("special-use attributes start with a backslash")
    return Create(tag, mailbox, uses)


def parse_one_mailbox(
    cls: type[Delete | Subscribe | Unsubscribe],
) -> Callable[[Cursor, str, bool], Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> Command:
        cur.sp()
        return cls(tag, read_mailbox(cur))

    return parse


def parse_rename(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    old = read_mailbox(cur)
    cur.sp()
    return Rename(tag, old, read_mailbox(cur))


def _status_items(cur: Cursor) -> tuple[StatusItem, ...]:
    cur.open()
    items: list[StatusItem] = []
    while not cur.closing():
        if items:
            cur.sp()
        name = cur.atom().upper()
        try:
            items.append(StatusItem(name))
        except ValueError as exc:
            raise cur.error(f"unknown status item {name[:30]}") from exc
    if not items:
        raise cur.error("empty status item list")
    return tuple(items)


def parse_status(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    mailbox = read_mailbox(cur)
    cur.sp()
    return Status(tag, mailbox, _status_items(cur))


def _pattern(cur: Cursor) -> str:
    return decode_name(cur, cur.list_mailbox(), inbox=True)


def parse_list(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    selection: list[ListSelect] = []
    extended = False
    if cur.peek() == 0x28:
        extended = True
        cur.open()
        while not cur.closing():
            if selection:
                cur.sp()
            name = cur.atom().upper()
            try:
                selection.append(ListSelect(name))
            except ValueError as exc:
                raise cur.error(f"unknown LIST selection option {name[:30]}") from exc
        cur.sp()
        if (
            selection
            and set(selection) <= {ListSelect.RECURSIVEMATCH, ListSelect.REMOTE}
            and (ListSelect.RECURSIVEMATCH in selection)
        ):
            raise cur.error("RECURSIVEMATCH needs another selection option")
    reference = decode_name(cur, cur.astring(), inbox=False)
    cur.sp()
    patterns: list[str] = []
    if cur.peek() == 0x28:
        extended = True
        cur.open()
        while not cur.closing():
            if patterns:
                cur.sp()
            patterns.append(_pattern(cur))
        if not patterns:
            raise cur.error("empty pattern list")
    else:
        patterns.append(_pattern(cur))
    returns, status_items, has_return = _list_returns(cur)
    extended = extended or has_return
    return List(tag, reference, tuple(patterns), tuple(selection), returns, status_items, extended)


def _list_returns(
    cur: Cursor,
) -> tuple[tuple[ListReturn, ...], tuple[StatusItem, ...] | None, bool]:
    returns: list[ListReturn] = []
    status_items: tuple[StatusItem, ...] | None = None
    if not cur.take(b" "):
        return (), None, False
    cur.expect(b"RETURN")
    cur.sp()
    cur.open()
    first = True
    while not cur.closing():
        if not first:
            cur.sp()
        first = False
        name = cur.atom().upper()
        if name == "STATUS":
            cur.sp()
            status_items = _status_items(cur)
            continue
        try:
            returns.append(ListReturn(name))
        except ValueError as exc:
            raise cur.error(f"unknown LIST return option {name[:30]}") from exc
    return tuple(returns), status_items, True


def parse_lsub(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    reference = decode_name(cur, cur.astring(), inbox=False)
    cur.sp()
    return Lsub(tag, reference, _pattern(cur))
