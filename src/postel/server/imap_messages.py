"""IMAP commands on the selected mailbox and APPEND: FETCH, STORE, SEARCH, COPY, MOVE,
EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT (SORT and THREAD are in ``imap_sort``, context
updates and CANCELUPDATE in ``imap_context``).

Messages are loaded from the store in batches of ``limits.IMAP_FETCH_BATCH`` and each
FETCH response is written (and flow-controlled) before the next message's bytes are
read, so a ``FETCH 1:* BODY[]`` never holds more than one message in memory.

A command that names messages by sequence number holds expunges back (RFC 9051
§7.5.1); its UID form and the other commands are full sync points.

Spec: RFC 9051 §6.3.12 (APPEND), §6.4; RFC 4315 (UIDPLUS); RFC 6851 (MOVE); RFC 3502
(MULTIAPPEND); RFC 3516 (BINARY); RFC 4731 (ESEARCH); RFC 7889 (APPENDLIMIT); RFC 5267
(CONTEXT=SEARCH).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from postel import limits
from postel.errors import BlobMissing, NotFound
from postel.ids import MailboxId
from postel.imap import commands as cmd
from postel.imap import condstore as cs
from postel.imap import events as ev
from postel.imap import fetch, objectid
from postel.imap import responses as r
from postel.imap.decode import UnknownTransferEncoding
from postel.imap.fetch_items import FetchAttr, FetchItem
from postel.imap.sequence import SequenceSet
from postel.mail import parse_message
from postel.mail.imapfmt import render_envelope
from postel.mail.summary import imap_envelope
from postel.pop3 import pop3_size
from postel.server import imap_condstore, imap_context, imap_sort
from postel.server.imap_preview import load_preview
from postel.server.imap_scan import esearch_answer, load_summary, scan
from postel.store import (
    AppendItem,
    BlobRef,
    MessageAttributes,
    OverQuota,
    StoredMessage,
    exceeded,
)
from postel.store.api import FlagMode, FlagsResult, InvalidFlag, UidSet
from postel.store.flags import canonical_set

if TYPE_CHECKING:
    from postel.server import imap_catenate
    from postel.server.imap_session import ImapSession, Selected

INLINE_PARSE_MAX = 4096
"""Messages up to this size are parsed on the event loop; larger ones in a thread."""
_EMPTY_SUMMARY = parse_message(b"\r\n")
_MODES = {
    cmd.StoreMode.REPLACE: FlagMode.SET,
    cmd.StoreMode.ADD: FlagMode.ADD,
    cmd.StoreMode.REMOVE: FlagMode.REMOVE,
}
SEEN = "\\Seen"

log = logging.getLogger(__name__)
R = TypeVar("R")


async def run(session: ImapSession, command: cmd.Command) -> None:
    """Run one selected-state command and write its responses."""
    selected = session.selected
    assert selected is not None
    match command:
        case cmd.Fetch():
            await fetch_command(session, selected, command)
        case cmd.Store():
            await store_command(session, selected, command)
        case cmd.Search():
            await search_command(session, selected, command)
        case cmd.Sort():
            await imap_sort.sort_command(session, selected, command)
        case cmd.Thread():
            await imap_sort.thread_command(session, selected, command)
        case cmd.CancelUpdate():
            await imap_context.cancel_update(session, selected, command)
        case cmd.Copy() | cmd.Move():
            await copy_move(session, selected, command)
        case cmd.Expunge():
            await expunge(session, selected, command)
        case cmd.Close():
            if not selected.view.read_only:
                await session.store.expunge(selected.mailbox_id)
            await session.unselect()
            await session.tagged(command.tag, r.Status.OK, "CLOSE completed")
        case cmd.Unselect():
            await session.unselect()
            await session.tagged(command.tag, r.Status.OK, "UNSELECT completed")
        case _:
            await session.tagged(command.tag, r.Status.BAD, "Command not supported")


def _resolve(selected: Selected, sequence: object, uid: bool) -> list[tuple[int, int]] | None:
    """``(msn, uid)`` pairs, or None for a sequence number beyond EXISTS (BAD)."""
    assert isinstance(sequence, SequenceSet)
    if sequence.saved:  # "$": the saved messages still in the view, by UID or MSN alike
        uids = selected.view.uids
        pairs = []
        for saved in sorted(selected.saved):
            at = bisect.bisect_left(uids, saved)
            if at < len(uids) and uids[at] == saved:
                pairs.append((at + 1, saved))
        return pairs
    if not uid and selected.view.out_of_range(sequence):
        return None
    return selected.view.select(sequence, uid=uid)


async def _bad_sequence(session: ImapSession, tag: str) -> None:
    await session.tagged(tag, r.Status.BAD, "Invalid message sequence number")


_RECENT = frozenset({"\\Recent"})
FETCH_OUTPUT_FLUSH = 64 * 1024
"""Octets of FETCH responses gathered before they are written (one send for many small
responses; a large one goes out at once). Local bound on what a session holds."""


class _Output:
    """FETCH responses gathered into few writes (FETCH_OUTPUT_FLUSH)."""

    def __init__(self, session: ImapSession) -> None:
        self._session = session
        self._parts: list[bytes] = []
        self._octets = 0

    async def add(self, data: bytes) -> None:
        self._parts.append(data)
        self._octets += len(data)
        if self._octets >= FETCH_OUTPUT_FLUSH:
            await self.flush()

    async def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            self._octets = 0
            await self._session.write(data)


Loader = Callable[["ImapSession", MailboxId, Sequence[int]], Awaitable[dict[int, R]]]
"""Reads the rows of some UIDs of a mailbox, by UID (``_rows``, ``_attribute_rows``)."""


async def _row_batches(
    session: ImapSession,
    mailbox_id: MailboxId,
    pairs: Sequence[tuple[int, int]],
    load: Loader[R],
) -> AsyncGenerator[tuple[Sequence[tuple[int, int]], dict[int, R], bool], None]:
    """``(batch, rows by UID, last)`` per batch of IMAP_FETCH_BATCH pairs, the next
    batch's rows loading while the caller answers the current one (a command on one
    batch, such as a single message's FETCH, starts no background load)."""
    batches = _batches(pairs)
    upcoming: asyncio.Future[dict[int, R]] | None = None
    try:
        for index, batch in enumerate(batches):
            if upcoming is None:
                rows = await load(session, mailbox_id, [u for _, u in batch])
            else:
                rows = await upcoming
            upcoming = None
            if index + 1 < len(batches):
                following = [u for _, u in batches[index + 1]]
                upcoming = asyncio.ensure_future(load(session, mailbox_id, following))
            yield batch, rows, index + 1 == len(batches)
    finally:
        if upcoming is not None:
            _discard(upcoming)


