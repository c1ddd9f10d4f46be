"""The outbound queue contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from postel import limits
from postel.clock import FixedClock
from postel.errors import NotFound, StoreError
from postel.smtp.params import Notify, Orcpt, Ret
from postel.store import BlobRef, Store, open_store
from postel.store.queue_api import (
    BackoffPolicy,
    Lease,
    NewQueuedMessage,
    NewRecipient,
    Outcome,
    QueueFilter,
    QueueRecipientId,
    RecipientState,
)
from postel.store.schema import queue_recipients

from .conftest import T0
from .test_contract import age_files

HOUR = 3600.0
TRACE = b"Received: from client.example.net by mx.example.org; Sun, 29 Nov 2026\r\n"


def body(n: int, size: int = 600) -> bytes:
    head = f"From: a@example.org\r\nSubject: queued {n}\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head) - 2) + b"\r\n"


async def put_blob(store: Store, data: bytes) -> BlobRef:
    writer = store.blob_writer()
    writer.write(data)
    return await writer.commit()


def rcpt(address: str, notify: frozenset[Notify] | None = None) -> NewRecipient:
    return NewRecipient(address, address.rpartition("@")[2].lower(), notify=notify)


async def enqueue(
    store: Store,
    queue_id: str,
    *addresses: str,
    sender: str = "a@example.org",
    data: bytes | None = None,
    notify: frozenset[Notify] | None = None,
) -> int:
    ref = await put_blob(store, data if data is not None else body(len(queue_id)))
    message = NewQueuedMessage(queue_id, ref, sender, trace_prefix=TRACE)
    return await store.enqueue(message, [rcpt(a, notify) for a in addresses])


async def read_all(store: Store, message_id: int) -> bytes:
    from postel.store.queue_api import QueueMessageId

    return b"".join([c async for c in store.open_queued_message(QueueMessageId(message_id))])


def states(leases: list[Lease] | tuple[Lease, ...]) -> list[tuple[str, tuple[str, ...]]]:
    return [(lease.domain, tuple(r.address for r in lease.recipients)) for lease in leases]


async def lease(
    store: Store, now: dt.datetime, *, worker: str = "w1", limit: int = 10, per_domain: int = 10
) -> list[Lease]:
    got = await store.lease(worker, now, limit=limit, lease_for=600, per_domain_max=per_domain)
    return list(got)


async def recipient_states(store: Store, queue_id: str) -> dict[str, RecipientState]:
    entry = await store.queue_show(queue_id)
    assert entry is not None
    return {r.address: r.state for r in entry.recipients}


# -- backoff (pure) ------------------------------------------------------------------------


def test_backoff_schedule_grows_to_a_cap() -> None:
    policy = BackoffPolicy()
    assert [policy.interval(n) for n in (1, 2, 3, 4, 5, 6)] == [
        300.0,
        600.0,
        1200.0,
        2400.0,
        4800.0,
        9600.0,
    ]
    assert policy.interval(7) == 4 * HOUR
    assert policy.interval(10_000) == 4 * HOUR
    assert policy.next_attempt(1, T0) == T0 + dt.timedelta(minutes=5)
    assert policy.expires(T0) == T0 + dt.timedelta(days=5)
    assert policy.delay_notice_due(T0) == T0 + dt.timedelta(hours=4)


def test_backoff_is_configurable_and_checked() -> None:
    policy = BackoffPolicy(first_retry=60, factor=3, max_interval=600, lifetime=86400)
    assert [policy.interval(n) for n in (1, 2, 3, 4)] == [60.0, 180.0, 540.0, 600.0]
    with pytest.raises(ValueError):
        BackoffPolicy(first_retry=0)
    with pytest.raises(ValueError):
        BackoffPolicy(factor=0.5)
    with pytest.raises(ValueError):
        BackoffPolicy(first_retry=600, max_interval=60)


# -- life cycle ----------------------------------------------------------------------------


async def test_enqueue_lease_settle_life_cycle(store: Store, clock: FixedClock) -> None:
    data = body(1)
    mid = await enqueue(store, "Q1", "b@example.net", "c@Example.NET", "d@example.com", data=data)
    assert await read_all(store, mid) == TRACE + data
    now = clock.now()
    leases = await lease(store, now)
    assert sorted(states(leases)) == [
        ("example.com", ("d@example.com",)),
        ("example.net", ("b@example.net", "c@Example.NET")),
    ]
    assert await lease(store, now, worker="w2") == []
    assert all(r.state is RecipientState.LEASED for ls in leases for r in ls.recipients)
    net = next(ls for ls in leases if ls.domain == "example.net")
    com = next(ls for ls in leases if ls.domain == "example.com")
    assert net.message.queue_id == "Q1" and net.message.size == len(TRACE) + len(data)
    b, c = net.recipients
    done = await store.settle(
        net,
        {b.id: Outcome.delivered("250 2.0.0 ok"), c.id: Outcome.deferred("451 4.7.1 later")},
        now,
    )
    assert set(done.settled) == {b.id, c.id} and done.lost == ()
    (d,) = com.recipients
    await store.settle(com, {d.id: Outcome.failed("550 5.1.1 no such user")}, now)
    assert await recipient_states(store, "Q1") == {
        "b@example.net": RecipientState.DELIVERED,
        "c@Example.NET": RecipientState.DEFERRED,
        "d@example.com": RecipientState.FAILED,
    }
    entry = await store.queue_show("Q1")
    assert entry is not None
    deferred = next(r for r in entry.recipients if r.address == "c@Example.NET")
    assert deferred.attempts == 1 and deferred.next_attempt == now + dt.timedelta(minutes=5)
    assert deferred.last_reply == "451 4.7.1 later"
    assert await store.finished_messages() == []

    assert await lease(store, now + dt.timedelta(seconds=299)) == []
    later = now + dt.timedelta(seconds=300)
    (again,) = await lease(store, later)
    assert states([again]) == [("example.net", ("c@Example.NET",))]
    await store.settle(again, {again.recipients[0].id: Outcome.delivered("250 ok")}, later)

    (finished,) = await store.finished_messages()
    assert finished.message.id == mid
    assert [(r.address, r.last_reply) for r in finished.failed] == [
        ("d@example.com", "550 5.1.1 no such user")
    ]
    assert finished.delivered_with_notice == ()
    assert await store.forget_finished([finished.message.id]) == 1
    assert await store.queue_show("Q1") is None


async def test_dsn_parameters_are_kept(store: Store) -> None:
    ref = await put_blob(store, body(2))
    message = NewQueuedMessage(
        "Q2", ref, "a@example.org", envid="env-1", ret=Ret.HDRS, smtputf8=True, requiretls=True
    )
    recipient = NewRecipient(
        "b@example.net",
        "example.net",
        notify=frozenset({Notify.SUCCESS, Notify.FAILURE}),
        orcpt=Orcpt("rfc822", "B@example.net"),
    )
    never = NewRecipient("c@example.net", "example.net", notify=frozenset())
    await store.enqueue(message, [recipient, never])
    entry = await store.queue_show("Q2")
    assert entry is not None
    m = entry.message
    assert (m.envid, m.ret, m.smtputf8, m.requiretls) == ("env-1", Ret.HDRS, True, True)
    first, second = entry.recipients
    assert first.orcpt == Orcpt("rfc822", "B@example.net")
    assert first.notify == frozenset({Notify.SUCCESS, Notify.FAILURE})
    assert first.wants(Notify.SUCCESS) and not first.wants(Notify.DELAY)
    assert second.notify == frozenset({Notify.NEVER}) and not second.wants(Notify.FAILURE)


async def test_enqueue_is_idempotent_and_checked(store: Store) -> None:
    first = await enqueue(store, "Q3", "b@example.net")
    assert await enqueue(store, "Q3", "b@example.net") == first
    ref = await put_blob(store, body(3))
    with pytest.raises(StoreError):
        await store.enqueue(NewQueuedMessage("Q4", ref, ""), [])
    with pytest.raises(StoreError):
        await store.enqueue(NewQueuedMessage("Q4", ref, ""), [NewRecipient("b@X.net", "X.net")])
    with pytest.raises(NotFound):
        await store.enqueue(NewQueuedMessage("Q4", BlobRef("0" * 64, 5), ""), [rcpt("b@x.net")])
    with pytest.raises(StoreError):
        await store.lease("", T0, limit=1, lease_for=60, per_domain_max=1)


async def test_deferral_past_the_lifetime_fails(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q5", "b@example.net")
    policy = BackoffPolicy(first_retry=HOUR, factor=1, max_interval=HOUR, lifetime=3 * HOUR)
    now = clock.now()
    seen = []
    for _ in range(10):
        leases = await lease(store, now)
        if not leases:
            break
        (held,) = leases
        seen.append(now)
        await store.settle(held, {held.recipients[0].id: Outcome.deferred("421")}, now, policy)
        entry = await store.queue_show("Q5")
        assert entry is not None
        now = entry.recipients[0].next_attempt
    assert seen == [T0 + dt.timedelta(hours=h) for h in range(4)]
    assert await recipient_states(store, "Q5") == {"b@example.net": RecipientState.FAILED}


# -- leases --------------------------------------------------------------------------------


async def test_expired_lease_returns_and_the_old_settle_is_lost(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "Q6", "b@example.net")
    now = clock.now()
    (crashed,) = await store.lease("w1", now, limit=5, lease_for=60, per_domain_max=5)
    assert await lease(store, now + dt.timedelta(seconds=59), worker="w2") == []
    later = now + dt.timedelta(seconds=61)
    (taken,) = await lease(store, later, worker="w2")
    rid = taken.recipients[0].id
    assert rid == crashed.recipients[0].id and taken.worker == "w2"
    late = await store.settle(crashed, {rid: Outcome.delivered()}, later)
    assert late.settled == () and late.lost == (rid,)
    assert (await store.settle(taken, {rid: Outcome.delivered()}, later)).settled == (rid,)
    assert (await store.settle(taken, {rid: Outcome.delivered()}, later)).lost == (rid,)


async def test_leases_of_a_gone_worker_are_released_at_once(
    store: Store, clock: FixedClock
) -> None:
    """A killed worker's leases stop counting against the domain and are due now, not
    when they would have run out (RELIABILITY.md D2); a live worker's stay."""
    await enqueue(store, "Q6a", "b@example.net")
    await enqueue(store, "Q6b", "c@example.org")
    now = clock.now()
    (dead,) = await store.lease("node:1", now, limit=1, lease_for=HOUR, per_domain_max=1)
    (alive,) = await store.lease("node:2", now, limit=1, lease_for=HOUR, per_domain_max=1)
    assert await store.lease_holders() == ["node:1", "node:2"]
    assert await store.release_leases([]) == 0
    assert await store.release_leases(["node:1"]) == 1
    (again,) = await lease(store, now, worker="node:3")
    assert again.recipients[0].id == dead.recipients[0].id
    assert again.recipients[0].attempts == dead.recipients[0].attempts  # fate unknown
    assert await store.lease_holders() == ["node:2", "node:3"]
    assert alive.worker == "node:2"


