"""MailboxView: one session's picture of its selected mailbox.

A session numbers the messages it knows 1..n (message sequence numbers) and learns about
other sessions' changes only at sync points. The view holds the UIDs the client knows,
their flags, and what it has not been told yet; ``update`` turns the store's change
report into the untagged responses that bring the client up to date, in an order the
client can apply one by one (each EXPUNGE renumbers the messages after it).

While a command that uses message sequence numbers runs (FETCH, STORE, SEARCH, COPY,
MOVE without UID), expunges are held back (``allow_expunge=False``): numbers must not
shift under the client. New messages (EXISTS) and flag changes are still reported,
which keeps every number the client holds valid.

Spec: RFC 9051 §2.3.1.2 (message sequence numbers), §5.2 (mailbox size and message
status updates), §7.5.1 (EXPUNGE), §7.4.1 (EXISTS), §7.5.2 (FETCH FLAGS).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from postel.imap.sequence import SequenceSet

__all__ = ["Exists", "Expunge", "FlagsChanged", "MailboxView", "ViewUpdate"]


@dataclass(frozen=True, slots=True)
class Exists:
    """``* n EXISTS``: the mailbox now holds ``count`` messages."""

    count: int


@dataclass(frozen=True, slots=True)
class Expunge:
    """``* msn EXPUNGE``: the message numbered ``msn`` (before this response) is gone."""

    msn: int
    uid: int


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """``* msn FETCH (UID uid FLAGS (...) [MODSEQ (m)])`` for a change made elsewhere."""

    msn: int
    uid: int
    flags: frozenset[str]
    modseq: int


ViewUpdate = Exists | Expunge | FlagsChanged
"""An untagged response the view asks the driver to send, in order."""


class MailboxView:
    """The selected mailbox as this session's client knows it.

    ``uids`` is ascending; the message sequence number of ``uids[i]`` is ``i + 1``.
    ``modseq`` is the highest MODSEQ the view has absorbed (the argument of the next
    ``changes_since``). Cost: lookups O(log n) with bisect; an expunge O(n) (list
    deletion), which is what the client's renumbering costs too.

    Spec: RFC 9051 §2.3.1.2, §5.2.
    """

    __slots__ = (
        "_flag_map",
        "_given",
        "_pending_expunge",
        "modseq",
        "read_only",
        "uids",
        "uidvalidity",
    )

    def __init__(
        self,
        uidvalidity: int,
        messages: Iterable[tuple[int, frozenset[str], int]],
        modseq: int,
        *,
        read_only: bool = False,
    ) -> None:
        """``messages`` are ``(uid, flags, modseq)`` in ascending UID order. The
        UID-to-flags map is built on first use (a large mailbox's SELECT needs only the
        UIDs)."""
        self.uidvalidity = uidvalidity
        given = messages if isinstance(messages, tuple) else tuple(messages)
        self._given: tuple[tuple[int, frozenset[str], int], ...] | None = given
        self._flag_map: dict[int, frozenset[str]] | None = None
        self.uids: list[int] = [m[0] for m in given]
        self.modseq = modseq
        self.read_only = read_only
        self._pending_expunge: set[int] = set()

    # -- lookups -------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        """The number of messages the client knows (EXISTS)."""
        return len(self.uids)

    def msn_of(self, uid: int) -> int | None:
        """The sequence number of ``uid``, or None if the client does not know it."""
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def uid_of(self, msn: int) -> int:
        """The UID of sequence number ``msn`` (1-based). Raises IndexError if out of range."""
        if not 1 <= msn <= len(self.uids):
            raise IndexError(msn)
        return self.uids[msn - 1]

    def flags_of(self, uid: int) -> frozenset[str]:
        """The flags the client was last told for ``uid`` (empty if unknown)."""
        return self._flags.get(uid, frozenset())

    @property
    def _flags(self) -> dict[int, frozenset[str]]:
        if self._flag_map is None:
            given = self._given or ()
            self._flag_map = {uid: flags for uid, flags, _ in given}
            self._given = None
        return self._flag_map

    @property
    def has_pending_expunge(self) -> bool:
        """True when expunges are held back for the next sync point that allows them."""
        return bool(self._pending_expunge)

    def is_expunged(self, uid: int) -> bool:
        """True when ``uid`` is gone from the store but the client was not told yet."""
        return uid in self._pending_expunge

    def select(self, sequence: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """``(msn, uid)`` of the messages ``sequence`` names, ascending.

        With ``uid=False`` the set holds sequence numbers (``*`` = the last one); numbers
        beyond ``exists`` are not returned — the caller decides whether that is an error
        (RFC 9051 §9: an out-of-range sequence number is invalid). With ``uid=True`` the
        set holds UIDs (``*`` = the highest UID) and UIDs the client does not know are
        skipped (RFC 9051 §6.4.9).
        """
        if not self.uids:
            return []
        if uid:
            ranges = sequence.resolve(self.uids[-1])
            if len(ranges) == 1:  # one UID or one range: a client's usual request
                lo, hi = ranges[0]
                a = bisect.bisect_left(self.uids, lo)
                b = bisect.bisect_right(self.uids, hi)
                return [(i + 1, self.uids[i]) for i in range(a, b)]
            picked: set[int] = set()
            for lo, hi in ranges:
                a = bisect.bisect_left(self.uids, lo)
                b = bisect.bisect_right(self.uids, hi)
                picked.update(range(a, b))
            return [(i + 1, self.uids[i]) for i in sorted(picked)]
        numbers = _RangeSet(sequence, len(self.uids))
        return [(n, self.uids[n - 1]) for n in numbers.members(len(self.uids))]

    def out_of_range(self, sequence: SequenceSet) -> bool:
        """True when a sequence-number set names a number above ``exists`` (or any
        number in an empty mailbox). Spec: RFC 9051 §9 (seq-number)."""
        largest = len(self.uids)
        return any(hi > largest or lo < 1 for lo, hi in sequence.resolve(largest))

    # -- changes -------------------------------------------------------------------------

    def update(
        self,
        changed: Sequence[tuple[int, frozenset[str], int]],
        expunged: Sequence[int],
        highestmodseq: int,
        *,
        allow_expunge: bool,
    ) -> list[ViewUpdate]:
        """Absorb a change report; return the untagged responses to send, in order.

        ``changed`` holds ``(uid, flags, modseq)`` of every message added or modified
        since ``self.modseq`` (ascending UID), ``expunged`` the UIDs removed since then.
        Order of the result: EXPUNGEs (when allowed: held ones first), then one EXISTS
        if messages were added, then FETCH FLAGS for known messages whose flags differ
        from what the client was told. A message both added and expunged since the last
        update is never mentioned.
        """
        out: list[ViewUpdate] = []
        gone = set(expunged) | self._pending_expunge
        if allow_expunge:
            out.extend(self._expunge(gone))
            self._pending_expunge = set()
        else:
            self._pending_expunge = {u for u in gone if self.msn_of(u) is not None}
        top = self.uids[-1] if self.uids else 0
        added = [(u, f) for u, f, _ in changed if u > top and u not in gone]
        for u, f in added:
            self.uids.append(u)
            self._flags[u] = f
        if added:
            out.append(Exists(len(self.uids)))
        added_uids = {u for u, _ in added}
        for u, f, m in changed:
            if u in added_uids or u in gone:
                continue
            msn = self.msn_of(u)
            if msn is not None and self._flags.get(u) != f:
                self._flags[u] = f
                out.append(FlagsChanged(msn, u, f, m))
        self.modseq = max(self.modseq, highestmodseq)
        return out

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Record flags the client was told directly (a FETCH in reply to its own STORE)."""
        if uid in self._flags:
            self._flags[uid] = flags

    def _expunge(self, gone: set[int]) -> list[Expunge]:
        out: list[Expunge] = []
        # Descending order keeps every reported number valid without renumbering work
        # for the client: removing the highest first leaves lower numbers unchanged.
        for uid in sorted(gone, reverse=True):
            msn = self.msn_of(uid)
            if msn is None:
                continue
            del self.uids[msn - 1]
            self._flags.pop(uid, None)
            out.append(Expunge(msn, uid))
        return out


class _RangeSet:
    """Membership in a resolved sequence set, ranges sorted for early exit."""

    __slots__ = ("_ranges",)

    def __init__(self, sequence: SequenceSet, largest: int) -> None:
        self._ranges = sorted(sequence.resolve(largest))

    def members(self, largest: int) -> list[int]:
        seen: set[int] = set()
        for lo, hi in self._ranges:
            seen.update(range(max(lo, 1), min(hi, largest) + 1))
        return sorted(seen)
