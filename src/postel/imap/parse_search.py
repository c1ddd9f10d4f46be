"""SEARCH arguments: RETURN options, CHARSET and the search keys, parsed into the key
tree of ``postel.imap.search_keys``.

Strings are astrings or literals, decoded as UTF-8 (US-ASCII is a subset); any other
CHARSET raises BadCharset so the driver answers ``NO [BADCHARSET (UTF-8 US-ASCII)]``.
The total number of keys is bounded (``limits.SEARCH_KEYS_MAX``), nesting by the
cursor's parenthesis depth.

Spec: RFC 9051 §6.4.4, §9 (search, search-key); RFC 3501 §6.4.4 (NEW, OLD, RECENT);
RFC 4731 §3.1 and RFC 5182 §2 (RETURN, SAVE); RFC 5267 §4.1, §4.4 and RFC 9394 §3.1
(UPDATE, CONTEXT, PARTIAL).
"""

from __future__ import annotations

from collections.abc import Callable

from postel.imap import limits
from postel.imap.command_types import PartialRange, SearchReturn
from postel.imap.grammar import BadCharset, Cursor
from postel.imap.search_keys import (
    AllKey,
    AndKey,
    BodyKey,
    DateField,
    DateKey,
    DateOp,
    FlagKey,
    HeaderKey,
    ModseqKey,
    NotKey,
    OrKey,
    RecentKey,
    SearchKey,
    SequenceKey,
    SizeKey,
    SizeOp,
    TextKey,
)

__all__ = [
    "CHARSETS",
    "ReturnOptions",
    "parse_charset",
    "parse_return_options",
    "parse_search_args",
    "parse_search_keys",
]

ReturnOptions = tuple[tuple[SearchReturn, ...], PartialRange | None]
"""RETURN options in the client's order (duplicates dropped) and the PARTIAL range."""

CHARSETS = ("UTF-8", "US-ASCII")
"""Charsets SEARCH accepts; the BADCHARSET response lists them. Spec: RFC 9051 §6.4.4."""

_FLAG_KEYS: dict[str, SearchKey] = {
    "ALL": AllKey(),
    "SAVEDATESUPPORTED": AllKey(),  # every mailbox has save dates (RFC 8514 §2.2)
    "ANSWERED": FlagKey("\\Answered", True),
    "DELETED": FlagKey("\\Deleted", True),
    "DRAFT": FlagKey("\\Draft", True),
    "FLAGGED": FlagKey("\\Flagged", True),
    "SEEN": FlagKey("\\Seen", True),
    "UNANSWERED": FlagKey("\\Answered", False),
    "UNDELETED": FlagKey("\\Deleted", False),
    "UNDRAFT": FlagKey("\\Draft", False),
    "UNFLAGGED": FlagKey("\\Flagged", False),
    "UNSEEN": FlagKey("\\Seen", False),
    "RECENT": RecentKey(True),
    "OLD": RecentKey(False),
    "NEW": AndKey((RecentKey(True), FlagKey("\\Seen", False))),
}
_SEQ_START = frozenset(b"0123456789*$")
_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_KEYS = {
    "BEFORE": (DateField.INTERNAL, DateOp.BEFORE),
    "ON": (DateField.INTERNAL, DateOp.ON),
    "SINCE": (DateField.INTERNAL, DateOp.SINCE),
    "SENTBEFORE": (DateField.SENT, DateOp.BEFORE),
    "SENTON": (DateField.SENT, DateOp.ON),
    "SENTSINCE": (DateField.SENT, DateOp.SINCE),
    "SAVEDBEFORE": (DateField.SAVED, DateOp.BEFORE),
    "SAVEDON": (DateField.SAVED, DateOp.ON),
    "SAVEDSINCE": (DateField.SAVED, DateOp.SINCE),
}


def parse_search_args(
    cur: Cursor,
) -> tuple[tuple[SearchReturn, ...] | None, str | None, AndKey, PartialRange | None]:
    """Read `` [RETURN (opts)] [CHARSET c] key...`` after the command name.

    Returns (returns, charset, keys as an AndKey, PARTIAL range). Raises
    ImapSyntaxError or BadCharset. Spec: RFC 9051 §9 (search, search-return-opts),
    RFC 5267 §4.1.
    """
    returns: tuple[SearchReturn, ...] | None = None
    partial = None
    if cur.take(b" RETURN "):
        returns, partial = parse_return_options(cur)
    charset = None
    if cur.take(b" CHARSET "):
        charset = parse_charset(cur)
    return returns, charset, parse_search_keys(cur), partial


def parse_charset(cur: Cursor) -> str:
    """A charset astring, upper-cased; BadCharset unless UTF-8 or US-ASCII.
    Spec: RFC 9051 §6.4.4, RFC 5256 §3 (SORT and THREAD name one always)."""
    charset = cur.astring().decode("ascii", "replace").upper()
    if charset not in CHARSETS:
        raise BadCharset(charset, cur.tag)
    return charset


def parse_search_keys(cur: Cursor) -> AndKey:
    """``1*(SP search-key)``: at least one key, at most ``limits.SEARCH_KEYS_MAX``
    counting nested ones. Spec: RFC 9051 §9 (search-key)."""
    budget = [limits.SEARCH_KEYS_MAX]
    keys: list[SearchKey] = []
    while cur.take(b" "):
        keys.append(_key(cur, budget))
    if not keys:
        raise cur.error("SEARCH needs at least one key")
    return AndKey(tuple(keys))