async def test_late_settle_counts_when_nobody_took_over(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q7", "b@example.net")
    now = clock.now()
    (held,) = await store.lease("w1", now, limit=5, lease_for=60, per_domain_max=5)
    rid = held.recipients[0].id
    done = await store.settle(held, {rid: Outcome.delivered()}, now + dt.timedelta(hours=1))
    assert done.settled == (rid,)
    assert await lease(store, now + dt.timedelta(hours=2)) == []


async def test_recipients_without_outcome_return_at_once(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q8", "b@example.net", "c@example.net")
    now = clock.now()
    (held,) = await lease(store, now)
    b, _c = held.recipients
    await store.settle(held, {b.id: Outcome.delivered()}, now)
    (again,) = await lease(store, now)
    assert [r.address for r in again.recipients] == ["c@example.net"]
    with pytest.raises(StoreError):
        await store.settle(again, {QueueRecipientId(b.id + 1000): Outcome.delivered()}, now)


async def test_two_stores_never_lease_the_same_recipient(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    """Thirty concurrent leases through two stores never share a recipient and never
    split one message's recipients at one domain over two leases. A lease skips rows
    another one holds locked (SKIP LOCKED on PostgreSQL), so a busy round may leave a
    few groups, whole, for the next: one more lease afterwards takes exactly the rest."""
    other = open_store(database_url, blob_dir, clock=clock)
    await other.open(recovery=False)
    try:
        for round_ in range(3):  # new domains each round: earlier leases stay live
            for i in range(40):
                await enqueue(
                    store,
                    f"QC{round_}x{i}",
                    f"r{i}@d{i}.r{round_}.example",
                    f"s{i}@d{i}.r{round_}.example",
                )
            now = clock.now()
            calls = [
                (store if i % 2 else other).lease(
                    f"w{i}", now, limit=3, lease_for=600, per_domain_max=1
                )
                for i in range(30)
            ]
            results = list(await asyncio.gather(*calls))
            results.append(
                await store.lease("w-last", now, limit=40, lease_for=600, per_domain_max=1)
            )
            leases = [ls for found in results for ls in found]
            assert all(len(ls.recipients) == 2 for ls in leases), "a group was split"
            ids = [r.id for ls in leases for r in ls.recipients]
            assert len(ids) == len(set(ids)) == 80
            assert len({ls.domain for ls in leases}) == len(leases) == 40
    finally:
        await other.close()


async def test_a_group_another_transaction_holds_in_part_is_not_leased_in_part(
    store: Store, database_url: str, clock: FixedClock
) -> None:
    """PostgreSQL: while another transaction holds one recipient row of a message at a
    domain (a concurrent lease claimed it as a candidate), a lease leaves the whole group
    for later instead of leasing the other recipients alone."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks held by another transaction: PostgreSQL")
    await enqueue(store, "QP1", "r1@split.example", "s1@split.example")
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(
                queue_recipients.select()
                .where(queue_recipients.c.address == "r1@split.example")
                .with_for_update()
            ).all()
            held = await store.lease("w1", clock.now(), limit=5, lease_for=600, per_domain_max=1)
            assert held == []
        (whole,) = await store.lease("w2", clock.now(), limit=5, lease_for=600, per_domain_max=1)
        assert sorted(r.address for r in whole.recipients) == [
            "r1@split.example",
            "s1@split.example",
        ]
    finally:
        engine.dispose()


async def test_per_domain_limit(store: Store, clock: FixedClock) -> None:
    for i in range(6):
        await enqueue(store, f"QD{i}", f"r{i}@busy.example")
    await enqueue(store, "QE", "x@quiet.example")
    now = clock.now()
    first = await lease(store, now, limit=10, per_domain=2)
    assert sorted(ls.domain for ls in first) == ["busy.example", "busy.example", "quiet.example"]
    assert await lease(store, now, limit=10, per_domain=2) == []
    busy = next(ls for ls in first if ls.domain == "busy.example")
    await store.settle(busy, {busy.recipients[0].id: Outcome.delivered()}, now)
    (more,) = await lease(store, now, limit=10, per_domain=2)
    assert more.domain == "busy.example"


async def test_fresh_mail_first_behind_a_deferred_backlog(
    store: Store, database_url: str, clock: FixedClock
) -> None:
    backlog = [f"r{i}@d{i % 50}.example" for i in range(1000)]
    for n in range(10):
        await enqueue(store, f"QB{n}", *backlog[n * 100 : (n + 1) * 100])
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(queue_recipients).values(
                    state=RecipientState.DEFERRED.value,
                    attempts=3,
                    next_attempt=T0 - dt.timedelta(hours=1),
                )
            )
    finally:
        engine.dispose()
    clock.advance(60)
    await enqueue(store, "QF", "new@d7.example")
    (got,) = await lease(store, clock.now(), limit=1, per_domain=1000)
    assert got.message.queue_id == "QF"
    rest = await lease(store, clock.now(), limit=5, per_domain=1000)
    assert len(rest) == 5 and all(ls.message.queue_id.startswith("QB") for ls in rest)


# -- operator commands ---------------------------------------------------------------------


async def test_hold_release_retry_delete(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "QH", "b@example.net", "c@example.com")
    await enqueue(store, "QK", "d@example.org")
    assert await store.queue_hold("QH") == 2
    now = clock.now()
    assert [ls.message.queue_id for ls in await lease(store, now)] == ["QK"]
    held = await store.queue_list(QueueFilter(state=RecipientState.HELD))
    assert [e.message.queue_id for e in held] == ["QH"]
    assert await store.queue_release("QH") == 2
    leases = await lease(store, now)
    assert sorted(ls.domain for ls in leases) == ["example.com", "example.net"]
    for ls in leases:
        await store.settle(ls, {ls.recipients[0].id: Outcome.deferred("451")}, now)
    assert await lease(store, now) == []
    assert await store.queue_retry_now("QH") == 2
    assert len(await lease(store, now)) == 2
    assert [e.message.queue_id for e in await store.queue_list()] == ["QH", "QK"]
    assert [
        e.message.queue_id for e in await store.queue_list(QueueFilter(domain="EXAMPLE.org"))
    ] == ["QK"]
    await store.queue_delete("QH")
    assert await store.queue_show("QH") is None
    with pytest.raises(NotFound):
        await store.queue_delete("QH")
    with pytest.raises(NotFound):
        await store.queue_hold("nope")


async def test_flush_retries_everything(store: Store, clock: FixedClock) -> None:
    for i in range(3):
        await enqueue(store, f"QL{i}", f"b@d{i}.example")
    now = clock.now()
    for ls in await lease(store, now):
        await store.settle(ls, {ls.recipients[0].id: Outcome.deferred("451")}, now)
    assert await store.queue_retry_now() == 3
    assert len(await lease(store, now)) == 3


# -- notices -------------------------------------------------------------------------------


async def test_delay_notices_after_four_hours(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "QN1", "b@example.net")
    await enqueue(store, "QN2", "c@example.net", notify=frozenset({Notify.SUCCESS}))
    await enqueue(store, "QN3", "d@example.net", sender="")
    await enqueue(store, "QN4", "e@example.net")  # never tried: no delay notice
    now = clock.now()
    for ls in await lease(store, now):
        if ls.message.queue_id != "QN4":
            await store.settle(ls, {ls.recipients[0].id: Outcome.deferred("451 busy")}, now)
    assert await store.due_delay_notices(now + dt.timedelta(hours=3, minutes=59)) == []
    at = now + dt.timedelta(hours=4)
    (notice,) = await store.due_delay_notices(at)
    assert notice.message.queue_id == "QN1"
    assert [(r.address, r.last_reply) for r in notice.recipients] == [("b@example.net", "451 busy")]
    await store.mark_delay_notified([r.id for r in notice.recipients])
    assert await store.due_delay_notices(at) == []
    short = BackoffPolicy(delay_notice_after=60)
    assert await store.due_delay_notices(now + dt.timedelta(seconds=60), short) == []


async def test_success_notice_is_reported_when_asked(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "QS", "b@example.net", notify=frozenset({Notify.SUCCESS}))
    now = clock.now()
    (held,) = await lease(store, now)
    await store.settle(held, {held.recipients[0].id: Outcome.delivered("250 ok")}, now)
    (finished,) = await store.finished_messages()
    assert [r.address for r in finished.delivered_with_notice] == ["b@example.net"]
    assert finished.failed == ()


# -- blobs ---------------------------------------------------------------------------------


def blob_path(blob_dir: Path, ref: BlobRef) -> Path:
    return blob_dir / ref.key[:2] / ref.key[2:]


async def test_queued_blobs_survive_recovery_and_are_collected_after(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    """Start-up recovery must count queue_messages as references to blobs."""
    large = b"L" * (limits.BLOB_INLINE_MAX + 1)
    small = body(9)
    big_id = await enqueue(store, "QBIG", "b@example.net", data=large)
    small_id = await enqueue(store, "QSMALL", "c@example.net", data=small)
    entry = await store.queue_show("QBIG")
    assert entry is not None
    big_ref = entry.message.blob
    await store.close()
    age_files(blob_dir)

    again = open_store(database_url, blob_dir, clock=clock)
    report = await again.open()
    try:
        assert report.orphan_blobs_removed == 0
        assert blob_path(blob_dir, big_ref).exists()
        assert await read_all(again, big_id) == TRACE + large
        assert await read_all(again, small_id) == TRACE + small
        now = clock.now()
        for ls in await lease(again, now):
            await again.settle(ls, {ls.recipients[0].id: Outcome.delivered()}, now)
        finished = await again.finished_messages()
        assert await again.forget_finished([e.message.id for e in finished]) == 2
    finally:
        await again.close()
    age_files(blob_dir)

    last = open_store(database_url, blob_dir, clock=clock)
    report = await last.open()
    await last.close()
    assert report.orphan_blobs_removed == 1
    assert not blob_path(blob_dir, big_ref).exists()
