"""Recently read SELECT snapshots, shared by the sessions of one process.

A snapshot of a large mailbox is every message's ``(uid, flags, modseq)``; reading it
is most of what SELECT costs. A snapshot is immutable and is reused for as long as the
mailbox's version (MailboxSnapshot.version: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the
recent mark) is the one it was read at: every change of the mailbox raises one of them,
whichever process or node made it, so a reused snapshot equals a fresh read. The
version itself is one row, read on every SELECT. A kept snapshot of an older version
is brought up to date from the changes since its HIGHESTMODSEQ (the store's
``snapshot_delta``) rather than read whole.

Spec: RFC 9051 §6.3.2 (SELECT); RFC 7162 §3.1.2 (HIGHESTMODSEQ).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from postel.ids import MailboxId
from postel.store.api import MailboxSnapshot

__all__ = ["SNAPSHOT_CACHE_MESSAGES", "SnapshotCache"]

SNAPSHOT_CACHE_MESSAGES = 100_000
"""Messages (summed over the snapshots) kept, least recently used dropped first. About
120 octets each: ~12 MB at most (local bound; RELIABILITY.md D7)."""


class SnapshotCache:
    """Snapshots by mailbox id, at most ``max_messages`` messages in all. Thread-safe
    (the store's reader threads use it)."""

    def __init__(self, max_messages: int = SNAPSHOT_CACHE_MESSAGES) -> None:
        self._max = max_messages
        self._held = 0
        self._items: OrderedDict[MailboxId, MailboxSnapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, mailbox_id: MailboxId) -> MailboxSnapshot | None:
        """The kept snapshot of ``mailbox_id``, of whatever version (the caller
        compares MailboxSnapshot.version)."""
        with self._lock:
            snapshot = self._items.get(mailbox_id)
            if snapshot is not None:
                self._items.move_to_end(mailbox_id)
            return snapshot

    def put(self, snapshot: MailboxSnapshot) -> None:
        """Keep ``snapshot`` (replacing an older one of its mailbox) unless it alone
        exceeds the bound."""
        size = len(snapshot.messages) + 1
        with self._lock:
            old = self._items.pop(snapshot.mailbox_id, None)
            if old is not None:
                self._held -= len(old.messages) + 1
            if size > self._max:
                return
            self._items[snapshot.mailbox_id] = snapshot
            self._held += size
            while self._held > self._max:
                _, dropped = self._items.popitem(last=False)
                self._held -= len(dropped.messages) + 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