def _discard(future: asyncio.Future[dict[int, R]]) -> None:
    """Cancel a prefetch no longer wanted (the command ended early), its error read."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def _batches(pairs: Sequence[tuple[int, int]]) -> list[Sequence[tuple[int, int]]]:
    size = limits.IMAP_FETCH_BATCH
    return [pairs[i : i + size] for i in range(0, len(pairs), size)]


async def _rows(
    session: ImapSession, mailbox_id: MailboxId, uids: Sequence[int]
) -> dict[int, StoredMessage]:
    rows = await session.store.fetch_messages(mailbox_id, UidSet.of(uids))
    return {m.uid: m for m in rows}


async def _attribute_rows(
    session: ImapSession, mailbox_id: MailboxId, uids: Sequence[int]
) -> dict[int, MessageAttributes]:
    rows = await session.store.fetch_attributes(mailbox_id, UidSet.of(uids))
    return {m.uid: m for m in rows}


# -- FETCH -----------------------------------------------------------------------------


async def fetch_command(session: ImapSession, selected: Selected, command: cmd.Fetch) -> None:
    """FETCH / UID FETCH, with MODSEQ and (CHANGEDSINCE n [VANISHED]).
    Spec: RFC 9051 §6.4.5, §6.4.9; RFC 7162 §3.1.4, §3.2.6."""
    if command.vanished and not (command.uid and session.qresync):
        await session.tagged(command.tag, r.Status.BAD, "VANISHED needs UID FETCH and QRESYNC")
        return
    pairs = _resolve(selected, command.sequence, command.uid)
    if pairs is None:
        await _bad_sequence(session, command.tag)
        return
    items: tuple[FetchItem, ...] = command.items
    if command.uid and FetchAttr.UID not in items:
        items = (FetchAttr.UID, *items)
    since = command.changed_since
    if since is not None and FetchAttr.MODSEQ not in items:
        items = (*items, FetchAttr.MODSEQ)  # CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1)
    if command.vanished and since is not None:
        await session.write(await imap_condstore.fetch_vanished(session, selected, command, since))
    lane = fetch.plan(items)
    if lane.attributes_only:
        out = await _fetch_attributes(
            session, selected, cast(tuple[FetchAttr, ...], items), pairs, since
        )
        async with session.corked():
            await out.flush()
            await session.sync(allow_expunge=command.uid)
            await session.tagged(command.tag, r.Status.OK, "FETCH completed")
        return
    sets_seen = lane.sets_seen and not selected.view.read_only
    needs_bytes = lane.needs_bytes
    needs_summary = lane.needs_summary
    envelope_only = lane.envelope_only
    unknown_cte = False
    out = _Output(session)
    octets: dict[int, bytes] = {}

    async def answer(batch: Sequence[tuple[int, int]], rows: dict[int, StoredMessage]) -> None:
        nonlocal unknown_cte
        if since is not None:
            rows = {u: m for u, m in rows.items() if m.modseq > since}
        flagged: set[int] = set()
        if sets_seen:
            seen_rows = rows
            if lane.decodes:  # a message answered NO [UNKNOWN-CTE] was not read: no \Seen
                seen_rows = {
                    u: m for u, m in rows.items() if fetch.decodable(items, await load_summary(m))
                }
            flagged = await _mark_seen(session, selected, seen_rows)
            if seen_rows is not rows:
                rows = {**rows, **seen_rows}
        for msn, uid in batch:
            m = rows.get(uid)
            if m is None:
                continue  # expunged meanwhile; the client hears of it at the next sync point
            wanted = items
            if uid in flagged and FetchAttr.FLAGS not in wanted:
                wanted = (*wanted, FetchAttr.FLAGS)
                if session.condstore and FetchAttr.MODSEQ not in wanted:
                    wanted = (*wanted, FetchAttr.MODSEQ)
            try:
                data = octets.pop(uid, None)
                if needs_bytes and data is None:
                    data = await session.store.read_message(selected.mailbox_id, uid)
                envelope = imap_envelope(m.summary) if envelope_only else None
                summary = (
                    await load_summary(m, envelope_only=envelope_only)
                    if needs_summary and envelope is None
                    else _EMPTY_SUMMARY
                )
                preview = (
                    await load_preview(session.store, m, summary, data)
                    if FetchAttr.PREVIEW in items
                    else None
                )
            except BlobMissing:
                raise  # the message is there but its bytes are not: the session says NO
            except NotFound:
                continue
            shown = m.flags
            if not session.rev2 and uid in selected.recent:
                shown = m.flags | {"\\Recent"}
            source = fetch.FetchSource(
                uid,
                shown,
                m.internal_date,
                m.size,
                summary,
                m.trace_prefix,
                data,
                m.modseq,
                preview=preview,
                save_date=m.save_date,
                envelope=envelope,
                email_id=(
                    objectid.email_id(m.blob.key, m.trace_prefix)
                    if FetchAttr.EMAILID in items
                    else ""
                ),
            )
            try:
                rendered = fetch.render_items(wanted, source)
            except UnknownTransferEncoding:
                unknown_cte = True
                continue
            if sum(len(value) for _, value in rendered) < FETCH_OUTPUT_FLUSH:
                await out.add(r.fetch_response(msn, rendered))
                continue
            # A large response goes out piece by piece, uncopied; while a slow client
            # takes it, the session holds its rendered values, not the message octets.
            parts = r.fetch_response_parts(msn, rendered)
            del rendered, source, data
            await out.flush()
            for part in parts:
                await session.write(part)
            del parts

    if needs_bytes and len(pairs) == 1:
        # One message (a client opening it): its row and octets in one read, no batches.
        found = await session.store.fetch_message_data(selected.mailbox_id, pairs[0][1])
        rows: dict[int, StoredMessage] = {}
        if found is not None:
            rows[found[0].uid] = found[0]
            octets[found[0].uid] = found[1]
        del found  # ``answer`` lets go of the octets once they are rendered
        await answer(pairs, rows)
    else:
        batches = _row_batches(session, selected.mailbox_id, pairs, _rows)
        async with contextlib.aclosing(batches) as each:
            async for batch, rows, last in each:
                await answer(batch, rows)
                if not last:
                    await out.flush()
    async with session.corked():  # the last responses and the status in one write
        await out.flush()
        await session.sync(allow_expunge=command.uid)
        if unknown_cte:
            await session.tagged(
                command.tag, r.Status.NO, "Unknown content-transfer-encoding", r.UNKNOWN_CTE
            )
            return
        await session.tagged(command.tag, r.Status.OK, "FETCH completed")


async def _fetch_attributes(
    session: ImapSession,
    selected: Selected,
    items: tuple[FetchAttr, ...],
    pairs: Sequence[tuple[int, int]],
    since: int | None,
) -> _Output:
    """FETCH of attributes and ENVELOPE only (fetch.ATTRIBUTE_ITEMS: what a client asks
    of every message to list a mailbox), one line per message from its row, the
    ENVELOPE pre-rendered in the summary; the same responses as the general path. The
    last lines are left in the returned output, to go out with the tagged status.
    Spec: RFC 9051 §6.4.5, §7.5.2."""
    envelope_wanted = FetchAttr.ENVELOPE in items
    recent = selected.recent if not session.rev2 else set()
    out = _Output(session)
    batches = _row_batches(session, selected.mailbox_id, pairs, _attribute_rows)
    async with contextlib.aclosing(batches) as each:
        async for batch, rows, last in each:
            for msn, uid in batch:
                m = rows.get(uid)
                if m is None or (since is not None and m.modseq <= since):
                    continue  # expunged meanwhile, or unchanged since CHANGEDSINCE
                envelope = b""
                if envelope_wanted:
                    pre = imap_envelope(m.summary_head)
                    if pre is None:  # a summary written before ENVELOPEs were pre-rendered
                        pre = await _envelope(session, selected.mailbox_id, uid)
                        if pre is None:
                            continue  # expunged meanwhile
                    envelope = pre
                flags = m.flags | _RECENT if uid in recent else m.flags
                line = fetch.render_attributes(
                    items, msn, uid, flags, m.size, m.modseq, m.internal_date, envelope
                )
                await out.add(line)
            if not last:
                await out.flush()
    return out


async def _envelope(session: ImapSession, mailbox_id: MailboxId, uid: int) -> bytes | None:
    """The ENVELOPE rendered from the message's whole summary; None if it is gone."""
    found = await session.store.fetch_messages(mailbox_id, UidSet.of([uid]))
    if not found:
        return None
    return render_envelope(await load_summary(found[0], envelope_only=True))


