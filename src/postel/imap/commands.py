"""IMAP commands as typed values, and the parser that builds them.

``parse_command(parts, literals, utf8=...)`` turns one assembled command (see
``postel.imap.grammar``) into one of the frozen dataclasses below; UID commands are the
same classes with ``uid=True``. APPEND is not parsed here: its message literals are
streamed by ``postel.imap.connection`` (``parse_append_head`` reads what precedes them).

Mailbox names are decoded from modified UTF-7 (RFC 3501 §5.1.3) unless ``utf8`` (the
session enabled IMAP4rev2 or UTF8=ACCEPT: names are UTF-8 as sent, RFC 9051 §5.1,
RFC 6855 §3); ``INBOX`` in any case is returned as ``"INBOX"`` (RFC 9051 §5.1).

Spec: RFC 9051 §6, §9; RFC 3501 §6 (LSUB, CHECK-less rev1 clients); RFC 4959; RFC 5161;
RFC 5258; RFC 5819; RFC 6154 §3; RFC 2971; RFC 4466; RFC 7162 §3.1; RFC 6851; RFC 5256;
RFC 5267.
"""

from __future__ import annotations

import binascii
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from postel.imap import limits
from postel.imap.command_types import (
    Authenticate,
    CancelUpdate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    List,
    ListReturn,
    ListSelect,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    PartialRange,
    Rename,
    Search,
    SearchReturn,
    Select,
    SelectParam,
    Sort,
    StartTls,
    Status,
    StatusItem,
    Store,
    StoreMode,
    Subscribe,
    Thread,
    Unselect,
    Unsubscribe,
)
from postel.imap.grammar import Cursor, ImapSyntaxError, UnknownCommand
from postel.imap.parse_ext import (
    Compress,
    FilterKind,
    GenUrlAuth,
    Notify,
    NotifyEvent,
    NotifyGroup,
    ResetKey,
    UrlFetch,
    parse_compress,
    parse_genurlauth,
    parse_notify,
    parse_resetkey,
    parse_urlfetch,
)
from postel.imap.parse_fetch import parse_fetch_tail
from postel.imap.parse_mailbox import (
    parse_create,
    parse_list,
    parse_lsub,
    parse_one_mailbox,
    parse_rename,
    parse_select,
    parse_status,
    read_mailbox,
)
from postel.imap.parse_metadata import (
    GetMetadata,
    SetMetadata,
    parse_getmetadata,
    parse_setmetadata,
)
from postel.imap.parse_quota import (
    GetQuota,
    GetQuotaRoot,
    SetQuota,
    parse_getquota,
    parse_getquotaroot,
    parse_setquota,
)
from postel.imap.parse_search import parse_search_args
from postel.imap.parse_sort import parse_cancelupdate, parse_sort, parse_thread

__all__ = [
    "COMMAND_STATES",
    "AppendHead",
    "Authenticate",
    "CancelUpdate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Expunge",
    "Fetch",
    "FilterKind",
    "GenUrlAuth",
    "GetMetadata",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "ListReturn",
    "ListSelect",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "Notify",
    "NotifyEvent",
    "NotifyGroup",
    "PartialRange",
    "Rename",
    "ResetKey",
    "Search",
    "SearchReturn",
    "Select",
    "SelectParam",
    "SetMetadata",
    "SetQuota",
    "Sort",
    "StartTls",
    "State",
    "Status",
    "StatusItem",
    "Store",
    "StoreMode",
    "Subscribe",
    "Thread",
    "Unselect",
    "Unsubscribe",
    "UrlFetch",
    "command_head",
    "parse_append_head",
    "parse_append_next",
    "parse_body",
    "parse_command",
    "read_head",
    "read_mailbox",
]


class State(StrEnum):
    """Connection states. Spec: RFC 9051 §3."""

    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    AUTHENTICATED = "AUTHENTICATED"
    SELECTED = "SELECTED"
    LOGOUT = "LOGOUT"


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SEL = frozenset({State.SELECTED})
_PRE = frozenset({State.NOT_AUTHENTICATED})

