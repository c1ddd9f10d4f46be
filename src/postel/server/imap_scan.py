"""Searching the selected mailbox for SEARCH, SORT, THREAD and context updates, and
turning the matching messages into SORT and THREAD records.

``scan`` evaluates a search key over the view's messages (or some of them) in batches
of ``limits.IMAP_FETCH_BATCH`` rows, so a large mailbox is read a batch at a time and
the event loop runs between batches. Message octets are read only when the key needs
them, one message at a time. THREAD=REFERENCES needs the References field, which the
stored summary does not hold: only the header section of each message is read (the
summary gives its length), streamed, so a large message is never loaded whole.

CPU-bound ordering of many records (``run_ordering``) goes to a worker thread past
``ORDER_INLINE_MAX`` records.

Spec: RFC 9051 §6.4.4 (SEARCH), RFC 5256 §3 (SORT, THREAD), RFC 5267 §3, §4.4 (ESORT,
PARTIAL), RFC 5957 §3 (DISPLAYFROM, DISPLAYTO).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from postel import limits
from postel.errors import LocalProtocolError, NotFound
from postel.imap import commands as cmd
from postel.imap import responses as r
from postel.imap import search
from postel.imap.search_keys import AllKey, SearchKey
from postel.imap.sort import SortKey, SortRecord, first_display, first_mailbox
from postel.imap.thread import ThreadRecord, message_ids, reference_ids
from postel.mail import MessageSummary
from postel.mail.date import parse_date
from postel.mail.envelope import field_text
from postel.mail.header import decode_encoded_words, find_header_end, split_header
from postel.server.imap_fulltext import narrow
from postel.store import StoredMessage
from postel.store.api import UidSet

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession, Selected

__all__ = [
    "INLINE_SUMMARY_MAX",
    "ORDER_INLINE_MAX",
    "SCAN_INLINE_MAX",
    "Hit",
    "SearchTooCostly",
    "TextBudget",
    "esearch_answer",
    "load_summary",
    "run_ordering",
    "scan",
    "sort_record",
    "thread_record",
]

SCAN_INLINE_MAX = 1024 * 1024
"""Octets of scanning (the message read once, plus the message per BODY or TEXT key and
its header section per HEADER-type key) a search may do on the event loop for one
message; more is done in a worker thread. A key tree of many keys over a large message
or header could otherwise hold the event loop for seconds, serving no other session.
In the thread the loop still gets the interpreter between two scans."""
ORDER_INLINE_MAX = 2000
"""Records sorted or threaded on the event loop; more go to a worker thread. Measured
on the 2-core reference machine: sorting 2,000 records by SUBJECT (base subject and
casemap per record, the costliest key) takes about 6 ms, by six keys 8 ms, and
threading 2,000 messages 7 ms (REFERENCES) to 10 ms (ORDEREDSUBJECT): about what one
command may hold the loop for without delaying other sessions noticeably
(RELIABILITY.md test 12: p99 < 100 ms for a control client). The thread hand-off
costs about 0.1 ms, so smaller inputs stay inline where it would dominate."""
INLINE_SUMMARY_MAX = 16 * 1024
"""Stored summaries (JSON characters) up to this size are decoded on the event loop;
larger ones (messages with thousands of MIME parts) in a worker thread."""

_T = TypeVar("_T")
_RESULT_OPTIONS = frozenset(
    {
        cmd.SearchReturn.MIN,
        cmd.SearchReturn.MAX,
        cmd.SearchReturn.ALL,
        cmd.SearchReturn.COUNT,
        cmd.SearchReturn.PARTIAL,
    }
)
_CHEAP_SORT_KEYS = frozenset({SortKey.ARRIVAL, SortKey.SIZE})


class SearchTooCostly(Exception):
    """A search would read more message text for its text keys than ``[imap]
    search_text_max`` allows one command (the command is answered NO [LIMIT]).
    Spec: RFC 5530 §3 (LIMIT)."""


@dataclass(slots=True)
class TextBudget:
    """Octets of message text still allowed to the text keys of one command (``[imap]
    search_text_max``), or of all the re-searches of one sync point together: each
    BODY or TEXT key costs the size of every message it is read for, each HEADER,
    FROM..SUBJECT key the size of that message's header section.
    Spec: RFC 5530 §3 (LIMIT); RELIABILITY.md D7."""

    limit: int
    spent: int = 0

    def spend(self, octets: int) -> None:
        """Count ``octets``; SearchTooCostly once the total passes ``limit``."""
        self.spent += octets
        if self.spent > self.limit:
            raise SearchTooCostly(f"search reads more than {self.limit} octets of text")


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching message: sequence number, UID, its row (None when the scan was
    asked for none and the full-text index answered alone) and (when asked for or
    read anyway) its summary."""

    msn: int
    uid: int
    message: StoredMessage | None
    summary: MessageSummary | None

    @property
    def row(self) -> StoredMessage:
        """The message's row. Raises LocalProtocolError for a hit scanned without rows."""
        if self.message is None:
            raise LocalProtocolError("search hit scanned without its row")
        return self.message