async def _mark_seen(
    session: ImapSession, selected: Selected, rows: dict[int, StoredMessage]
) -> set[int]:
    """Set \\Seen on fetched messages that lack it (non-PEEK body items); returns
    their UIDs and updates ``rows`` and the view. Spec: RFC 9051 §6.4.5."""
    lacking = [uid for uid, m in rows.items() if SEEN not in m.flags]
    if not lacking:
        return set()
    result = await session.store.store_flags(
        selected.mailbox_id,
        UidSet.of(lacking),
        FlagMode.ADD,
        frozenset({SEEN}),
    )
    for uid, flags, modseq in result.messages:
        m = rows.get(uid)
        if m is not None:
            rows[uid] = _with_flags(m, flags, modseq)
        selected.view.set_flags(uid, flags)
    return set(lacking)


def _with_flags(m: StoredMessage, flags: frozenset[str], modseq: int) -> StoredMessage:
    import dataclasses

    return dataclasses.replace(m, flags=flags, modseq=modseq)


# -- STORE -----------------------------------------------------------------------------


async def store_command(session: ImapSession, selected: Selected, command: cmd.Store) -> None:
    """STORE / UID STORE (+/-FLAGS[.SILENT]) [(UNCHANGEDSINCE n)]: the check and the
    write are one store transaction; messages that failed the check are named in
    ``[MODIFIED set]``. With CONDSTORE every message this STORE changed is reported
    with its new MODSEQ, .SILENT or not. Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3."""
    if selected.view.read_only:
        await session.tagged(command.tag, r.Status.NO, "Mailbox is read-only", r.Code("READ-ONLY"))
        return
    pairs = _resolve(selected, command.sequence, command.uid)
    if pairs is None:
        await _bad_sequence(session, command.tag)
        return
    async with session.corked():  # the responses and the status in one write
        msn_of = {uid: msn for msn, uid in pairs}
        modified: list[int] = []
        if pairs:
            try:
                result = await session.store.store_flags(
                    selected.mailbox_id,
                    UidSet.of(msn_of),
                    _MODES[command.mode],
                    frozenset(command.flags),
                    command.unchanged_since,
                )
            except InvalidFlag as exc:
                await session.tagged(command.tag, r.Status.BAD, f"Invalid flag: {exc}")
                return
            modified = [u if command.uid else msn_of[u] for u in result.modified if u in msn_of]
            out: list[bytes] = []
            for uid, flags, modseq in result.messages:
                changed = session.condstore and modseq == result.highestmodseq
                items: list[tuple[bytes, bytes]] = []
                if command.silent:
                    # The client learns only its own change; a difference made by another
                    # session is reported at the next sync point (RFC 9051 §6.4.6, §5.2).
                    selected.view.set_flags(uid, _applied(selected.view.flags_of(uid), command))
                else:
                    selected.view.set_flags(uid, flags)
                    items.append(
                        (b"FLAGS", fetch.render_flags(selected.flags(uid, flags, session.rev2)))
                    )
                if uid not in msn_of or not (items or changed):
                    continue
                if command.uid:
                    items.append((b"UID", b"%d" % uid))
                if session.condstore:
                    items.append(cs.modseq_item(modseq))
                out.append(r.fetch_response(msn_of[uid], items))
            if out:
                await session.write(b"".join(out))
            await _absorb_own(session, selected, result)
        await session.sync(allow_expunge=command.uid)
        code = r.Code("MODIFIED", r.compress_set(modified)) if modified else None
        text = "Conditional STORE failed" if modified else "STORE completed"
        await session.tagged(command.tag, r.Status.OK, text, code)