COMMAND_STATES: dict[str, frozenset[State]] = {
    "CAPABILITY": _ANY,
    "NOOP": _ANY,
    "LOGOUT": _ANY,
    "ID": _ANY,
    "STARTTLS": _PRE,
    "AUTHENTICATE": _PRE,
    "LOGIN": _PRE,
    "ENABLE": _AUTH,
    "SELECT": _AUTH,
    "EXAMINE": _AUTH,
    "CREATE": _AUTH,
    "DELETE": _AUTH,
    "RENAME": _AUTH,
    "SUBSCRIBE": _AUTH,
    "UNSUBSCRIBE": _AUTH,
    "LIST": _AUTH,
    "LSUB": _AUTH,
    "NAMESPACE": _AUTH,
    "STATUS": _AUTH,
    "APPEND": _AUTH,
    "IDLE": _AUTH,
    "CLOSE": _SEL,
    "UNSELECT": _SEL,
    "CHECK": _SEL,
    "EXPUNGE": _SEL,
    "SEARCH": _SEL,
    "SORT": _SEL,
    "THREAD": _SEL,
    "CANCELUPDATE": _SEL,
    "FETCH": _SEL,
    "STORE": _SEL,
    "COPY": _SEL,
    "MOVE": _SEL,
    "UID": _SEL,
    "GENURLAUTH": _AUTH,
    "RESETKEY": _AUTH,
    "URLFETCH": _AUTH,
    "NOTIFY": _AUTH,
    "COMPRESS": _AUTH,
    "GETQUOTA": _AUTH,
    "GETQUOTAROOT": _AUTH,
    "SETQUOTA": _AUTH,
    "GETMETADATA": _AUTH,
    "SETMETADATA": _AUTH,
}
"""Which states accept each command; any other use is answered BAD.
Spec: RFC 9051 §6.1-§6.4, RFC 5161 §3.1 (ENABLE after authentication), RFC 2971 §3.1,
RFC 5256 §3 (SORT, THREAD), RFC 5267 §4.2 (CANCELUPDATE), RFC 4467 §6 (URLAUTH),
RFC 5465 §3 (NOTIFY), RFC 4978 §3 (COMPRESS after authentication), RFC 9208 §4
(QUOTA), RFC 5464 §4 (METADATA)."""


def command_head(first_part: bytes) -> tuple[str, str]:
    """(tag, upper-cased command name) from a command's first line segment.

    Raises ImapSyntaxError (with ``tag`` None when the tag itself is bad) or
    UnknownCommand for a name not in COMMAND_STATES. Spec: RFC 9051 §9 (command, tag).
    """
    return read_head(Cursor([first_part]))


def read_head(cur: Cursor) -> tuple[str, str]:
    """``command_head`` read from ``cur`` (left after the command name, ready for
    ``parse_body``). Spec: RFC 9051 §9 (command, tag)."""
    tag, name = _tag_and_name(cur)
    if name not in COMMAND_STATES:
        raise UnknownCommand(f"unknown command {name[:30]}", tag)
    return tag, name


def _tag_and_name(cur: Cursor) -> tuple[str, str]:
    tag = cur.tag_text()
    if cur.peek() not in (0x20, -1):  # the tag runs on with octets a tag cannot hold
        raise ImapSyntaxError("missing or invalid tag")
    cur.sp()
    return tag, cur.atom().upper()