async def load_summary(message: StoredMessage, *, envelope_only: bool = False) -> MessageSummary:
    """The row's summary (``envelope_only``: without its MIME tree, see
    MessageSummary.from_json); large ones are decoded in a worker thread. Raises
    ProtocolError for a summary that does not decode."""
    if len(message.summary) <= INLINE_SUMMARY_MAX:
        return MessageSummary.from_json(message.summary, envelope_only=envelope_only)
    return await asyncio.to_thread(
        functools.partial(MessageSummary.from_json, envelope_only=envelope_only),
        message.summary,
    )


async def scan(
    session: ImapSession,
    selected: Selected,
    key: SearchKey,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    with_summary: bool = False,
    rows: bool = True,
    budget: TextBudget | None = None,
) -> list[Hit]:
    """The messages of ``pairs`` (``(msn, uid)``, ascending; default: every message
    of the view) that match ``key``, in that order. Messages expunged meanwhile are
    skipped (unless the full-text index answered for them alone: their UIDs are still
    in the session's view). ``with_summary`` loads every hit's summary; ``rows`` False
    lets a hit the index answered for come without its row (``Hit.message`` None).
    Messages outside a sequence set AND-ed at the top of ``key`` are skipped unread, and
    so is any message for which the rest of the key decides the answer whatever its text
    says (``search.decide_without_text``): only those count against the bound below.
    Raises SearchTooCostly, before the text keys scan the message past the bound, when
    they would read more than ``budget`` allows (default: a TextBudget of ``[imap]
    search_text_max`` for this call alone).
    Spec: RFC 9051 §6.4.4; RFC 5530 §3 (LIMIT)."""
    view = selected.view
    if budget is None:
        budget = TextBudget(session.service.config.imap.search_text_max)
    ctx = search.SearchContext(
        largest_msn=view.exists,
        largest_uid=view.uids[-1] if view.uids else 0,
        recent_uids=frozenset(selected.recent),
        saved_uids=selected.saved,
    )
    if pairs is None:
        pairs = list(enumerate(view.uids, start=1))
    required = search.required_sequences(key)
    if required:  # messages outside a top-level sequence set are never read
        pairs = [
            (msn, uid)
            for msn, uid in pairs
            if all(search.in_sequence(s, msn, uid, ctx) for s in required)
        ]
    narrowed = await narrow(session.store, selected.mailbox_id, key, pairs)  # full-text index
    full = _Test.of(key, with_summary)
    rest = _Test.of(narrowed.residual, with_summary)
    known = narrowed.known if rest.trivial and not (rows or with_summary) else frozenset()
    hits: list[Hit] = []
    size = limits.IMAP_FETCH_BATCH
    for start in range(0, len(narrowed.pairs), size):
        batch = narrowed.pairs[start : start + size]
        wanted = [u for _, u in batch if u not in known]
        found = (
            await session.store.fetch_messages(selected.mailbox_id, UidSet.of(wanted))
            if wanted
            else []
        )
        by_uid = {m.uid: m for m in found}
        for msn, uid in batch:
            if uid in known:
                hits.append(Hit(msn, uid, None, None))
                continue
            m = by_uid.get(uid)
            if m is None:
                continue
            test = rest if uid in narrowed.known else full
            summary = await load_summary(m) if test.needs_summary else None
            source = search.SearchSource(
                msn,
                uid,
                m.flags,
                m.internal_date,
                m.size,
                summary,
                m.trace_prefix,
                None,
                m.modseq,
                save_date=m.save_date,
            )
            decided = True if test.trivial else search.decide_without_text(test.key, source, ctx)
            if decided is not None:  # the text cannot change the answer: not read
                matched = decided
            else:
                budget.spend(test.text_keys * m.size)  # known before reading
                try:
                    data = await session.store.read_message(selected.mailbox_id, uid)
                except NotFound:
                    continue
                work = len(data) + test.text_keys * len(data)
                if test.header_keys:
                    header_octets = test.header_keys * find_header_end(data)[1]
                    budget.spend(header_octets)
                    work += header_octets
                source = dataclasses.replace(source, data=data)
                if work > SCAN_INLINE_MAX:
                    matched = await asyncio.to_thread(search.evaluate, test.key, source, ctx)
                else:
                    matched = search.evaluate(test.key, source, ctx)
            if matched:
                hits.append(Hit(msn, uid, m, summary))
    return hits


@dataclass(frozen=True, slots=True)
class _Test:
    """A key to evaluate and what evaluating it reads."""

    key: SearchKey
    needs_summary: bool
    trivial: bool
    text_keys: int
    """BODY and TEXT keys in ``key``: scans of the message text per evaluation."""
    header_keys: int
    """HEADER-type keys in ``key``: scans of the header section per evaluation."""

    @classmethod
    def of(cls, key: SearchKey, with_summary: bool) -> _Test:
        return cls(
            key,
            with_summary or search.needs_summary(key),
            isinstance(key, AllKey),
            search.text_key_count(key),
            search.header_key_count(key),
        )