async def _absorb_own(session: ImapSession, selected: Selected, result: FlagsResult) -> None:
    """Bring the view up to this STORE's MODSEQ without asking the store, when the
    STORE changed something and was the only change since the view's MODSEQ (each
    change takes a new MODSEQ, so the STORE's is then exactly one above the view's and
    is the mailbox's HIGHESTMODSEQ) and no later change was signalled:
    ``result`` holds every message the STORE touched, as committed. Sessions with
    search contexts to update (RFC 5267 §4.3) take the ordinary sync path.
    Spec: RFC 7162 §3.1.3, §3.2 (HIGHESTMODSEQ known to the client)."""
    view = selected.view
    if not result.changed or result.highestmodseq != view.modseq + 1 or selected.contexts:
        return  # a STORE that changed nothing took no MODSEQ: H+1 is another's change
    if not selected.subscription.consume_own(result.highestmodseq):
        return
    updates = view.update(list(result.messages), [], result.highestmodseq, allow_expunge=False)
    if updates:
        await session.write_updates(updates)


def _applied(known: frozenset[str], command: cmd.Store) -> frozenset[str]:
    """The flags a client expects after its own STORE, starting from what it knew."""
    given = canonical_set(command.flags)
    lowered = {g.lower() for g in given}
    match command.mode:
        case cmd.StoreMode.ADD:
            return frozenset(f for f in known if f.lower() not in lowered) | given
        case cmd.StoreMode.REMOVE:
            return frozenset(f for f in known if f.lower() not in lowered)
        case _:
            return given