# --- APPEND head (the connection streams the message literals) -------------------------
@dataclass(frozen=True, slots=True)
class AppendHead:
    """What precedes one APPEND message literal: the mailbox (first message only),
    flags and internal date. Spec: RFC 9051 §6.3.12, RFC 3502 §6.3.11."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    utf8: bool = False
    """The message literal is wrapped in ``UTF8 (...)`` (RFC 6855 §4)."""
    catenate: bytes | None = None
    """With ``CATENATE (``: the rest of the line segment after it (RFC 4469 §5)."""


def parse_append_head(
    parts: Sequence[bytes], literals: Sequence[bytes], *, utf8: bool
) -> AppendHead | None:
    """Read ``tag APPEND mailbox [SP flag-list] [SP date-time] SP`` up to the literal
    announcement ending ``parts[-1]``. Returns None when that literal is the mailbox name
    itself (buffer it as an ordinary literal). Raises ImapSyntaxError.
    Spec: RFC 9051 §6.3.12, §9 (append)."""
    cur = Cursor([*parts, b""], [*literals, b""], utf8=utf8)
    cur.tag_text()
    cur.sp()
    if cur.atom().upper() != "APPEND":
        raise cur.error("not an APPEND command")
    cur.sp()
    if cur.at_literal() and len(literals) == 0:
        return None
    mailbox = read_mailbox(cur)
    cur.sp()
    flags, date, wrapped, catenate = _append_options(cur)
    assert cur.tag is not None
    return AppendHead(cur.tag, mailbox, flags, date, wrapped, catenate)


AppendOptions = tuple[tuple[str, ...], dt.datetime | None, bool, bytes | None]
"""Flags, internal date, ``UTF8 (`` wrapping, and the text after ``CATENATE (``."""


def parse_append_next(part: bytes, tag: str) -> AppendOptions:
    """Flags, date and ``UTF8 (`` wrapping (or the ``CATENATE (`` rest) of a further
    MULTIAPPEND message: ``part`` is the line segment after the previous message
    (``SP [flag-list SP] [date-time SP]`` and the announcement or ``CATENATE (``).
    Raises ImapSyntaxError. Spec: RFC 3502 §6.3.11 (append-message), RFC 6855 §4,
    RFC 4469 §5."""
    cur = Cursor([part, b""], [b""])
    cur.tag = tag
    cur.sp()
    return _append_options(cur)


def _append_options(cur: Cursor) -> AppendOptions:
    flags: tuple[str, ...] = ()
    date = None
    if cur.peek() == 0x28:
        flags = cur.flag_list()
        cur.sp()
    if cur.peek() == 0x22:
        date = cur.date_time()
        cur.sp()
    if cur.take(b"CATENATE ("):
        return flags, date, False, cur.rest_of_segment()
    wrapped = cur.take(b"UTF8 (")
    if not cur.at_literal():
        raise cur.error("expected the message literal")
    return flags, date, wrapped, None


# --- the parser ---------------------------------------------------------------------------
def parse_command(
    parts: Sequence[bytes], literals: Sequence[bytes] = (), *, utf8: bool = False
) -> Command:
    """Parse one assembled command (not APPEND).

    ``parts`` are the line segments (CRLF removed), ``literals`` the literal octets
    between them. Raises ImapSyntaxError (tagged when the tag was read),
    UnknownCommand, or BadCharset (SEARCH CHARSET). Spec: RFC 9051 §6, §9.
    """
    cur = Cursor(parts, literals, utf8=utf8)
    tag, name = _tag_and_name(cur)
    return parse_body(cur, tag, name)


def parse_body(cur: Cursor, tag: str, name: str) -> Command:
    """The rest of a command (not APPEND) after its tag and (upper-cased) name, read
    with ``read_head``; same errors as ``parse_command``. Spec: RFC 9051 §6, §9."""
    uid = name == "UID"
    if uid:
        cur.sp()
        name = cur.atom().upper()
        if name not in _UID_COMMANDS:
            raise UnknownCommand(f"unknown UID command {name[:30]}", tag)
    parser = _PARSERS.get(name)
    if parser is None:
        raise UnknownCommand(f"unknown command {name[:30]}", tag)
    command = parser(cur, tag, uid)
    cur.end()
    return command


def _simple(
    cls: type[Capability | Check | Noop | Logout | StartTls | Namespace | Idle | Close | Unselect],
) -> Callable[[Cursor, str, bool], Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> Command:
        return cls(tag)

    return parse


def _authenticate(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    mechanism = cur.atom().upper()
    initial: bytes | None = None
    if cur.take(b" "):
        raw = cur.astring_atom()
        if raw == b"=":
            initial = b""
        else:
            try:
                initial = binascii.a2b_base64(raw, strict_mode=True)
            except (binascii.Error, ValueError) as exc:
                raise cur.error("initial response is not BASE64") from exc
            if not raw:
                raise cur.error("empty initial response (send '=')")
    return Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    user = cur.text_utf8(cur.astring())
    cur.sp()
    password = cur.text_utf8(cur.astring())
    return Login(tag, user, password)


def _enable(cur: Cursor, tag: str, uid: bool) -> Command:
    caps: list[str] = []
    cur.sp()
    caps.append(cur.atom().upper())
    while cur.take(b" "):
        caps.append(cur.atom().upper())
    return Enable(tag, tuple(caps))


def _expunge(cur: Cursor, tag: str, uid: bool) -> Command:
    if not uid:
        return Expunge(tag, None)
    cur.sp()
    return Expunge(tag, cur.sequence_set())


def _search(cur: Cursor, tag: str, uid: bool) -> Command:
    returns, charset, key, partial = parse_search_args(cur)
    return Search(tag, key, charset=charset, returns=returns, uid=uid, partial=partial)


def _fetch(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    items, changed_since, vanished = parse_fetch_tail(cur)
    return Fetch(tag, sequence, items, uid=uid, changed_since=changed_since, vanished=vanished)


def _store(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    unchanged_since = None
    if cur.peek() == 0x28:
        cur.open()
        cur.expect(b"UNCHANGEDSINCE")
        cur.sp()
        unchanged_since = cur.number64()
        cur.close()
        cur.sp()
    mode = (
        StoreMode.ADD
        if cur.take(b"+")
        else StoreMode.REMOVE
        if cur.take(b"-")
        else StoreMode.REPLACE
    )
    cur.expect(b"FLAGS")
    silent = cur.take(b".SILENT")
    cur.sp()
    if cur.peek() == 0x28:
        flags = cur.flag_list()
    else:
        single = [cur.flag()]
        while cur.take(b" "):
            single.append(cur.flag())
        flags = tuple(single)
    return Store(
        tag, sequence, mode, flags, silent=silent, uid=uid, unchanged_since=unchanged_since
    )


def _copy_move(cls: type[Copy | Move]) -> Callable[[Cursor, str, bool], Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> Command:
        cur.sp()
        sequence = cur.sequence_set()
        cur.sp()
        return cls(tag, sequence, read_mailbox(cur), uid=uid)

    return parse


def _id(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    if cur.take(b"NIL"):
        return Id(tag, None)
    cur.open()
    pairs: list[tuple[str, str | None]] = []
    while not cur.closing():
        if pairs:
            cur.sp()
        field = cur.text_utf8(cur.string())
        cur.sp()
        raw = cur.nstring()
        if len(pairs) >= limits.ID_PAIRS_MAX:
            raise cur.error("too many ID pairs")
        if len(field.encode()) > limits.ID_FIELD_MAX:
            raise cur.error("ID field name too long")
        if raw is not None and len(raw) > limits.ID_VALUE_MAX:
            raise cur.error("ID value too long")
        pairs.append((field, None if raw is None else cur.text_utf8(raw)))
    return Id(tag, tuple(pairs))


_PARSERS: dict[str, Callable[[Cursor, str, bool], Command]] = {
    "CAPABILITY": _simple(Capability),
    "NOOP": _simple(Noop),
    "LOGOUT": _simple(Logout),
    "STARTTLS": _simple(StartTls),
    "NAMESPACE": _simple(Namespace),
    "IDLE": _simple(Idle),
    "CLOSE": _simple(Close),
    "UNSELECT": _simple(Unselect),
    "CHECK": _simple(Check),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": parse_select(False),
    "EXAMINE": parse_select(True),
    "CREATE": parse_create,
    "DELETE": parse_one_mailbox(Delete),
    "RENAME": parse_rename,
    "SUBSCRIBE": parse_one_mailbox(Subscribe),
    "UNSUBSCRIBE": parse_one_mailbox(Unsubscribe),
    "LIST": parse_list,
    "LSUB": parse_lsub,
    "STATUS": parse_status,
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "SORT": parse_sort,
    "THREAD": parse_thread,
    "CANCELUPDATE": parse_cancelupdate,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move(Copy),
    "MOVE": _copy_move(Move),
    "ID": _id,
    "GENURLAUTH": parse_genurlauth,
    "RESETKEY": parse_resetkey,
    "URLFETCH": parse_urlfetch,
    "NOTIFY": parse_notify,
    "COMPRESS": parse_compress,
    "GETQUOTA": parse_getquota,
    "GETQUOTAROOT": parse_getquotaroot,
    "SETQUOTA": parse_setquota,
    "GETMETADATA": parse_getmetadata,
    "SETMETADATA": parse_setmetadata,
}
_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "SORT", "THREAD", "STORE", "COPY", "MOVE", "EXPUNGE"})
