"""CONTEXT=SEARCH and CONTEXT=SORT: search and sort results the server keeps up to date.

A SEARCH or SORT with ``RETURN (UPDATE)`` leaves an `UpdateContext` on the selected
mailbox; at every sync point the session hands `sync_contexts` the view's updates and
the UIDs the store reported changed, and each context answers with unsolicited
``* ESEARCH (TAG "t") REMOVEFROM (...) ADDTO (...)``:

* expunged messages leave a result in a REMOVEFROM sent before the EXPUNGE responses,
  so the sequence numbers in it are still the client's;
* changed and new messages are searched again (only they: flags are the only mutable
  attributes, and no sort key reads them, so a sorted result only gains or loses
  members and never reorders) and the difference is reported.

SEARCH contexts report position 0 (their result is ordered by number, the client can
place the numbers itself); SORT contexts report the 1-based position in the sorted
result, one pair per contiguous run, applied in order: removals from the last run to
the first, additions from the first to the last. Contexts end with CANCELUPDATE or
when the mailbox is deselected (they live on ``Selected``).

Spec: RFC 5267 §4.1 (UPDATE), §4.2 (CANCELUPDATE, NOUPDATE), §4.3 (ADDTO, REMOVEFROM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from postel.imap import commands as cmd
from postel.imap import responses as r
from postel.imap.search_keys import SearchKey
from postel.imap.sort import SortCriterion, SortKey, SortRecord, sort_records
from postel.imap.view import Expunge, ViewUpdate
from postel.server.imap_scan import (
    Hit,
    SearchTooCostly,
    TextBudget,
    needs_summary,
    run_ordering,
    scan,
    sort_record,
)

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession, Selected

__all__ = [
    "CONTEXT_UPDATES_MAX",
    "ContextSet",
    "UpdateContext",
    "cancel_update",
    "register",
    "sync_contexts",
]

CONTEXT_UPDATES_MAX = 10
"""Searches with RETURN (UPDATE) one session keeps up to date at once; one more is
answered without updates and ``* NO [NOUPDATE "tag"]``. Each costs a search of the
changed messages at every sync point. Local policy (RFC 5267 §4.2 lets a server
refuse with NOUPDATE; RELIABILITY.md D7)."""

_Runs = list[tuple[int, list[int]]]
_Numbering = Callable[[int], int]


@dataclass(slots=True)
class UpdateContext:
    """One kept result: the command's ``tag``, ``uid`` (numbers are UIDs), search
    ``key``, sort ``criteria`` (None for SEARCH) and the result as UIDs in result
    order. ``records`` holds the sort records of the result (SORT only), numbered by
    UID so that ties keep message order however the mailbox is renumbered."""

    tag: str
    uid: bool
    key: SearchKey
    criteria: tuple[SortCriterion, ...] | None
    uids: list[int]
    records: dict[int, SortRecord] = field(default_factory=dict)


class ContextSet:
    """The UpdateContexts of one selected mailbox, at most CONTEXT_UPDATES_MAX."""

    __slots__ = ("_contexts",)

    def __init__(self) -> None:
        self._contexts: list[UpdateContext] = []

    def __bool__(self) -> bool:
        return bool(self._contexts)

    def __iter__(self) -> Iterator[UpdateContext]:
        return iter(list(self._contexts))

    def has(self, tag: str) -> bool:
        """True when a context with ``tag`` is active."""
        return any(c.tag == tag for c in self._contexts)

    @property
    def full(self) -> bool:
        """True when no further context may be added."""
        return len(self._contexts) >= CONTEXT_UPDATES_MAX

    def add(self, context: UpdateContext) -> None:
        """Keep ``context`` (the caller checked ``full`` and ``has``)."""
        self._contexts.append(context)

    def cancel(self, tag: str) -> bool:
        """Drop the context with ``tag``; False when there is none."""
        for i, c in enumerate(self._contexts):
            if c.tag == tag:
                del self._contexts[i]
                return True
        return False


def register(
    selected: Selected,
    tag: str,
    *,
    uid: bool,
    key: SearchKey,
    uids: Sequence[int],
    criteria: tuple[SortCriterion, ...] | None = None,
    records: Sequence[SortRecord] = (),
) -> bytes:
    """Keep a new context; returns b"" or the ``* NO [NOUPDATE "tag"]`` response to
    send when the session holds CONTEXT_UPDATES_MAX already. ``records`` (SORT) are
    the result's sort records. Spec: RFC 5267 §4.1, §4.2."""
    contexts = selected.contexts
    if contexts.full:
        return r.untagged(r.Status.NO, "Too many updating searches", r.noupdate(tag))
    keyed = {rec.uid: _by_uid(rec) for rec in records}
    contexts.add(UpdateContext(tag, uid, key, criteria, list(uids), keyed))
    return b""


def _by_uid(record: SortRecord) -> SortRecord:
    return replace(record, seq=record.uid)