# -- SEARCH ----------------------------------------------------------------------------


async def search_command(session: ImapSession, selected: Selected, command: cmd.Search) -> None:
    """SEARCH / UID SEARCH, answered by ``* SEARCH`` (IMAP4rev1 without RETURN) or
    ``* ESEARCH``; RETURN (UPDATE) keeps the result up to date (CONTEXT=SEARCH). With
    the MODSEQ key the answer ends with the highest MODSEQ of the messages found.
    Spec: RFC 9051 §6.4.4, §7.3.4; RFC 4731; RFC 3501 §7.2.5; RFC 5267 §4;
    RFC 7162 §3.1.5."""
    returns = command.returns
    updating = returns is not None and cmd.SearchReturn.UPDATE in returns
    saving = returns is not None and cmd.SearchReturn.SAVE in returns
    if updating and selected.contexts.has(command.tag):
        if saving:
            selected.saved = frozenset()  # a failed SAVE empties $ (RFC 5182 §2.1)
        await session.tagged(command.tag, r.Status.BAD, "Duplicate update tag")
        return
    with_modseq = imap_condstore.uses_modseq_key(command.key)
    try:
        hits = await scan(session, selected, command.key, rows=with_modseq)
    except Exception:
        if saving:
            selected.saved = frozenset()  # a failed SAVE empties $ (RFC 5182 §2.1)
        raise
    found = [h.uid if command.uid else h.msn for h in hits]
    if saving:
        assert returns is not None
        selected.saved = saved_result(returns, [h.uid for h in hits])
    modseq = None
    if hits and with_modseq:
        modseq = max(h.row.modseq for h in hits)  # RFC 7162 §3.1.5
    if returns is None and not session.rev2:
        answer = r.search(found, modseq)
    elif saving and not set(returns or ()) - {cmd.SearchReturn.SAVE}:
        answer = b""  # SAVE alone: no ESEARCH (RFC 9051 §6.4.4.1)
    else:
        answer = esearch_answer(
            command.tag,
            uid=command.uid,
            returns=returns or (),
            partial=command.partial,
            numbers=found,
            ordered=False,
            modseq=modseq,
        )
    if updating:
        answer += imap_context.register(
            selected, command.tag, uid=command.uid, key=command.key, uids=[h.uid for h in hits]
        )
    await session.write(answer)
    await session.sync(allow_expunge=command.uid)
    await session.tagged(command.tag, r.Status.OK, "SEARCH completed")