async def run_ordering(function: Callable[[], _T], count: int) -> _T:
    """Run ``function`` (a sort or threading of ``count`` records) inline, or in a
    worker thread when ``count`` exceeds ORDER_INLINE_MAX."""
    if count <= ORDER_INLINE_MAX:
        return function()
    return await asyncio.to_thread(function)


def needs_summary(keys: frozenset[SortKey]) -> bool:
    """True when sorting by ``keys`` reads the ENVELOPE (anything but ARRIVAL, SIZE)."""
    return bool(keys - _CHEAP_SORT_KEYS)


def sort_record(hit: Hit, keys: frozenset[SortKey], *, seq: int | None = None) -> SortRecord:
    """The SortRecord of ``hit``, with only the fields ``keys`` read filled in.
    ``seq`` replaces the sequence number (context records order by UID).
    Spec: RFC 5256 §3, RFC 5957 §3."""
    m = hit.row
    number = hit.msn if seq is None else seq
    env = hit.summary.envelope if hit.summary is not None else None
    if env is None:
        return SortRecord(number, hit.uid, m.internal_date, None, m.size)
    return SortRecord(
        number,
        hit.uid,
        m.internal_date,
        parse_date(env.date) if SortKey.DATE in keys and env.date else None,
        m.size,
        subject=_subject(env.subject) if SortKey.SUBJECT in keys else "",
        from_mailbox=first_mailbox(env.from_) if SortKey.FROM in keys else None,
        to_mailbox=first_mailbox(env.to) if SortKey.TO in keys else None,
        cc_mailbox=first_mailbox(env.cc) if SortKey.CC in keys else None,
        from_display=first_display(env.from_) if SortKey.DISPLAYFROM in keys else None,
        to_display=first_display(env.to) if SortKey.DISPLAYTO in keys else None,
    )


def _subject(raw: bytes | None) -> str:
    return decode_encoded_words(raw) if raw else ""


async def thread_record(
    session: ImapSession, selected: Selected, hit: Hit, *, references: bool
) -> ThreadRecord | None:
    """The ThreadRecord of ``hit`` (its summary loaded); with ``references`` the
    References field is read from the message header. None when the message was
    expunged meanwhile. Spec: RFC 5256 §2.2, §4."""
    summary = hit.summary if hit.summary is not None else await load_summary(hit.row)
    env = summary.envelope
    sent = parse_date(env.date) if env.date else None
    ids = message_ids(env.message_id) if env.message_id else ()
    refs: tuple[str, ...] = ()
    if references:
        try:
            header = await _header_section(session, selected, hit.row, summary)
        except NotFound:
            return None
        refs = reference_ids(field_text(split_header(header), b"References"), env.in_reply_to)
    return ThreadRecord(
        hit.msn,
        hit.uid,
        sent if sent is not None else hit.row.internal_date,
        _subject(env.subject),
        ids[0] if ids else None,
        refs,
    )


async def _header_section(
    session: ImapSession, selected: Selected, m: StoredMessage, summary: MessageSummary
) -> bytes:
    """The stored message's octets up to the end of its header section (trace prefix
    included), streamed so that the body is not read. Raises NotFound."""
    body = summary.body
    want = len(m.trace_prefix) + body.header_offset + body.header_length
    out = bytearray()
    chunks = session.store.open_message(selected.mailbox_id, m.uid)
    try:
        async for chunk in chunks:
            out += chunk
            if len(out) >= want:
                break
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return bytes(out[:want])


def esearch_answer(
    tag: str,
    *,
    uid: bool,
    returns: tuple[cmd.SearchReturn, ...],
    partial: cmd.PartialRange | None,
    numbers: Sequence[int],
    ordered: bool,
    modseq: int | None = None,
) -> bytes:
    """The ``* ESEARCH`` answer to SEARCH or SORT with RETURN. ``numbers`` is the
    result in its order (ascending for SEARCH; sort order when ``ordered``). Without
    any result option (MIN MAX ALL COUNT PARTIAL) ALL is meant. MIN and MAX of a
    sorted result are its first and last message. ``modseq`` (a search with the MODSEQ
    key) is appended as ``MODSEQ n`` when something was found.
    Spec: RFC 4731 §3.1, RFC 5267 §3 (ESORT), §4.4, RFC 9394 §3.2 (PARTIAL),
    RFC 7162 §3.1.5 (MODSEQ)."""
    options = set(returns)
    if not options & _RESULT_OPTIONS:
        options.add(cmd.SearchReturn.ALL)
    found = bool(numbers)
    first = numbers[0] if found and ordered else min(numbers, default=0)
    last = numbers[-1] if found and ordered else max(numbers, default=0)
    picked: tuple[str, Sequence[int]] | None = None
    if partial is not None:
        start, stop = partial.pick(len(numbers))
        picked = (partial.text(), numbers[start:stop])
    return r.esearch(
        tag,
        uid=uid,
        minimum=first if found and cmd.SearchReturn.MIN in options else None,
        maximum=last if found and cmd.SearchReturn.MAX in options else None,
        all_numbers=numbers if cmd.SearchReturn.ALL in options else None,
        count=len(numbers) if cmd.SearchReturn.COUNT in options else None,
        ordered=ordered,
        partial=picked,
        modseq=modseq if found else None,
    )
