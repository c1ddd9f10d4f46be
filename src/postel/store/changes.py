"""In-process change signals per mailbox, for IMAP sessions waiting at sync points.

The store publishes ``(mailbox_id, highestmodseq)`` after every committed write to a
mailbox (deliveries, APPEND, STORE, EXPUNGE, COPY, MOVE, RENAME, DELETE). A session
subscribes to its selected mailbox and waits; on wake-up it asks the store for
``changes_since`` the MODSEQ it last saw. Signals are coalesced: a subscription holds
one flag and the highest MODSEQ published, never a queue, so memory per subscriber is
constant however fast the mailbox changes.

Other processes sharing a PostgreSQL database are reached through a ``ChangeRelay``:
the hub hands every local publication to the relay (e.g. ``NOTIFY``), and the relay's
listener calls ``ChangeHub.receive`` for publications of other processes.

Spec: RFC 9051 §5.2 (mailbox size and message status updates), §6.3.13 (IDLE is RFC
2177 in IMAP4rev1); RFC 7162 §3.1 (MODSEQ).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from postel.ids import MailboxId


class ChangeRelay(Protocol):
    """Carries local publications to other processes (e.g. PostgreSQL NOTIFY)."""

    def relay(self, mailbox_id: MailboxId, highestmodseq: int) -> None:
        """Forward one publication; must not block the event loop."""
        ...


class ChangeSubscription:
    """One subscriber's coalesced signal for one mailbox. Use on the event loop only."""

    def __init__(self, mailbox_id: MailboxId) -> None:
        self.mailbox_id = mailbox_id
        self.highestmodseq = 0
        """The highest MODSEQ published since the subscription began (0: none)."""
        self._event = asyncio.Event()

    @property
    def pending(self) -> bool:
        """True when something was published since the last ``wait`` returned True."""
        return self._event.is_set()

    def consume(self) -> bool:
        """Take the signal without waiting: True if something was published since the
        last ``wait``/``consume`` returned True."""
        was = self._event.is_set()
        self._event.clear()
        return was

    def consume_own(self, modseq: int) -> bool:
        """Take the signal if it announces nothing beyond ``modseq`` (the caller's own
        write, whose outcome it already holds); True when nothing newer is pending
        (the signal was taken, or there was none), False otherwise (left pending)."""
        if self._event.is_set() and self.highestmodseq > modseq:
            return False
        self._event.clear()
        return True

    def _signal(self, highestmodseq: int) -> None:
        self.highestmodseq = max(self.highestmodseq, highestmodseq)
        self._event.set()

    async def signalled(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for a publication, leaving the
        signal for ``consume``: True if one is pending, False on timeout. A waiter that
        is cancelled, or whose result is never looked at, so loses nothing."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for a publication; True if one
        came (the signal is then consumed), False on timeout."""
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return False
        self._event.clear()
        return True


class ChangeHub:
    """Publish/subscribe keyed by mailbox id, within one process.

    ``relay``: optional ChangeRelay that receives every local publication.
    Spec: RFC 9051 §5.2.
    """

    def __init__(self, relay: ChangeRelay | None = None) -> None:
        self._subscribers: dict[MailboxId, set[ChangeSubscription]] = {}
        self._relay = relay
        self._arrivals = asyncio.Event()

    def set_relay(self, relay: ChangeRelay | None) -> None:
        """Install (or remove) the relay to other processes."""
        self._relay = relay

    def publish(self, mailbox_id: MailboxId, highestmodseq: int, *, arrivals: bool = True) -> None:
        """Signal a committed change of ``mailbox_id`` locally and through the relay;
        ``arrivals=False`` says it added no message (a flag change), so background work
        on new messages (``wait_arrivals``) need not wake."""
        self._signal(mailbox_id, highestmodseq, arrivals=arrivals)
        if self._relay is not None:
            self._relay.relay(mailbox_id, highestmodseq)

    def receive(self, mailbox_id: MailboxId, highestmodseq: int) -> None:
        """Signal a change to local subscribers only (what a relay's listener calls; the
        relay does not say what changed, so it counts as a possible arrival)."""
        self._signal(mailbox_id, highestmodseq, arrivals=True)

    def _signal(self, mailbox_id: MailboxId, highestmodseq: int, *, arrivals: bool) -> None:
        if arrivals:
            self._arrivals.set()
        for subscription in self._subscribers.get(mailbox_id, ()):
            subscription._signal(highestmodseq)

    def take_arrivals(self) -> bool:
        """Whether a change that may have added messages came since the last look
        (then consumed), without waiting."""
        if not self._arrivals.is_set():
            return False
        self._arrivals.clear()
        return True

    async def wait_arrivals(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change of any mailbox that may have added
        messages (for background work on new messages, such as the full-text indexer);
        True if one came (then consumed)."""
        if not self._arrivals.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._arrivals.wait()
            except TimeoutError:
                return False
        return self.take_arrivals()

    def subscriber_count(self, mailbox_id: MailboxId) -> int:
        """Subscriptions open on ``mailbox_id`` (for tests and metrics)."""
        return len(self._subscribers.get(mailbox_id, ()))

    @contextlib.asynccontextmanager
    async def subscribe(self, mailbox_id: MailboxId) -> AsyncIterator[ChangeSubscription]:
        """A subscription to ``mailbox_id`` for the body of an ``async with``; removed
        on exit, and the mailbox's entry with its last subscriber."""
        subscription = ChangeSubscription(mailbox_id)
        self._subscribers.setdefault(mailbox_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            members = self._subscribers.get(mailbox_id)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._subscribers[mailbox_id]
