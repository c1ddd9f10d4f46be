"""IMAP commands on mailboxes: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, STATUS.

Names arrive decoded (UTF-8, separator ``/``); the store refuses names it cannot hold
(``InvalidMailboxName``) and that becomes ``NO [CANNOT]``.

Spec: RFC 9051 §6.3; RFC 5258 (LIST-EXTENDED); RFC 5819 (LIST-STATUS); RFC 6154
(SPECIAL-USE, CREATE-SPECIAL-USE); RFC 3348 (CHILDREN); RFC 8438 (STATUS=SIZE).
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from postel.errors import AlreadyExists, NotFound
from postel.imap import commands as cmd
from postel.imap import objectid
from postel.imap import responses as r
from postel.imap.view import MailboxView
from postel.imap.wildcard import ListPattern
from postel.server import imap_condstore
from postel.store import Mailbox, SpecialUse, names
from postel.store.api import InvalidMailboxName, MailboxRefused

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

SEPARATOR = "/"
"""The hierarchy separator. Spec: RFC 9051 §5.1.1."""
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SPECIAL_USES = {u.value.upper(): u for u in SpecialUse}


async def run(session: ImapSession, command: cmd.Command) -> None:
    """Run one mailbox command and write its responses."""
    match command:
        case cmd.Select():
            await select(session, command)
        case cmd.Create():
            await create(session, command)
        case cmd.Delete():
            await delete(session, command)
        case cmd.Rename():
            await rename(session, command)
        case cmd.Subscribe(mailbox=name):
            await _subscribe(session, command.tag, name, True)
        case cmd.Unsubscribe(mailbox=name):
            await _subscribe(session, command.tag, name, False)
        case cmd.List():
            await list_mailboxes(session, command)
        case cmd.Lsub():
            await lsub(session, command)
        case cmd.Status():
            await status(session, command)


def _account_id(session: ImapSession) -> int:
    assert session.account is not None
    return int(session.account.id)


async def _get(session: ImapSession, name: str) -> Mailbox | None:
    return await session.store.get_mailbox(session.account.id, name)  # type: ignore[union-attr]


# -- SELECT / EXAMINE ------------------------------------------------------------------


async def select(session: ImapSession, command: cmd.Select) -> None:
    """SELECT or EXAMINE, with the CONDSTORE and QRESYNC parameters. Spec: RFC 9051
    §6.3.2, §6.3.3; RFC 3501 §6.3.1; RFC 7162 §3.1.2.1, §3.1.8, §3.2.5, §3.2.11."""
    from postel.server.imap_session import Selected

    tag = command.tag
    qresync = await imap_condstore.select_params(session, command)
    if isinstance(qresync, str):
        await session.tagged(tag, r.Status.BAD, qresync)
        return
    was_selected = session.selected is not None
    await session.unselect()
    if was_selected and (session.rev2 or session.qresync):
        await session.write(r.untagged(r.Status.OK, "Previous mailbox is now closed", r.CLOSED))
    mailbox = await _get(session, command.mailbox)
    if mailbox is None:
        await session.tagged(tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
        return
    stack = contextlib.AsyncExitStack()
    # Subscribe before the snapshot, so no change between the two is missed.
    subscription = await stack.enter_async_context(session.store.changes.subscribe(mailbox.id))
    try:
        snapshot = await session.store.select_mailbox(mailbox.id)
    except BaseException:
        await stack.aclose()
        raise
    subscription.consume()
    view = MailboxView(
        snapshot.uidvalidity, snapshot.messages, snapshot.highestmodseq, read_only=command.examine
    )
    # EXAMINE must not take \Recent away from other sessions (RFC 3501 §6.3.2).
    before = snapshot.recent_uid
    if not command.examine and view.uids and view.uids[-1] > before:
        before = await session.store.claim_recent(mailbox.id, view.uids[-1])
    recent = set(view.uids[bisect.bisect_right(view.uids, before) :])
    await session.select(Selected(mailbox.id, mailbox.name, view, subscription, stack, recent))
    keywords = sorted(snapshot.flags_in_use - set(SYSTEM_FLAGS))
    flags = [*SYSTEM_FLAGS, *keywords]
    out = [r.flags(flags), r.exists(view.exists)]
    if not session.rev2:
        out.append(b"* %d RECENT\r\n" % len(recent))
        unseen = next(
            (i + 1 for i, (_, f, _) in enumerate(snapshot.messages) if "\\Seen" not in f), None
        )
        if unseen is not None:
            out.append(r.untagged(r.Status.OK, "First unseen", r.Code("UNSEEN", str(unseen))))
    out.append(r.untagged(r.Status.OK, "UIDs valid", r.uidvalidity(snapshot.uidvalidity)))
    out.append(
        r.untagged(
            r.Status.OK,
            "Mailbox id",
            r.mailboxid(objectid.mailbox_id(mailbox.id, snapshot.uidvalidity)),
        )
    )
    out.append(r.untagged(r.Status.OK, "Predicted next UID", r.uidnext(snapshot.uidnext)))
    permanent = [] if command.examine else [*flags, "\\*"]
    out.append(r.untagged(r.Status.OK, "Flags permitted", r.permanentflags(permanent)))
    out.append(r.untagged(r.Status.OK, "Highest", r.highestmodseq(snapshot.highestmodseq)))
    if session.rev2:
        out.append(r.list_response(_attributes(mailbox, None), SEPARATOR, mailbox.name, utf8=True))
    if qresync is not None:
        selected = session.selected
        assert selected is not None
        changes = await session.store.changes_since(mailbox.id, qresync.modseq)
        out.append(
            imap_condstore.qresync_answer(session, selected, qresync, snapshot, changes.expunged)
        )
    await session.write(b"".join(out))
    code = r.READ_ONLY if command.examine else r.READ_WRITE
    verb = "EXAMINE" if command.examine else "SELECT"
    await session.tagged(tag, r.Status.OK, f"{verb} completed", code)


# -- CREATE / DELETE / RENAME / SUBSCRIBE --------------------------------------------------


def _parents(name: str) -> list[str]:
    levels = name.split(SEPARATOR)
    return [SEPARATOR.join(levels[:i]) for i in range(1, len(levels))]


async def _ensure_parents(session: ImapSession, name: str) -> None:
    """Create missing superior names (RFC 9051 §6.3.4: the server SHOULD)."""
    for parent in _parents(name):
        if await _get(session, parent) is None:
            with contextlib.suppress(AlreadyExists):
                await session.store.create_mailbox(session.account.id, parent)  # type: ignore[union-attr]


async def create(session: ImapSession, command: cmd.Create) -> None:
    """CREATE [USE (...)]. Spec: RFC 9051 §6.3.4; RFC 6154 §3."""
    tag = command.tag
    name = command.mailbox.rstrip(SEPARATOR)
    special: SpecialUse | None = None
    if command.special_use:
        uses = [_SPECIAL_USES.get(u.upper()) for u in command.special_use]
        if len(uses) != 1 or uses[0] is None:
            await session.tagged(tag, r.Status.NO, "Unsupported special-use", r.Code("USEATTR"))
            return
        special = uses[0]
    if name.upper() == "INBOX":
        await session.tagged(tag, r.Status.NO, "INBOX always exists", r.ALREADYEXISTS)
        return
    try:
        names.validate(name)  # the whole name first: a refused name creates nothing
        await _ensure_parents(session, name)
        created = await session.store.create_mailbox(session.account.id, name, special)  # type: ignore[union-attr]
    except AlreadyExists:
        await session.tagged(tag, r.Status.NO, "Mailbox already exists", r.ALREADYEXISTS)
        return
    except (InvalidMailboxName, MailboxRefused) as exc:
        await session.tagged(tag, r.Status.NO, f"Cannot create: {exc}", r.CANNOT)
        return
    code = r.mailboxid(objectid.mailbox_id(created.id, created.uidvalidity))
    await session.tagged(tag, r.Status.OK, "CREATE completed", code)


async def delete(session: ImapSession, command: cmd.Delete) -> None:
    """DELETE. Spec: RFC 9051 §6.3.5."""
    tag = command.tag
    name = command.mailbox
    if name.upper() == "INBOX":
        await session.tagged(tag, r.Status.NO, "INBOX cannot be deleted", r.CANNOT)
        return
    if session.selected is not None and session.selected.name == name:
        await session.unselect()
    try:
        await session.store.delete_mailbox(session.account.id, name)  # type: ignore[union-attr]
    except NotFound:
        await session.tagged(tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
        return
    except (InvalidMailboxName, MailboxRefused) as exc:
        await session.tagged(tag, r.Status.NO, f"Cannot delete: {exc}", r.CANNOT)
        return
    await session.tagged(tag, r.Status.OK, "DELETE completed")


async def rename(session: ImapSession, command: cmd.Rename) -> None:
    """RENAME (INBOX rule: its messages move, INBOX stays). Spec: RFC 9051 §6.3.6."""
    tag = command.tag
    new = command.new_mailbox.rstrip(SEPARATOR)
    old = command.mailbox
    if old.upper() != "INBOX" and new.startswith(old + SEPARATOR):
        await session.tagged(tag, r.Status.NO, "Cannot move a mailbox under itself", r.CANNOT)
        return
    try:
        names.validate(new)
        await _ensure_parents(session, new)
        await session.store.rename_mailbox(session.account.id, command.mailbox, new)  # type: ignore[union-attr]
    except NotFound:
        await session.tagged(tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
        return
    except AlreadyExists:
        await session.tagged(tag, r.Status.NO, "Target mailbox exists", r.ALREADYEXISTS)
        return
    except (InvalidMailboxName, MailboxRefused) as exc:
        await session.tagged(tag, r.Status.NO, f"Cannot rename: {exc}", r.CANNOT)
        return
    await session.tagged(tag, r.Status.OK, "RENAME completed")


async def _subscribe(session: ImapSession, tag: str, name: str, on: bool) -> None:
    """SUBSCRIBE / UNSUBSCRIBE (names need not exist). Spec: RFC 9051 §6.3.7, §6.3.8."""
    try:
        await session.store.set_subscribed(session.account.id, name, on)  # type: ignore[union-attr]
    except InvalidMailboxName as exc:
        await session.tagged(tag, r.Status.NO, f"Bad name: {exc}", r.CANNOT)
        return
    except MailboxRefused as exc:  # too many subscriptions (RFC 5530 §3 LIMIT)
        await session.tagged(tag, r.Status.NO, f"Cannot subscribe: {exc}", r.LIMIT)
        return
    verb = "SUBSCRIBE" if on else "UNSUBSCRIBE"
    await session.tagged(tag, r.Status.OK, f"{verb} completed")


# -- LIST / LSUB -----------------------------------------------------------------------


def list_pattern(reference: str, pattern: str) -> ListPattern:
    """The names ``reference`` + ``pattern`` matches (``postel.imap.wildcard``).
    Spec: RFC 9051 §6.3.9."""
    return ListPattern(reference, pattern, SEPARATOR)


def _attributes(mailbox: Mailbox | None, children: bool | None) -> list[str]:
    attrs: list[str] = []
    if mailbox is None:
        attrs.append("\\Noselect")
    if children is not None:
        attrs.append("\\HasChildren" if children else "\\HasNoChildren")
    if mailbox is not None and mailbox.special_use is not None:
        attrs.append(mailbox.special_use.value)
    return attrs


def _all_names(existing: Iterable[str]) -> set[str]:
    names = set(existing)
    return names | superiors(names)


def superiors(names: Iterable[str]) -> set[str]:
    """Every name that is a superior (a parent, at any level) of one of ``names``: the
    names that have children among them. One pass over the names and their levels, so
    LIST stays linear in the number of mailboxes (up to MAILBOXES_PER_ACCOUNT_MAX).
    Spec: RFC 9051 §6.3.9 (\\HasChildren); RFC 5258 §3.5 (CHILDINFO)."""
    found: set[str] = set()
    for name in names:
        found.update(_parents(name))
    return found


async def list_mailboxes(session: ImapSession, command: cmd.List) -> None:
    """LIST, with LIST-EXTENDED selection and return options. Spec: RFC 9051 §6.3.9;
    RFC 5258 §3-4; RFC 5819; RFC 6154 §2."""
    tag = command.tag
    utf8 = session.utf8
    if command.patterns == ("",):
        await session.write(r.list_response(["\\Noselect"], SEPARATOR, "", utf8=utf8))
        await session.tagged(tag, r.Status.OK, "LIST completed")
        return
    account_id = session.account.id  # type: ignore[union-attr]
    boxes = {m.name: m for m in await session.store.list_mailboxes(account_id)}
    subscribed = set(await session.store.list_subscriptions(account_id))
    select_subscribed = cmd.ListSelect.SUBSCRIBED in command.selection
    select_special = cmd.ListSelect.SPECIAL_USE in command.selection
    recursive = cmd.ListSelect.RECURSIVEMATCH in command.selection
    show_subscribed = select_subscribed or cmd.ListReturn.SUBSCRIBED in command.returns
    matchers = [list_pattern(command.reference, p) for p in command.patterns]
    all_names = _all_names(boxes)
    candidates = (all_names | subscribed) if select_subscribed else all_names
    with_children = superiors(all_names)
    # CHILDINFO names a parent only for subscribed descendants the patterns do not
    # list themselves (RFC 5258 §3.5).
    with_unlisted_subscribed = (
        superiors(n for n in subscribed if not any(m.match(n) for m in matchers))
        if recursive
        else set()
    )
    out: list[bytes] = []
    for name in sorted(candidates, key=_sort_key):
        if not any(m.match(name) for m in matchers):
            continue
        mailbox = boxes.get(name)
        children = name in with_children
        child_subscribed = name in with_unlisted_subscribed
        if select_subscribed and name not in subscribed and not child_subscribed:
            continue
        if select_special and (mailbox is None or mailbox.special_use is None):
            continue
        attrs = _attributes(mailbox, children)
        if mailbox is None and name not in all_names:
            attrs = ["\\NonExistent"]
        if show_subscribed and name in subscribed:
            attrs.append("\\Subscribed")
        extended = b'("CHILDINFO" ("SUBSCRIBED"))' if child_subscribed else b""
        out.append(r.list_response(attrs, SEPARATOR, name, utf8=utf8, extended=extended))
        if command.status_items is not None and mailbox is not None:
            out.append(await _status_line(session, mailbox, command.status_items))
    await session.write(b"".join(out))
    await session.tagged(tag, r.Status.OK, "LIST completed")


async def lsub(session: ImapSession, command: cmd.Lsub) -> None:
    """LSUB (IMAP4rev1). Spec: RFC 3501 §6.3.9."""
    account_id = session.account.id  # type: ignore[union-attr]
    subscribed = set(await session.store.list_subscriptions(account_id))
    matcher = list_pattern(command.reference, command.pattern)
    out: list[bytes] = []
    shown: set[str] = set()
    for name in sorted(subscribed, key=_sort_key):
        if matcher.match(name):
            out.append(r.list_response([], SEPARATOR, name, utf8=session.utf8, command="LSUB"))
            shown.add(name)
            continue
        # A "%" pattern that stops at a level above a subscribed name lists that level
        # as \Noselect (RFC 3501 §6.3.9).
        for parent in _parents(name):
            if parent not in shown and parent not in subscribed and matcher.match(parent):
                shown.add(parent)
                out.append(
                    r.list_response(
                        ["\\Noselect"], SEPARATOR, parent, utf8=session.utf8, command="LSUB"
                    )
                )
    await session.write(b"".join(out))
    await session.tagged(command.tag, r.Status.OK, "LSUB completed")


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" or name.startswith("INBOX/") else 1, name)


# -- STATUS ----------------------------------------------------------------------------


async def _status_line(
    session: ImapSession, mailbox: Mailbox, items: Sequence[cmd.StatusItem]
) -> bytes:
    st = await session.store.mailbox_status(mailbox.id)
    values: dict[cmd.StatusItem, int | str] = {
        cmd.StatusItem.MAILBOXID: f"({objectid.mailbox_id(mailbox.id, st.uidvalidity)})",
        cmd.StatusItem.MESSAGES: st.messages,
        cmd.StatusItem.UIDNEXT: st.uidnext,
        cmd.StatusItem.UIDVALIDITY: st.uidvalidity,
        cmd.StatusItem.UNSEEN: st.unseen,
        cmd.StatusItem.DELETED: st.deleted,
        cmd.StatusItem.DELETED_STORAGE: st.deleted_size,
        cmd.StatusItem.SIZE: st.size,
        cmd.StatusItem.RECENT: st.recent,
        cmd.StatusItem.HIGHESTMODSEQ: st.highestmodseq,
        cmd.StatusItem.APPENDLIMIT: session.service.config.imap.append_limit,
    }
    pairs = [(item.value, values[item]) for item in items]
    return r.status(mailbox.name, pairs, utf8=session.utf8)


async def status(session: ImapSession, command: cmd.Status) -> None:
    """STATUS. Spec: RFC 9051 §6.3.11; RFC 8438 (SIZE); RFC 7889 (APPENDLIMIT);
    RFC 9208 §4.2 (DELETED-STORAGE)."""
    mailbox = await _get(session, command.mailbox)
    if mailbox is None:
        await session.tagged(command.tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
        return
    if session.selected is not None and mailbox.id == session.selected.mailbox_id:
        await session.sync(allow_expunge=False)
    await session.write(await _status_line(session, mailbox, command.items))
    await session.tagged(command.tag, r.Status.OK, "STATUS completed")
