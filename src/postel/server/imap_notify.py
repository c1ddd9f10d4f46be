"""NOTIFY: STATUS responses for watched mailboxes other than the selected one, sent as
changes happen (between commands, during IDLE and after each command).

A NOTIFY SET resolves its filters to mailboxes once (PERSONAL: every mailbox of the
user; INBOXES: INBOX; SUBSCRIBED; SUBTREE: the names and their descendants;
MAILBOXES: the names) and subscribes to each on the store's ChangeHub, at most
``NOTIFY_WATCH_MAX`` of them. On a signal the mailbox's STATUS is read and compared
with the last one sent: new messages or expunges give ``STATUS (MESSAGES UIDNEXT
UIDVALIDITY)`` when MessageNew/MessageExpunge are asked for; a changed HIGHESTMODSEQ
adds ``HIGHESTMODSEQ`` when FlagChange is asked for. The selected mailbox keeps its
usual EXISTS/EXPUNGE/FETCH responses (``SELECTED`` filter).

Not delivered: MailboxName and SubscriptionChange (accepted, no LIST responses are
sent); AnnotationChange and the METADATA events are refused with [BADEVENT] (no
ANNOTATE or METADATA here).

Spec: RFC 5465 §3 (NOTIFY SET/NONE, STATUS indicator), §5 (events), §6 (filters),
§8 (ABNF); RFC 7162 §3.1.2.1 (HIGHESTMODSEQ in STATUS).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from postel.errors import NotFound
from postel.ids import MailboxId
from postel.imap import events as ev
from postel.imap import responses as r
from postel.imap.parse_ext import FilterKind, Notify, NotifyEvent, NotifyGroup
from postel.store import Mailbox
from postel.store.api import MailboxStatus
from postel.store.changes import ChangeSubscription

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = ["NOTIFY_POLL", "NOTIFY_WATCH_MAX", "NotifyState", "deliver", "notify", "wait_for_input"]

NOTIFY_WATCH_MAX = 1000
"""Mailboxes one session watches with NOTIFY; a SET naming more is refused with
``NO [LIMIT]`` (local policy: one ChangeHub subscription each; RFC 5465 lets the
server bound what it watches, RFC 5530 §3 LIMIT)."""

NOTIFY_POLL = 0.2
"""Seconds between looks at the watched mailboxes' change flags while a NOTIFY
session waits for input (in-memory flags only; the store is asked on a signal)."""

UNSUPPORTED = (
    NotifyEvent.ANNOTATION_CHANGE,
    NotifyEvent.MAILBOX_METADATA_CHANGE,
    NotifyEvent.SERVER_METADATA_CHANGE,
)
SUPPORTED = (
    NotifyEvent.MESSAGE_NEW,
    NotifyEvent.MESSAGE_EXPUNGE,
    NotifyEvent.FLAG_CHANGE,
    NotifyEvent.MAILBOX_NAME,
    NotifyEvent.SUBSCRIPTION_CHANGE,
)
_MESSAGE_EVENTS = (NotifyEvent.MESSAGE_NEW, NotifyEvent.MESSAGE_EXPUNGE)


@dataclass(slots=True)
class _Watch:
    name: str
    events: frozenset[NotifyEvent]
    subscription: ChangeSubscription
    uidvalidity: int
    """With the id, what identifies the watched mailbox: a deleted mailbox's id may be
    given to a new mailbox (of any account), never its UIDVALIDITY."""
    last: MailboxStatus | None = None


@dataclass(slots=True)
class NotifyState:
    """The session's NOTIFY subscriptions (empty: NOTIFY NONE)."""

    watches: dict[MailboxId, _Watch] = field(default_factory=dict)
    selected: bool = False
    """A SELECTED filter asks for the selected mailbox's updates as they happen."""
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def pending(self) -> bool:
        """True when a watched mailbox has signalled a change."""
        return any(w.subscription.pending for w in self.watches.values())

    async def wait_pending(self) -> None:
        """Return once a watched mailbox has signalled (looks every ``NOTIFY_POLL``
        seconds); never returns, without waking, while nothing is watched."""
        if not self.watches:
            await asyncio.Event().wait()
        while not self.pending:
            await asyncio.sleep(NOTIFY_POLL)

    async def close(self) -> None:
        """Drop every subscription."""
        self.watches = {}
        self.selected = False
        await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()


async def notify(session: ImapSession, command: Notify) -> None:
    """NOTIFY NONE or NOTIFY SET [STATUS] groups. Spec: RFC 5465 §3, §5, §6."""
    state = session.notify_state
    if command.groups is None:
        await state.close()
        await session.tagged(command.tag, r.Status.OK, "NOTIFY completed")
        return
    problem = _check(command)
    if problem is not None:
        status, text, code = problem
        await session.tagged(command.tag, status, text, code)
        return
    wanted = await _resolve(session, command.groups)
    if len(wanted) > NOTIFY_WATCH_MAX:
        await session.tagged(command.tag, r.Status.NO, "Too many mailboxes to watch", r.LIMIT)
        return
    await state.close()
    state.selected = any(g.kind is FilterKind.SELECTED and g.events for g in command.groups)
    for mailbox, events in wanted.values():
        subscription = await state.stack.enter_async_context(
            session.store.changes.subscribe(mailbox.id)
        )
        state.watches[mailbox.id] = _Watch(mailbox.name, events, subscription, mailbox.uidvalidity)
    for mailbox_id, watch in state.watches.items():
        with contextlib.suppress(NotFound):
            watch.last = await session.store.mailbox_status(mailbox_id)
            if watch.last.uidvalidity != watch.uidvalidity:
                continue
            if command.status and not _is_selected(session, mailbox_id):
                await session.write(_status(session, watch, watch.last, initial=True))
    await session.tagged(command.tag, r.Status.OK, "NOTIFY completed")


