"""Change signals: coalescing, and a session taking the signal of its own write."""

from __future__ import annotations

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
