"""CONDSTORE and QRESYNC values: the QRESYNC SELECT/EXAMINE parameter, the VANISHED
response, the MODSEQ FETCH item and the resynchronisation a QRESYNC SELECT answers.

Sans-IO: the driver reads the store's change report (``Store.changes_since``) and
passes it here; these functions decide what the client is told and render the bytes.

Bounds: ``known-uids`` and each set of the message sequence match data are sequence
sets, so they hold at most ``sequence.SEQUENCE_RANGES_MAX`` elements each (and the
whole command at most ``limits.LINE_MAX`` octets); the two match sets must name
the same number of messages, at most ``QRESYNC_SEQ_MATCH_MAX``. A VANISHED answer
is written as merged UID ranges, split so that no response line is longer than
``VANISHED_LINE_MAX`` octets whatever the number of UIDs.

Spec: RFC 7162 §3.1 (CONDSTORE), §3.1.4 (MODSEQ), §3.2.5 (QRESYNC parameter),
§3.2.5.1 (known-uids), §3.2.5.2 (message sequence match data), §3.2.6 (VANISHED
UID FETCH modifier), §3.2.10 (VANISHED response), §4 (line lengths), §7 (ABNF).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from postel.imap.grammar import Cursor, ImapSyntaxError
from postel.imap.sequence import STAR, SequenceSet

__all__ = [
    "QRESYNC_SEQ_MATCH_MAX",
    "VANISHED_LINE_MAX",
    "QresyncParams",
    "UidRanges",
    "known_vanished",
    "modseq_item",
    "parse_qresync",
    "uid_ranges",
    "vanished",
]

QRESYNC_SEQ_MATCH_MAX = 100_000
"""Most messages the message sequence match data of a QRESYNC parameter may name (the
known-sequence-set and the known-uid-set each). Clients send a sample, e.g. every
2^n-th message (RFC 7162 §3.2.5.2), so this is generous; larger is BAD (local bound,
RELIABILITY.md D7)."""
VANISHED_LINE_MAX = 8000
"""Octets of UID-set text in one VANISHED response: a longer set is sent as several
responses, so a client line buffer of 8192 octets always holds one. Spec: RFC 7162
§4 (line-length recommendation of 8192 octets), §3.2.10 (several VANISHED are fine)."""

_MODSEQ_MAX = 2**63 - 1
"""``mod-sequence-value`` is a 63-bit unsigned number. Spec: RFC 7162 §7."""


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """``QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)])``.

    ``known_uids`` None means every UID below UIDNEXT; ``seq_match`` is the pair
    (known-sequence-set, known-uid-set). Spec: RFC 7162 §3.2.5, §7 (select-param).
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


def parse_qresync(value: str | None, tag: str | None = None) -> QresyncParams:
    """Parse the raw value of the QRESYNC SELECT parameter.

    Raises ImapSyntaxError (BAD) for a missing value, bad numbers or sets, ``$``, or
    match data whose two sets name a different number of messages (or more than
    QRESYNC_SEQ_MATCH_MAX). Spec: RFC 7162 §3.2.5, §3.2.5.2, §7.
    """
    if value is None:
        raise ImapSyntaxError("QRESYNC needs (uidvalidity modseq ...)", tag)
    cur = Cursor([value.encode("ascii", "replace")])
    cur.tag = tag
    cur.open()
    uidvalidity = cur.nz_number()
    cur.sp()
    modseq = cur.number(_MODSEQ_MAX)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if cur.take(b" ") and cur.peek() != 0x28:
        known = _set(cur)
        cur.take(b" ")
    if cur.peek() == 0x28:
        cur.open()
        seqs = _set(cur)
        cur.sp()
        uids = _set(cur)
        cur.close()
        count = _count(seqs)
        if count != _count(uids) or count > QRESYNC_SEQ_MATCH_MAX:
            raise cur.error("QRESYNC sequence match sets differ in size or are too large")
        match = (seqs, uids)
    cur.close()
    cur.end()
    return QresyncParams(uidvalidity, modseq, known, match)


def _set(cur: Cursor) -> SequenceSet:
    found = cur.sequence_set()
    if found.saved or any(STAR in pair for pair in found.ranges):
        raise cur.error("QRESYNC sets take numbers only")
    return found


def _count(numbers: SequenceSet) -> int:
    return sum(hi - lo + 1 for lo, hi in numbers.resolve(0))


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of ``uids`` (duplicates allowed)."""
    ordered = sorted(set(uids))
    out: list[tuple[int, int]] = []
    for uid in ordered:
        if out and uid == out[-1][1] + 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


def vanished(uids: Iterable[int], *, earlier: bool) -> bytes:
    """``* VANISHED [(EARLIER)] 1:3,7`` for ``uids`` (any order), as merged ranges,
    several responses when the set text would pass VANISHED_LINE_MAX; b"" for none.
    Spec: RFC 7162 §3.2.10, §7 (expunged-resp)."""
    head = b"* VANISHED (EARLIER) " if earlier else b"* VANISHED "
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for lo, hi in uid_ranges(uids):
        text = b"%d" % lo if lo == hi else b"%d:%d" % (lo, hi)
        if parts and size + 1 + len(text) > VANISHED_LINE_MAX:
            out.append(head + b",".join(parts) + b"\r\n")
            parts, size = [], 0
        parts.append(text)
        size += len(text) + 1
    if parts:
        out.append(head + b",".join(parts) + b"\r\n")
    return b"".join(out)


def modseq_item(modseq: int) -> tuple[bytes, bytes]:
    """The FETCH data item ``MODSEQ (n)``. Spec: RFC 7162 §3.1.4.1, §7 (fetch-mod-resp)."""
    return b"MODSEQ", b"(%d)" % modseq


class UidRanges:
    """Membership in a set of UIDs given as (possibly overlapping) ranges: merged once,
    then each test is a binary search."""

    __slots__ = ("_lows", "_spans")

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        spans: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if spans and lo <= spans[-1][1] + 1:
                spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
            else:
                spans.append((lo, hi))
        self._spans = spans
        self._lows = [lo for lo, _ in spans]

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect.bisect_right(self._lows, uid) - 1
        return i >= 0 and self._spans[i][0] <= uid <= self._spans[i][1]


def known_vanished(params: QresyncParams, uidnext: int, expunged: Iterable[int]) -> list[int]:
    """The UIDs of ``expunged`` (removed above ``params.modseq``) a QRESYNC SELECT
    reports in ``* VANISHED (EARLIER)``: those within ``known_uids`` (all below
    ``uidnext`` without it). The match data only helps servers that forget expunged
    UIDs; this store keeps every one, so the answer is exact without it.
    Spec: RFC 7162 §3.2.5, §3.2.5.1, §3.2.5.2."""
    if params.known_uids is None:
        return [u for u in expunged if u < uidnext]
    known = UidRanges(params.known_uids.resolve(max(uidnext - 1, 1)))
    return [u for u in expunged if u < uidnext and u in known]