def _check(command: Notify) -> tuple[r.Status, str, r.Code | None] | None:
    assert command.groups is not None
    unsupported = list(command.unknown)
    for group in command.groups:
        unsupported += [e.value for e in group.events if e in UNSUPPORTED]
        has_new = NotifyEvent.MESSAGE_NEW in group.events
        if has_new != (NotifyEvent.MESSAGE_EXPUNGE in group.events):
            return r.Status.BAD, "MessageNew and MessageExpunge go together", None
        if NotifyEvent.FLAG_CHANGE in group.events and not has_new:
            return r.Status.BAD, "FlagChange needs MessageNew and MessageExpunge", None
    if unsupported:
        names = " ".join(e.value for e in SUPPORTED)
        return r.Status.NO, "Unsupported NOTIFY event", r.Code("BADEVENT", f"({names})")
    return None


async def _resolve(
    session: ImapSession, groups: tuple[NotifyGroup, ...]
) -> dict[MailboxId, tuple[Mailbox, frozenset[NotifyEvent]]]:
    """Mailbox id -> (mailbox, events) for the non-selected filters; the first group
    naming a mailbox decides its events. Spec: RFC 5465 §6."""
    assert session.account is not None
    mailboxes = await session.store.list_mailboxes(session.account.id)
    out: dict[MailboxId, tuple[Mailbox, frozenset[NotifyEvent]]] = {}
    for group in groups:
        if group.kind in (FilterKind.SELECTED, FilterKind.SELECTED_DELAYED):
            continue
        for mailbox in mailboxes:
            if mailbox.id not in out and _matches(group, mailbox):
                out[mailbox.id] = (mailbox, frozenset(group.events))
    return out


def _matches(group: NotifyGroup, mailbox: Mailbox) -> bool:
    match group.kind:
        case FilterKind.PERSONAL:
            return True
        case FilterKind.INBOXES:
            return mailbox.name == "INBOX"
        case FilterKind.SUBSCRIBED:
            return mailbox.subscribed
        case FilterKind.SUBTREE:
            return any(
                mailbox.name == name or mailbox.name.startswith(name + "/")
                for name in group.mailboxes
            )
        case _:
            return mailbox.name in group.mailboxes


def _is_selected(session: ImapSession, mailbox_id: MailboxId) -> bool:
    return session.selected is not None and session.selected.mailbox_id == mailbox_id


def _status(session: ImapSession, watch: _Watch, status: MailboxStatus, *, initial: bool) -> bytes:
    items: list[tuple[str, int]] = []
    if initial or watch.events & set(_MESSAGE_EVENTS):
        items += [
            ("MESSAGES", status.messages),
            ("UIDNEXT", status.uidnext),
            ("UIDVALIDITY", status.uidvalidity),
        ]
    if NotifyEvent.FLAG_CHANGE in watch.events:
        items.append(("HIGHESTMODSEQ", status.highestmodseq))
    return r.status(watch.name, items, utf8=session.utf8)


async def deliver(session: ImapSession) -> None:
    """Send the STATUS responses due for watched mailboxes that signalled a change.
    Spec: RFC 5465 §5.1-§5.3."""
    for mailbox_id, watch in list(session.notify_state.watches.items()):
        if not watch.subscription.consume() or _is_selected(session, mailbox_id):
            continue
        try:
            now = await session.store.mailbox_status(mailbox_id)
        except NotFound:
            continue
        if now.uidvalidity != watch.uidvalidity:  # deleted: the id names another mailbox
            del session.notify_state.watches[mailbox_id]
            continue
        before, watch.last = watch.last, now
        if before is not None and not _reportable(watch, before, now):
            continue
        await session.write(_status(session, watch, now, initial=False))


def _reportable(watch: _Watch, before: MailboxStatus, now: MailboxStatus) -> bool:
    messages = (before.messages, before.uidnext, before.uidvalidity) != (
        now.messages,
        now.uidnext,
        now.uidvalidity,
    )
    if messages and watch.events & set(_MESSAGE_EVENTS):
        return True
    flags = before.highestmodseq != now.highestmodseq
    return flags and NotifyEvent.FLAG_CHANGE in watch.events


async def wait_for_input(session: ImapSession, timeout: float) -> ev.Event:
    """The next core event within ``timeout`` seconds; meanwhile, with NOTIFY active,
    send the STATUS responses (and, with a SELECTED filter, the selected mailbox's
    updates) as changes happen. Raises TimeoutError. Spec: RFC 5465 §5."""
    state = session.notify_state
    if not state.watches and not state.selected:
        return await session.next_event(timeout)
    deadline = session.loop.time() + timeout
    while True:
        remaining = deadline - session.loop.time()
        read = session.loop.create_task(session.next_event(remaining))
        while not read.done():
            await asyncio.wait({read}, timeout=NOTIFY_POLL)
            if read.done() or not (state.pending or _selected_pending(session)):
                continue
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await read
            if state.selected:
                await session.sync(allow_expunge=True)
            await deliver(session)
        if not read.cancelled():
            return read.result()


def _selected_pending(session: ImapSession) -> bool:
    selected = session.selected
    return session.notify_state.selected and selected is not None and selected.subscription.pending
