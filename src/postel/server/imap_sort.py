"""SORT, UID SORT, THREAD and UID THREAD on the selected mailbox.

The search runs as for SEARCH (``imap_scan.scan``, in batches); the records of the
matching messages are built from the stored summaries, and the ordering itself runs in
a worker thread when there are more than ``imap_scan.ORDER_INLINE_MAX`` of them.
SORT with RETURN is answered by ESEARCH (ESORT), may ask for a PARTIAL range and for
UPDATE (CONTEXT=SORT). As with SEARCH, the sequence-number forms hold expunges back.

Spec: RFC 5256 §3 (SORT, THREAD), §4 (responses); RFC 5267 §3 (ESORT), §4
(CONTEXT=SORT, PARTIAL); RFC 5957 (SORT=DISPLAY); RFC 9394 §3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap import commands as cmd
from postel.imap import responses as r
from postel.imap.sort import sort_records
from postel.imap.thread import ThreadAlgorithm, ThreadRecord, format_threads, thread_messages
from postel.server import imap_context
from postel.server.imap_scan import (
    esearch_answer,
    needs_summary,
    run_ordering,
    scan,
    sort_record,
    thread_record,
)

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession, Selected

__all__ = ["sort_command", "thread_command"]


async def sort_command(session: ImapSession, selected: Selected, command: cmd.Sort) -> None:
    """SORT / UID SORT, answered ``* SORT`` or, with RETURN, ``* ESEARCH``.
    Spec: RFC 5256 §3, RFC 5267 §3, §4."""
    returns = command.returns
    updating = returns is not None and cmd.SearchReturn.UPDATE in returns
    if updating and selected.contexts.has(command.tag):
        await session.tagged(command.tag, r.Status.BAD, "Duplicate update tag")
        return
    keys = frozenset(c.key for c in command.criteria)
    hits = await scan(session, selected, command.key, with_summary=needs_summary(keys))
    records = [sort_record(h, keys) for h in hits]
    criteria = command.criteria
    ordered = await run_ordering(lambda: sort_records(records, criteria), len(records))
    numbers = [rec.uid if command.uid else rec.seq for rec in ordered]
    if returns is None:
        await session.write(r.sort(numbers))
    else:
        answer = esearch_answer(
            command.tag,
            uid=command.uid,
            returns=returns,
            partial=command.partial,
            numbers=numbers,
            ordered=True,
        )
        if updating:
            answer += imap_context.register(
                selected,
                command.tag,
                uid=command.uid,
                key=command.key,
                uids=[rec.uid for rec in ordered],
                criteria=criteria,
                records=ordered,
            )
        await session.write(answer)
    await session.sync(allow_expunge=command.uid)
    await session.tagged(command.tag, r.Status.OK, "SORT completed")


async def thread_command(session: ImapSession, selected: Selected, command: cmd.Thread) -> None:
    """THREAD / UID THREAD, answered ``* THREAD``. Spec: RFC 5256 §3, §4."""
    hits = await scan(session, selected, command.key, with_summary=True)
    references = command.algorithm is ThreadAlgorithm.REFERENCES
    records: list[ThreadRecord] = []
    for hit in hits:
        record = await thread_record(session, selected, hit, references=references)
        if record is not None:
            records.append(record)
    algorithm, use_uid = command.algorithm, command.uid
    text = await run_ordering(
        lambda: format_threads(thread_messages(algorithm, records), use_uid=use_uid),
        len(records),
    )
    await session.write(r.thread(text))
    await session.sync(allow_expunge=command.uid)
    await session.tagged(command.tag, r.Status.OK, "THREAD completed")