def parse_return_options(cur: Cursor) -> ReturnOptions:
    """``(opt *(SP opt))`` after RETURN: MIN MAX ALL COUNT SAVE UPDATE CONTEXT and
    ``PARTIAL range``. PARTIAL with ALL, or given twice, is refused (the result would
    be ambiguous). Raises ImapSyntaxError.
    Spec: RFC 4731 §3.1, RFC 5267 §4.1, §4.4, RFC 9394 §3.1."""
    cur.open()
    options: list[SearchReturn] = []
    partial: PartialRange | None = None
    first = True
    while not cur.closing():
        if not first:
            cur.sp()
        first = False
        name = cur.atom().upper()
        try:
            option = SearchReturn(name)
        except ValueError as exc:
            raise cur.error(f"unknown SEARCH return option {name[:30]}") from exc
        if option is SearchReturn.PARTIAL:
            if partial is not None:
                raise cur.error("PARTIAL given twice")
            cur.sp()
            partial = _partial_range(cur)
        if option not in options:
            options.append(option)
    if partial is not None and SearchReturn.ALL in options:
        raise cur.error("PARTIAL conflicts with ALL")
    return tuple(options), partial


def _partial_range(cur: Cursor) -> PartialRange:
    """``nz-number ":" nz-number`` or ``"-" nz-number ":-" nz-number``.
    Spec: RFC 5267 §4.4, RFC 9394 §3.1 (partial-range-first, partial-range-last)."""
    negative = cur.take(b"-")
    a = cur.nz_number()
    cur.expect(b":")
    if negative:
        cur.expect(b"-")
    elif cur.peek() == 0x2D:
        raise cur.error("PARTIAL range mixes signs")
    b = cur.nz_number()
    low, high = min(a, b), max(a, b)
    if negative:
        return PartialRange(-low, -high)
    return PartialRange(low, high)


def _key(cur: Cursor, budget: list[int]) -> SearchKey:
    budget[0] -= 1
    if budget[0] < 0:
        raise cur.error("too many search keys")
    c = cur.peek()
    if c == 0x28:
        cur.open()
        keys = [_key(cur, budget)]
        while cur.take(b" "):
            keys.append(_key(cur, budget))
        cur.close()
        return AndKey(tuple(keys))
    if c in _SEQ_START:
        return SequenceKey(cur.sequence_set(), uid=False)
    name = cur.atom().upper()
    simple = _FLAG_KEYS.get(name)
    if simple is not None:
        return simple
    handler = _HANDLERS.get(name)
    if handler is None:
        raise cur.error(f"unknown search key {name[:30]}")
    cur.sp()
    return handler(cur, name, budget)


def _string(cur: Cursor) -> str:
    return cur.text_utf8(cur.astring())


def _header(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return HeaderKey(_HEADER_KEYS[name], _string(cur))


def _header_field(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    field = cur.astring().decode("ascii", "replace")
    if not field or any(not 0x21 <= ord(c) <= 0x7E or c == ":" for c in field):
        raise cur.error("bad header field name")
    cur.sp()
    return HeaderKey(field, _string(cur))


def _body(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return BodyKey(_string(cur))


def _text(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return TextKey(_string(cur))


def _keyword(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return FlagKey(cur.atom(), name == "KEYWORD")


def _date(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    field, op = _DATE_KEYS[name]
    return DateKey(field, op, cur.date())


def _size(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return SizeKey(SizeOp(name), cur.number64())


def _nested(cur: Cursor, budget: list[int]) -> SearchKey:
    cur.nest()
    key = _key(cur, budget)
    cur.unnest()
    return key


def _not(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return NotKey(_nested(cur, budget))


def _or(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    left = _nested(cur, budget)
    cur.sp()
    return OrKey(left, _nested(cur, budget))


_ENTRY_TYPES = ("PRIV", "SHARED", "ALL")
"""``entry-type-req``. Spec: RFC 7162 §7."""


def _modseq(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    """``MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer``; the entry name
    is a quoted ``/flags/<flag>``. Spec: RFC 7162 §3.1.5, §7 (search-modsequence)."""
    entry = entry_type = None
    if cur.peek() == 0x22:
        entry = cur.text_utf8(cur.quoted())
        if not entry.lower().startswith("/flags/") or len(entry) <= len("/flags/"):
            raise cur.error("MODSEQ entry name must be /flags/<flag>")
        cur.sp()
        entry_type = cur.atom().upper()
        if entry_type not in _ENTRY_TYPES:
            raise cur.error("MODSEQ entry type must be priv, shared or all")
        cur.sp()
    return ModseqKey(cur.number64(), entry, entry_type)


def _uid(cur: Cursor, name: str, budget: list[int]) -> SearchKey:
    return SequenceKey(cur.sequence_set(), uid=True)


_Handler = Callable[[Cursor, str, list[int]], SearchKey]
_HANDLERS: dict[str, _Handler] = {
    **dict.fromkeys(_HEADER_KEYS, _header),
    **dict.fromkeys(_DATE_KEYS, _date),
    "HEADER": _header_field,
    "BODY": _body,
    "TEXT": _text,
    "KEYWORD": _keyword,
    "UNKEYWORD": _keyword,
    "LARGER": _size,
    "SMALLER": _size,
    "NOT": _not,
    "OR": _or,
    "UID": _uid,
    "MODSEQ": _modseq,
}
