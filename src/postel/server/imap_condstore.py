"""CONDSTORE and QRESYNC in the IMAP driver: enabling, the SELECT/EXAMINE parameters,
the QRESYNC resynchronisation, and the MODSEQ and VANISHED parts of other commands.

CONDSTORE is enabled by ``ENABLE CONDSTORE`` or ``ENABLE QRESYNC`` or implicitly by
the first command that uses it (SELECT/EXAMINE (CONDSTORE), FETCH MODSEQ or
CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE, STATUS HIGHESTMODSEQ); when that
happens with a mailbox selected, the client is told its HIGHESTMODSEQ at once. From
then on every unsolicited FETCH carries MODSEQ. QRESYNC (only by ENABLE) turns
EXPUNGE responses into VANISHED and allows SELECT (QRESYNC ...) and UID FETCH
(CHANGEDSINCE n VANISHED).

The store gives every message a MODSEQ, every mailbox a HIGHESTMODSEQ and keeps every
expunged UID with the MODSEQ of its removal, so no mailbox answers ``[NOMODSEQ]``.

Spec: RFC 7162 §3.1 (enabling CONDSTORE), §3.1.2.1 (HIGHESTMODSEQ), §3.1.8 (SELECT
CONDSTORE), §3.2.3 (ENABLE QRESYNC), §3.2.5 (SELECT QRESYNC), §3.2.6 (VANISHED
modifier), §3.2.10 (VANISHED instead of EXPUNGE); RFC 5161 (ENABLE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from postel.imap import commands as cmd
from postel.imap import condstore as cs
from postel.imap import responses as r
from postel.imap import search
from postel.imap.fetch import render_flags
from postel.imap.fetch_items import FetchAttr
from postel.imap.grammar import ImapSyntaxError
from postel.imap.search_keys import ModseqKey, SearchKey
from postel.store import MailboxSnapshot

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession, Selected

__all__ = [
    "enable",
    "enable_condstore",
    "fetch_vanished",
    "note_command",
    "qresync_answer",
    "select_params",
    "uses_modseq_key",
]

CONDSTORE = "CONDSTORE"
QRESYNC = "QRESYNC"


def uses_modseq_key(key: SearchKey) -> bool:
    """True when the search key tree holds a MODSEQ key. Spec: RFC 7162 §3.1.5."""
    return any(isinstance(k, ModseqKey) for k in search.walk(key))


def _enables(command: cmd.Command) -> bool:
    """True for a command that enables CONDSTORE implicitly (SELECT is handled apart).
    Spec: RFC 7162 §3.1."""
    match command:
        case cmd.Fetch():
            return command.changed_since is not None or FetchAttr.MODSEQ in command.items
        case cmd.Store():
            return command.unchanged_since is not None
        case cmd.Search() | cmd.Sort() | cmd.Thread():
            return uses_modseq_key(command.key)
        case cmd.Status():
            return cmd.StatusItem.HIGHESTMODSEQ in command.items
        case cmd.List():
            return cmd.StatusItem.HIGHESTMODSEQ in (command.status_items or ())
    return False


async def note_command(session: ImapSession, command: cmd.Command) -> None:
    """Enable CONDSTORE if ``command`` is a CONDSTORE-enabling command."""
    if not session.condstore and _enables(command):
        await enable_condstore(session)


async def enable_condstore(session: ImapSession) -> None:
    """Turn CONDSTORE on; with a mailbox selected the client learns its HIGHESTMODSEQ
    (the MODSEQ the view has absorbed) in an untagged OK. Spec: RFC 7162 §3.1."""
    if session.condstore:
        return
    session.condstore = True
    if session.selected is not None:
        code = r.highestmodseq(session.selected.view.modseq)
        await session.write(r.untagged(r.Status.OK, "Highest", code))


async def enable(session: ImapSession, wanted: set[str]) -> list[str]:
    """The CONDSTORE part of ENABLE: QRESYNC implies CONDSTORE. Returns the names to
    report in ``* ENABLED`` (each named one, once). Spec: RFC 7162 §3.1, §3.2.3."""
    done: list[str] = []
    if wanted & {CONDSTORE, QRESYNC}:
        await enable_condstore(session)
    for name in (CONDSTORE, QRESYNC):
        if name in wanted and name not in session.enabled_names:
            done.append(name)
    if QRESYNC in wanted:
        session.qresync = True
    return done


async def select_params(session: ImapSession, command: cmd.Select) -> cs.QresyncParams | str | None:
    """Check the SELECT/EXAMINE parameters: CONDSTORE enables CONDSTORE; QRESYNC needs
    ``ENABLE QRESYNC`` first and is parsed. Returns the QRESYNC values (None without),
    or the text of a BAD answer. Spec: RFC 7162 §3.1.8, §3.2.5."""
    found: cs.QresyncParams | None = None
    for param in command.params:
        if param.name == CONDSTORE:
            if param.value is not None:
                return "CONDSTORE takes no value"
            session.condstore = True
        elif param.name == QRESYNC:
            if not session.qresync:
                return "QRESYNC parameter without ENABLE QRESYNC"
            try:
                found = cs.parse_qresync(param.value, command.tag)
            except ImapSyntaxError as exc:
                return str(exc)
        else:
            return f"unknown SELECT parameter {param.name[:30]}"
    return found


def qresync_answer(
    session: ImapSession,
    selected: Selected,
    params: cs.QresyncParams,
    snapshot: MailboxSnapshot,
    expunged: Sequence[int],
) -> bytes:
    """``* VANISHED (EARLIER)`` and ``* n FETCH (UID FLAGS MODSEQ)`` bringing a client
    that last saw ``params.modseq`` up to ``snapshot`` (nothing when the UIDVALIDITY
    differs: the client must resynchronise fully). ``expunged`` are the UIDs the store
    reports expunged above ``params.modseq``; those not below the snapshot's UIDNEXT,
    or still in it, belong to later sync points. Spec: RFC 7162 §3.2.5."""
    if params.uidvalidity != snapshot.uidvalidity:
        return b""
    view = selected.view
    gone = cs.known_vanished(params, snapshot.uidnext, expunged)
    out = [cs.vanished([u for u in gone if view.msn_of(u) is None], earlier=True)]
    for msn, (uid, flags, modseq) in enumerate(snapshot.messages, start=1):
        if modseq <= params.modseq:
            continue
        shown = selected.flags(uid, flags, session.rev2)
        items = [(b"UID", b"%d" % uid), (b"FLAGS", render_flags(shown)), cs.modseq_item(modseq)]
        out.append(r.fetch_response(msn, items))
    return b"".join(out)


async def fetch_vanished(
    session: ImapSession, selected: Selected, command: cmd.Fetch, since: int
) -> bytes:
    """``* VANISHED (EARLIER)`` for UID FETCH (CHANGEDSINCE ``since`` VANISHED): the
    UIDs of the command's set expunged above ``since`` that the client is not about
    to hear of as VANISHED at this command's sync point. Spec: RFC 7162 §3.2.6."""
    changes = await session.store.changes_since(selected.mailbox_id, since)
    if not changes.expunged:
        return b""
    view = selected.view
    largest = max(changes.uidnext - 1, view.uids[-1] if view.uids else 0, 1)
    asked = cs.UidRanges(command.sequence.resolve(largest))
    gone = [u for u in changes.expunged if u in asked and view.msn_of(u) is None]
    return cs.vanished(gone, earlier=True)