def saved_result(returns: Sequence[cmd.SearchReturn], uids: Sequence[int]) -> frozenset[int]:
    """What SEARCH RETURN (SAVE ...) keeps in ``$`` of the found ``uids`` (ascending):
    with MIN and/or MAX but neither ALL nor COUNT only those messages, otherwise all.
    Spec: RFC 9051 §6.4.4.1, RFC 5182 §2.4."""
    options = set(returns)
    if (
        uids
        and options & {cmd.SearchReturn.MIN, cmd.SearchReturn.MAX}
        and not options
        & {
            cmd.SearchReturn.ALL,
            cmd.SearchReturn.COUNT,
        }
    ):
        kept = set()
        if cmd.SearchReturn.MIN in options:
            kept.add(uids[0])
        if cmd.SearchReturn.MAX in options:
            kept.add(uids[-1])
        return frozenset(kept)
    return frozenset(uids)


# -- COPY / MOVE / EXPUNGE -------------------------------------------------------------


async def copy_move(session: ImapSession, selected: Selected, command: cmd.Copy | cmd.Move) -> None:
    """COPY / MOVE (and UID forms) with COPYUID. Spec: RFC 9051 §6.4.7, §6.4.8;
    RFC 4315 §3; RFC 6851 §3."""
    tag = command.tag
    moving = isinstance(command, cmd.Move)
    if moving and selected.view.read_only:
        await session.tagged(tag, r.Status.NO, "Mailbox is read-only", r.Code("READ-ONLY"))
        return
    pairs = _resolve(selected, command.sequence, command.uid)
    if pairs is None:
        await _bad_sequence(session, tag)
        return
    target = await session.store.get_mailbox(session.account.id, command.mailbox)  # type: ignore[union-attr]
    if target is None:
        await session.tagged(tag, r.Status.NO, "No such mailbox", r.TRYCREATE)
        return
    uids = UidSet.of(u for _, u in pairs)
    verb = "MOVE" if moving else "COPY"
    if not pairs:
        await session.sync(allow_expunge=command.uid)
        await session.tagged(tag, r.Status.OK, f"{verb} completed")
        return
    source_id = selected.mailbox_id
    if moving:
        moved = await session.store.move_messages(source_id, uids, target.id)
        code = _copyuid(moved.uidvalidity, moved.pairs)
        if code is not None:
            await session.write(r.untagged(r.Status.OK, "Moved", code))
        await session.sync(allow_expunge=True, force=True)
        await session.tagged(tag, r.Status.OK, "MOVE completed")
        return
    copied = await session.store.copy_messages(source_id, uids, target.id)
    await session.sync(allow_expunge=command.uid)
    await session.tagged(
        tag, r.Status.OK, "COPY completed", _copyuid(copied.uidvalidity, copied.pairs)
    )