async def cancel_update(
    session: ImapSession, selected: Selected, command: cmd.CancelUpdate
) -> None:
    """CANCELUPDATE: end the named contexts; NO when a tag names none.
    Spec: RFC 5267 §4.2."""
    unknown = [tag for tag in command.tags if not selected.contexts.cancel(tag)]
    if unknown:
        await session.tagged(command.tag, r.Status.NO, "Unknown update tag")
        return
    await session.tagged(command.tag, r.Status.OK, "CANCELUPDATE completed")


async def sync_contexts(
    session: ImapSession, updates: list[ViewUpdate], changed: Sequence[int]
) -> None:
    """Write the view's ``updates`` with the context updates around them: REMOVEFROM
    for expunged members first, then the updates, then what searching the ``changed``
    UIDs again adds or removes. Spec: RFC 5267 §4.3, RFC 9051 §7.5.1."""
    selected = session.selected
    assert selected is not None
    expunged = {u.uid: u.msn for u in updates if isinstance(u, Expunge)}
    out: list[bytes] = []
    if expunged:
        for context in selected.contexts:
            gone = [u for u in context.uids if u in expunged]
            if gone:
                numbering = _identity if context.uid else expunged.__getitem__
                removed = _remove(context, set(gone), numbering)
                out.append(r.esearch_update(context.tag, uid=context.uid, removefrom=removed))
    if out:
        await session.write(b"".join(out))
    await session.write_updates(updates)
    view = selected.view
    pairs = sorted((msn, u) for u in set(changed) if (msn := view.msn_of(u)) is not None)
    if not pairs:
        return
    out = []
    budget = TextBudget(session.service.config.imap.search_text_max)  # for them all
    for context in selected.contexts:
        out.append(await _research(session, selected, context, pairs, budget))
    text = b"".join(out)
    if text:
        await session.write(text)


async def _research(
    session: ImapSession,
    selected: Selected,
    context: UpdateContext,
    pairs: list[tuple[int, int]],
    budget: TextBudget,
) -> bytes:
    """Search the changed messages again; the update for ``context`` (b"" if none).
    ``budget`` is shared by the re-searches of one sync point: the one that passes it
    ends its context, ``* NO [NOUPDATE]``.
    Spec: RFC 5267 §4.2 (the server may stop updating at any time)."""
    view = selected.view
    keys = frozenset(c.key for c in context.criteria or ())
    try:
        hits = await scan(
            session,
            selected,
            context.key,
            pairs=pairs,
            with_summary=needs_summary(keys),
            budget=budget,
        )
    except SearchTooCostly:
        selected.contexts.cancel(context.tag)
        return r.untagged(
            r.Status.NO, "Search too costly to keep up to date", r.noupdate(context.tag)
        )
    matched = {h.uid: h for h in hits}
    member = set(context.uids)
    changed = {u for _, u in pairs}
    lost = (changed & member) - matched.keys()
    gained = [h for h in hits if h.uid not in member]

    def number(uid: int) -> int:
        return uid if context.uid else view.msn_of(uid) or 0

    removed = _remove(context, lost, number) if lost else []
    added = await _add(context, gained, keys, number) if gained else []
    return r.esearch_update(context.tag, uid=context.uid, removefrom=removed, addto=added)


def _remove(context: UpdateContext, gone: set[int], number: _Numbering) -> _Runs:
    """Drop ``gone`` from the result; the REMOVEFROM pairs, last run first."""
    if context.criteria is None:
        context.uids = [u for u in context.uids if u not in gone]
        return [(0, sorted(number(u) for u in gone))]
    runs = _runs([i for i, u in enumerate(context.uids) if u in gone])
    pairs = [(start + 1, [number(u) for u in context.uids[start:stop]]) for start, stop in runs]
    context.uids = [u for u in context.uids if u not in gone]
    for u in gone:
        context.records.pop(u, None)
    pairs.reverse()
    return pairs


async def _add(
    context: UpdateContext, gained: list[Hit], keys: frozenset[SortKey], number: _Numbering
) -> _Runs:
    """Insert ``gained`` into the result; the ADDTO pairs, first run first."""
    new = {h.uid for h in gained}
    if context.criteria is None:
        context.uids = sorted(set(context.uids) | new)
        return [(0, sorted(number(u) for u in new))]
    for h in gained:
        context.records[h.uid] = sort_record(h, keys, seq=h.uid)
    records = list(context.records.values())
    criteria = context.criteria
    ordered = await run_ordering(lambda: sort_records(records, criteria), len(records))
    context.uids = [rec.uid for rec in ordered]
    runs = _runs([i for i, u in enumerate(context.uids) if u in new])
    return [(start + 1, [number(u) for u in context.uids[start:stop]]) for start, stop in runs]


def _identity(uid: int) -> int:
    return uid


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Ascending indexes grouped into ``[start, stop)`` runs of consecutive values."""
    out: list[tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out
