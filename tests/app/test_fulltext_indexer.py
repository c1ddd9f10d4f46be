"""The background full-text indexer yields to deliveries: while mail keeps arriving it
indexes at most FULLTEXT_BUSY_SHARE of the time, and at full speed otherwise.

Spec: none (postel's scheduling of its own background work; RFC 9051 §6.4.4 SEARCH is
answered whether or not the index has caught up)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.app.build import FULLTEXT_BUSY_SHARE, fulltext_indexer, indexing_pause, quiet_period
from postel.ids import MailboxId
from postel.store.changes import ChangeHub

BATCH_S = 0.02


class _Store:
    """Ten batches of pending messages, each taking BATCH_S; with ``busy`` a delivery
    arrives during every batch."""

    def __init__(self, busy: bool) -> None:
        self.changes = ChangeHub()
        self.busy = busy
        self.left = 10
        self.done = asyncio.Event()

    async def index_pending(self) -> int:
        if self.left == 0:
            self.done.set()
            return 0
        await asyncio.sleep(BATCH_S)
        if self.busy:
            self.changes.publish(MailboxId(1), 1)
        self.left -= 1
        return 50


async def _catch_up(busy: bool) -> float:
    store = _Store(busy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(fulltext_indexer(store))  # type: ignore[arg-type]
    await asyncio.wait_for(store.done.wait(), 10)
    elapsed = loop.time() - started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return elapsed


async def test_a_catch_up_while_mail_arrives_takes_its_share_of_the_time_only() -> None:
    quiet = await _catch_up(busy=False)
    busy = await _catch_up(busy=True)
    assert quiet < 10 * BATCH_S * 2
    assert busy >= 10 * BATCH_S / FULLTEXT_BUSY_SHARE * 0.9


@given(st.one_of(st.just(0.0), st.floats(1e-9, 10)), st.booleans(), st.floats(0.05, 1))
def test_the_pause_keeps_indexing_at_its_share(
    batch_s: float, arrivals: bool, share: float
) -> None:
    pause = indexing_pause(batch_s, arrivals, share)
    if not arrivals or batch_s == 0:
        assert pause == 0
    else:
        assert batch_s / (batch_s + pause) == pytest.approx(share)


async def _publish_every(changes: ChangeHub, period_s: float, until_s: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + until_s
    while loop.time() < end:
        changes.publish(MailboxId(1), 1)
        await asyncio.sleep(period_s)


@pytest.mark.parametrize(
    ("arrivals_for_s", "at_least_s", "at_most_s"),
    [
        (0.0, 0.05, 0.2),  # nothing arrives: one quiet interval
        (0.12, 0.12, 0.4),  # a burst: a quiet interval after it ends
        (10.0, 0.4, 0.7),  # mail never stops: the lag bound
    ],
)
async def test_the_indexer_waits_for_a_quiet_interval_within_the_lag_bound(
    arrivals_for_s: float, at_least_s: float, at_most_s: float
) -> None:
    changes = ChangeHub()
    loop = asyncio.get_running_loop()
    publisher = asyncio.create_task(_publish_every(changes, 0.005, arrivals_for_s))
    await asyncio.sleep(0)
    started = loop.time()
    await quiet_period(changes, loop, quiet_s=0.05, lag_max_s=0.4)
    elapsed = loop.time() - started
    publisher.cancel()
    assert at_least_s <= elapsed <= at_most_s