def _copyuid(uidvalidity: int, pairs: Sequence[tuple[int, int]]) -> r.Code | None:
    if not pairs:
        return None
    return r.copyuid(uidvalidity, [s for s, _ in pairs], [d for _, d in pairs])


async def expunge(session: ImapSession, selected: Selected, command: cmd.Expunge) -> None:
    """EXPUNGE / UID EXPUNGE. Spec: RFC 9051 §6.4.3; RFC 4315 §2.1."""
    if selected.view.read_only:
        await session.tagged(command.tag, r.Status.NO, "Mailbox is read-only", r.Code("READ-ONLY"))
        return
    uids: UidSet | None = None
    if command.uids is not None:
        pairs = _resolve(selected, command.uids, True)
        if pairs is None:
            await _bad_sequence(session, command.tag)
            return
        uids = UidSet.of(u for _, u in pairs)
    if uids is None or uids:
        await session.store.expunge(selected.mailbox_id, uids)
    await session.sync(allow_expunge=True, force=True)
    await session.tagged(command.tag, r.Status.OK, "EXPUNGE completed")


# -- APPEND ----------------------------------------------------------------------------


Received = tuple[MailboxId, BlobRef, frozenset[str], dt.datetime, str, int]
"""One received message: mailbox, blob, flags, internal date, summary JSON, CRLF size."""


async def append(session: ImapSession, started: ev.AppendStarted | ev.CatenateStarted) -> None:
    """APPEND with MULTIAPPEND and CATENATE: every message is received into a durable
    blob, then all are stored; the tagged OK carries APPENDUID. Spec: RFC 9051
    §6.3.12; RFC 3502; RFC 4315 §3; RFC 7889; RFC 4469 §5."""
    from postel.server import imap_catenate

    tag = started.tag
    received: list[Received] = []
    refusal: imap_catenate.Refusal | None = None
    event: ev.Event = started
    while True:
        match event:
            case ev.AppendStarted():
                if refusal is not None:
                    session.conn.reject_literal()
                    await imap_catenate.refuse(session, tag, refusal)
                    return
                item = await _receive_one(session, event)
                if item is None:
                    return
                if isinstance(item, imap_catenate.Refusal):
                    refusal = item  # answered NO once the command has ended
                else:
                    received.append(item)
            case ev.CatenateStarted():
                outcome = await imap_catenate.receive(session, event, refusal)
                if outcome is None:
                    return
                if isinstance(outcome, imap_catenate.Refusal):
                    refusal = outcome
                else:
                    received.append(outcome)
            case ev.AppendCommandEnd():
                if refusal is not None:
                    await imap_catenate.refuse(session, tag, refusal)
                    return
                break
            case ev.AppendAborted(text=text):
                await session.tagged(tag, r.Status.BAD, text)
                return
            case ev.BadCommand(text=text):
                await session.tagged(tag, r.Status.BAD, text)
                return
            case _:
                return
        event = await session.next_event(session.command_timeout())
    items = [
        AppendItem(mailbox_id, ref, when, summary, flags, crlf)
        for mailbox_id, ref, flags, when, summary, crlf in received
    ]
    try:
        appended = await session.store.append_many(items)
    except InvalidFlag as exc:
        await session.tagged(tag, r.Status.BAD, f"Invalid flag: {exc}")
        return
    except OverQuota as exc:  # nothing of the command was stored (RFC 9208 §4: all or nothing)
        log_over_quota(session, "Append", str(exc))
        await session.tagged(tag, r.Status.NO, "Over quota", r.OVERQUOTA)
        return
    await session.sync(allow_expunge=False)
    last = appended[-1]
    code = r.appenduid(
        last.uidvalidity, [a.uid for a in appended if a.mailbox_id == last.mailbox_id]
    )
    await session.tagged(tag, r.Status.OK, "APPEND completed", code)


