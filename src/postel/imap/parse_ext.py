"""Commands of the IMAP extensions URLAUTH (GENURLAUTH, RESETKEY, URLFETCH), NOTIFY and
COMPRESS: their frozen command types and parsers (registered in
``postel.imap.commands``).

Spec: RFC 4467 §6 (GENURLAUTH, RESETKEY, URLFETCH), §9 (ABNF); RFC 5465 §3, §8;
RFC 4978 §3, §4.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from postel.imap.command_types import Command
from postel.imap.fetch_items import FetchItem
from postel.imap.grammar import Cursor
from postel.imap.parse_fetch import parse_fetch_att
from postel.imap.parse_mailbox import read_mailbox

__all__ = [
    "NOTIFY_MAILBOXES_MAX",
    "URLS_MAX",
    "Compress",
    "FilterKind",
    "GenUrlAuth",
    "Notify",
    "NotifyEvent",
    "NotifyGroup",
    "ResetKey",
    "UrlFetch",
    "parse_compress",
    "parse_genurlauth",
    "parse_notify",
    "parse_resetkey",
    "parse_urlfetch",
]

URLS_MAX = 100
"""URLs in one GENURLAUTH or URLFETCH command (local policy; RFC 4467 §9 sets no
bound; RELIABILITY.md D7)."""
NOTIFY_MAILBOXES_MAX = 1000
"""Mailbox names one NOTIFY SET may list in ``mailboxes``/``subtree`` filters
together (local policy; RFC 5465 §5 lets the server bound what it watches)."""
_MECHANISM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")
_EVENT_NAME = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class GenUrlAuth(Command):
    """GENURLAUTH rump mechanism ...: (url-rump, mechanism upper-cased) pairs.
    Spec: RFC 4467 §6.1."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    """RESETKEY [mailbox [mechanism ...]]: ``mailbox`` None resets every key.
    Spec: RFC 4467 §6.2."""

    mailbox: str | None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    """URLFETCH url ... Spec: RFC 4467 §6.3."""

    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """COMPRESS algorithm (upper-cased). Spec: RFC 4978 §3."""

    algorithm: str


class NotifyEvent(StrEnum):
    """Event names of NOTIFY. Spec: RFC 5465 §5."""

    MESSAGE_NEW = "MessageNew"
    MESSAGE_EXPUNGE = "MessageExpunge"
    FLAG_CHANGE = "FlagChange"
    ANNOTATION_CHANGE = "AnnotationChange"
    MAILBOX_NAME = "MailboxName"
    SUBSCRIPTION_CHANGE = "SubscriptionChange"
    MAILBOX_METADATA_CHANGE = "MailboxMetadataChange"
    SERVER_METADATA_CHANGE = "ServerMetadataChange"


class FilterKind(StrEnum):
    """Mailbox filters of NOTIFY. Spec: RFC 5465 §6."""

    SELECTED = "SELECTED"
    SELECTED_DELAYED = "SELECTED-DELAYED"
    PERSONAL = "PERSONAL"
    INBOXES = "INBOXES"
    SUBSCRIBED = "SUBSCRIBED"
    SUBTREE = "SUBTREE"
    MAILBOXES = "MAILBOXES"


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One ``(filter events)`` group: ``mailboxes`` with SUBTREE and MAILBOXES;
    ``events`` empty for NONE; ``fetch`` the MessageNew fetch-atts.
    Spec: RFC 5465 §3, §8 (event-group)."""

    kind: FilterKind
    mailboxes: tuple[str, ...]
    events: tuple[NotifyEvent, ...]
    fetch: tuple[FetchItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """NOTIFY NONE (``groups`` None) or NOTIFY SET [STATUS] groups. ``unknown`` holds
    event names this server does not know (answered NO [BADEVENT]).
    Spec: RFC 5465 §3."""

    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
    unknown: tuple[str, ...] = ()


def parse_genurlauth(cur: Cursor, tag: str, uid: bool) -> Command:
    """``GENURLAUTH 1*(SP url-rump SP mechanism)``. Spec: RFC 4467 §9."""
    pairs: list[tuple[str, str]] = []
    while cur.take(b" "):
        rump = cur.text_utf8(cur.astring())
        cur.sp()
        pairs.append((rump, _mechanism(cur)))
        if len(pairs) > URLS_MAX:
            raise cur.error("too many URLs")
    if not pairs:
        raise cur.error("GENURLAUTH needs a URL and a mechanism")
    return GenUrlAuth(tag, tuple(pairs))


def parse_resetkey(cur: Cursor, tag: str, uid: bool) -> Command:
    """``RESETKEY [SP mailbox *(SP mechanism)]``. Spec: RFC 4467 §9."""
    if not cur.take(b" "):
        return ResetKey(tag, None)
    mailbox = read_mailbox(cur)
    mechanisms: list[str] = []
    while cur.take(b" "):
        mechanisms.append(_mechanism(cur))
        if len(mechanisms) > URLS_MAX:
            raise cur.error("too many mechanisms")
    return ResetKey(tag, mailbox, tuple(mechanisms))


def parse_urlfetch(cur: Cursor, tag: str, uid: bool) -> Command:
    """``URLFETCH 1*(SP url)``. Spec: RFC 4467 §9."""
    urls: list[str] = []
    while cur.take(b" "):
        urls.append(cur.text_utf8(cur.astring()))
        if len(urls) > URLS_MAX:
            raise cur.error("too many URLs")
    if not urls:
        raise cur.error("URLFETCH needs a URL")
    return UrlFetch(tag, tuple(urls))


def parse_compress(cur: Cursor, tag: str, uid: bool) -> Command:
    """``COMPRESS SP algorithm``. Spec: RFC 4978 §4."""
    cur.sp()
    return Compress(tag, cur.atom().upper())


def _mechanism(cur: Cursor) -> str:
    raw = cur.run(_MECHANISM)
    if not raw:
        raise cur.error("expected a URLAUTH mechanism")
    return raw.decode("ascii").upper()


def parse_notify(cur: Cursor, tag: str, uid: bool) -> Command:
    """``NOTIFY SP (notify-set / "NONE")``. Spec: RFC 5465 §8."""
    cur.sp()
    if cur.take(b"NONE"):
        return Notify(tag, None)
    cur.expect(b"SET")
    status = cur.take(b" STATUS")
    groups: list[NotifyGroup] = []
    unknown: list[str] = []
    total = 0
    while cur.take(b" "):
        group = _group(cur, unknown)
        total += len(group.mailboxes)
        if total > NOTIFY_MAILBOXES_MAX:
            raise cur.error("too many mailboxes in NOTIFY")
        groups.append(group)
    if not groups:
        raise cur.error("NOTIFY SET needs an event group")
    return Notify(tag, tuple(groups), status, tuple(unknown))


def _group(cur: Cursor, unknown: list[str]) -> NotifyGroup:
    cur.open()
    name = cur.atom().upper()
    try:
        kind = FilterKind(name)
    except ValueError:
        raise cur.error("unknown NOTIFY mailbox filter") from None
    mailboxes: list[str] = []
    if kind in (FilterKind.SUBTREE, FilterKind.MAILBOXES):
        cur.sp()
        if cur.maybe_open():
            mailboxes.append(read_mailbox(cur))
            while cur.take(b" "):
                mailboxes.append(read_mailbox(cur))
                if len(mailboxes) > NOTIFY_MAILBOXES_MAX:
                    raise cur.error("too many mailboxes in NOTIFY")
            cur.close()
        else:
            mailboxes.append(read_mailbox(cur))
    cur.sp()
    events: list[NotifyEvent] = []
    fetch: list[FetchItem] = []
    if not cur.take(b"NONE"):
        cur.open()
        while True:
            _event(cur, events, fetch, unknown)
            if not cur.take(b" "):
                break
        cur.close()
    cur.close()
    return NotifyGroup(kind, tuple(mailboxes), tuple(dict.fromkeys(events)), tuple(fetch))


def _event(
    cur: Cursor, events: list[NotifyEvent], fetch: list[FetchItem], unknown: list[str]
) -> None:
    raw = cur.run(_EVENT_NAME).decode("ascii")
    if not raw:
        raise cur.error("expected a NOTIFY event")
    known = {e.value.upper(): e for e in NotifyEvent}
    event = known.get(raw.upper())
    if event is None:
        unknown.append(raw)
        return
    events.append(event)
    mark = cur.mark()
    if event is NotifyEvent.MESSAGE_NEW and cur.take(b" ") and cur.peek() == 0x28:
        cur.open()
        fetch.append(parse_fetch_att(cur))
        while cur.take(b" "):
            fetch.append(parse_fetch_att(cur))
        cur.close()
    else:
        cur.seek(mark)
