"""Mailbox changes reach other processes: two stores on one PostgreSQL database stand
for two postel nodes; a change committed through one wakes a subscriber of the other
(LISTEN/NOTIFY). On SQLite ``listen_for_changes`` does nothing and changes stay local."""

from __future__ import annotations

from pathlib import Path

import pytest

from postel.clock import FixedClock
from postel.store import Store, open_store
from postel.store.api import FlagMode, UidSet

from .test_contract import delivery, make_accounts, message, put_blob

pytestmark = pytest.mark.postgres


async def test_a_change_in_one_node_wakes_a_subscriber_in_another(
    pg_db_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    blobs = tmp_path / "blobs"
    first: Store = open_store(pg_db_url, blobs, clock=clock)
    second: Store = open_store(pg_db_url, blobs, clock=clock)
    await first.open()
    await second.open(recovery=False)
    try:
        await first.listen_for_changes()
        await second.listen_for_changes()
        (alice,) = await make_accounts(first, "alice")
        inbox = await first.get_mailbox(alice.id, "INBOX")
        assert inbox is not None
        async with first.changes.subscribe(inbox.id) as sub:
            # The listener connects in the background: retry until a publication lands.
            ref = await put_blob(second, message(1))
            for _ in range(50):
                await second.deliver([delivery(alice, ref)])
                if await sub.wait(0.2):
                    break
            else:
                pytest.fail("no notification from the other node")
            assert sub.highestmodseq >= 2
            await second.store_flags(inbox.id, UidSet.all(), FlagMode.ADD, frozenset({"\\Seen"}))
            assert await sub.wait(5.0)
    finally:
        await second.close()
        await first.close()
