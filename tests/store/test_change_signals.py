"""Change signals: coalescing, and a session taking the signal of its own write."""

from __future__ import annotations

import asyncio
import contextlib

from postel.ids import MailboxId
from postel.store.changes import ChangeHub

BOX = MailboxId(1)


async def test_signals_coalesce_and_consume_own_takes_only_its_own() -> None:
    hub = ChangeHub()
    async with hub.subscribe(BOX) as sub:
        assert sub.consume_own(5)  # nothing pending: nothing newer either
        hub.publish(BOX, 6)
        hub.publish(BOX, 7)
        assert sub.pending and sub.highestmodseq == 7  # one flag, the highest MODSEQ
        assert not sub.consume_own(6)  # 7 is newer than the caller's own write
        assert sub.pending
        assert sub.consume_own(7)
        assert not sub.pending
        hub.publish(MailboxId(2), 9)  # another mailbox's change is not this one's
        assert not sub.pending
        hub.publish(BOX, 8)
        assert sub.consume()
        assert not sub.consume()


async def test_waiting_for_a_signal_leaves_it_for_the_sync_that_asks_the_store() -> None:
    """IDLE waits with ``signalled`` and ends when DONE arrives: a waiter that ended in
    the same turn, or was cancelled, must not have taken the signal, or the sync after
    DONE would not ask the store (the change would miss IDLE's tagged OK)."""
    hub = ChangeHub()
    async with hub.subscribe(BOX) as sub:
        assert not await sub.signalled(0.01)  # nothing published: times out
        waiter = asyncio.create_task(sub.signalled(5))
        await asyncio.sleep(0)
        hub.publish(BOX, 3)
        assert await waiter
        assert sub.pending and sub.consume()  # still there for the sync
        cancelled = asyncio.create_task(sub.signalled(5))
        await asyncio.sleep(0)
        hub.publish(BOX, 4)
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        assert sub.consume()