def log_over_quota(session: ImapSession, command: str, reason: str) -> None:
    """The operator's line for a command refused with [OVERQUOTA]: the command, the
    user and why. Spec: RFC 9208 §4.1."""
    user = session.account.address if session.account is not None else ""
    log.info("imap.over_quota", extra={"command": command, "user": user, "error": reason})


async def _receive_one(
    session: ImapSession, started: ev.AppendStarted
) -> Received | imap_catenate.Refusal | None:
    mailbox = await session.store.get_mailbox(session.account.id, started.mailbox)  # type: ignore[union-attr]
    if mailbox is None:
        session.conn.reject_literal()
        await session.tagged(started.tag, r.Status.NO, "No such mailbox", r.TRYCREATE)
        return None
    if started.size > session.service.config.imap.append_limit:
        session.conn.reject_literal()
        await session.tagged(started.tag, r.Status.NO, "Message too large", r.TOOBIG)
        return None
    account = session.account
    if account is not None and (
        account.storage_limit is not None or account.message_limit is not None
    ):
        usage = await session.store.quota_usage(account.id)
        problem = exceeded(usage, octets=started.size, messages=1)
        if problem is not None:
            session.conn.reject_literal()  # refused before the client sends the octets
            log_over_quota(session, "Append", f"{problem.name} (literal of {started.size} octets)")
            await session.tagged(started.tag, r.Status.NO, "Over quota", r.OVERQUOTA)
            return None
    continuation = session.conn.accept_literal()
    if continuation:
        await session.write(continuation)
    writer = session.store.blob_writer()
    # The whole literal must arrive within one command timeout: a trickling client is
    # cut however it spaces its octets (RFC 9051 §5.4; RELIABILITY.md test 12).
    deadline = session.loop.time() + session.command_timeout()
    try:
        while True:
            event = await session.next_event(max(deadline - session.loop.time(), 0.0))
            if isinstance(event, ev.AppendData):
                writer.write(event.data)
            elif isinstance(event, ev.AppendMessageEnd):
                break
            else:
                writer.abort()
                if isinstance(event, ev.AppendAborted | ev.BadCommand):
                    await session.tagged(
                        started.tag, r.Status.BAD, getattr(event, "text", "bad APPEND")
                    )
                return None
        ref = await writer.commit()
    except BaseException:
        writer.abort()
        raise
    return await received_item(session, mailbox.id, ref, started.flags, started.internal_date)


async def received_item(
    session: ImapSession,
    mailbox_id: MailboxId,
    ref: BlobRef,
    flags: Sequence[str],
    internal_date: dt.datetime | None,
) -> Received | imap_catenate.Refusal:
    """The item to store for a committed blob: its summary is parsed (large ones off
    the event loop) and its CRLF size computed; a Refusal ([LIMIT]) when the summary is
    over limits.MIME_SUMMARY_MAX, as port 25 refuses such a message with 552 5.3.4.
    Spec: RFC 9051 §6.3.12, §7.1 (LIMIT)."""
    from postel.server import imap_catenate

    content = ref.inline if ref.inline is not None else await session.store.read_blob(ref)
    if len(content) <= INLINE_PARSE_MAX:
        summary = parse_message(content).to_json()
    else:
        summary = await asyncio.to_thread(lambda: parse_message(content).to_json())
    if len(summary) > limits.MIME_SUMMARY_MAX:
        user = session.account.address if session.account is not None else ""
        log.info(
            "imap.append_refused",
            extra={"user": user, "reason": "mime_summary", "summary_octets": len(summary)},
        )
        return imap_catenate.Refusal("Message structure too large to store", r.LIMIT)
    when = internal_date or session.service.clock.now()
    # POP3 counts and sends lines ended by CRLF (RFC 1939 §11); remember that size
    # when this message's own line ends differ.
    crlf = pop3_size(content)
    return mailbox_id, ref, frozenset(flags), when, summary, crlf
