"""Settles written together (one transaction for concurrent ``Store.settle`` calls):
each keeps the meaning it has alone, on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt

from postel.clock import FixedClock
from postel.smtp.params import Notify
from postel.store import Store
from postel.store.queue_api import Outcome, RecipientState

from .test_queue_contract import enqueue, lease, recipient_states


async def test_many_concurrent_settles_record_each_outcome(store: Store, clock: FixedClock) -> None:
    for n in range(30):
        await enqueue(store, f"M{n}", f"u{n}@d{n % 3}.example")
    now = clock.now()
    leases = await lease(store, now, limit=30)
    assert len(leases) == 30
    kinds = [Outcome.delivered("250 ok"), Outcome.deferred("451 later"), Outcome.failed("550 no")]
    results = await asyncio.gather(
        *(store.settle(ls, {ls.recipients[0].id: kinds[i % 3]}, now) for i, ls in enumerate(leases))
    )
    assert all(r.settled == (ls.recipients[0].id,) for r, ls in zip(results, leases, strict=True))
    expected = [RecipientState.DELIVERED, RecipientState.DEFERRED, RecipientState.FAILED]
    for i, ls in enumerate(leases):
        entry = await store.queue_show(ls.message.queue_id)
        assert entry is not None
        (r,) = entry.recipients
        assert r.state is expected[i % 3]
        assert r.attempts == (1 if i % 3 == 1 else 0)
        assert r.last_reply == kinds[i % 3].reply
    deferred = [ls for i, ls in enumerate(leases) if i % 3 == 1]
    again = await lease(store, now + dt.timedelta(minutes=5), limit=30)
    assert sorted(ls.message.queue_id for ls in again) == sorted(
        ls.message.queue_id for ls in deferred
    )


async def test_a_lease_settled_twice_in_one_batch_counts_once(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "T1", "b@example.net")
    now = clock.now()
    (held,) = await lease(store, now)
    rid = held.recipients[0].id
    first, second = await asyncio.gather(
        store.settle(held, {rid: Outcome.delivered("250 ok")}, now),
        store.settle(held, {rid: Outcome.failed("550 no")}, now),
    )
    assert first.settled == (rid,) and second.lost == (rid,)
    entry = await store.queue_show("T1")
    assert entry is not None and entry.recipients[0].last_reply == "250 ok"


async def test_an_expired_lease_loses_to_its_successor_in_one_batch(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "X1", "b@example.net")
    now = clock.now()
    (crashed,) = await store.lease("w1", now, limit=5, lease_for=60, per_domain_max=5)
    later = now + dt.timedelta(seconds=61)
    (taken,) = await lease(store, later, worker="w2")
    rid = taken.recipients[0].id
    late, current = await asyncio.gather(
        store.settle(crashed, {rid: Outcome.failed("550 late")}, later),
        store.settle(taken, {rid: Outcome.delivered("250 ok")}, later),
    )
    assert late.lost == (rid,) and current.settled == (rid,)
    assert await recipient_states(store, "X1") == {"b@example.net": RecipientState.DELIVERED}


async def test_success_reports_passed_on_in_a_batch(store: Store, clock: FixedClock) -> None:
    both = frozenset({Notify.SUCCESS, Notify.FAILURE})
    await enqueue(store, "P1", "a@example.net", notify=both)
    await enqueue(store, "P2", "b@example.net", notify=frozenset({Notify.SUCCESS}))
    await enqueue(store, "P3", "c@example.net", notify=both)
    now = clock.now()
    leases = {ls.message.queue_id: ls for ls in await lease(store, now)}
    outcomes = {"P1": Outcome.delivered(), "P2": Outcome.delivered(), "P3": Outcome.deferred("4")}
    await asyncio.gather(
        *(
            store.settle(
                ls,
                {ls.recipients[0].id: outcomes[q]},
                now,
                dsn_passed_on=[ls.recipients[0].id],
            )
            for q, ls in leases.items()
        )
    )
    notify = {}
    for q in ("P1", "P2", "P3"):
        entry = await store.queue_show(q)
        assert entry is not None
        notify[q] = entry.recipients[0].notify
    assert notify == {
        "P1": frozenset({Notify.FAILURE}),
        "P2": frozenset({Notify.NEVER}),
        "P3": both,  # not delivered: its success is still ours to report
    }


async def test_handed_back_leases_are_due_at_once(store: Store, clock: FixedClock) -> None:
    for n in range(3):
        await enqueue(store, f"H{n}", f"u{n}@example.net")
    now = clock.now()
    leases = await lease(store, now)
    results = await asyncio.gather(*(store.settle(ls, {}, now) for ls in leases))
    assert all(len(r.settled) == 1 for r in results)
    again = await lease(store, now)
    assert sorted(ls.message.queue_id for ls in again) == ["H0", "H1", "H2"]
    assert all(r.attempts == 0 and r.last_reply is None for ls in again for r in ls.recipients)
