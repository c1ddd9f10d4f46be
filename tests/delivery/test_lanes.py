"""The worker's lanes: a connection outlives its lease batch (the connection cache),
QUITs when idle, and makes room for another domain's mail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from postel.delivery.lanes import CONNECTION_IDLE_S, MESSAGES_PER_CONNECTION_MIN, Lane
from postel.store import Store
from postel.store.queue_api import RecipientState

from .conftest import Sink, WorkerFactory
from .test_worker import enqueue, recipients


async def delivered(store: Store, queue_id: str, address: str, within: float = 10.0) -> float:
    """Seconds until ``address`` of ``queue_id`` is delivered (fails after ``within``)."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if (await recipients(store, queue_id))[address].state is RecipientState.DELIVERED:
            return time.monotonic() - began
        await asyncio.sleep(0.02)
    pytest.fail(f"{queue_id} not delivered within {within} s")


def connections(caplog: pytest.LogCaptureFixture) -> int:
    return [r.msg for r in caplog.records].count("delivery.connected")


async def test_the_next_lease_reuses_the_idle_connection(
    store: Store,
    sink_factory: Callable[..., Sink],
    make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = sink_factory()
    worker = make_worker(sink.port, poll_interval=30)
    task = asyncio.create_task(worker.run())
    try:
        with caplog.at_level(logging.INFO, logger="postel.delivery"):
            await enqueue(store, "R1", "a@example.test")
            worker.wake()
            await delivered(store, "R1", "a@example.test")
            await enqueue(store, "R2", "b@example.test")
            worker.wake()
            await delivered(store, "R2", "b@example.test")
            assert connections(caplog) == 1
            await asyncio.sleep(CONNECTION_IDLE_S + 0.5)  # idle too long: QUIT
            await enqueue(store, "R3", "c@example.test")
            worker.wake()
            await delivered(store, "R3", "c@example.test")
            assert connections(caplog) == 2
    finally:
        await worker.stop(grace=2)
        await asyncio.wait_for(task, 5)


async def test_an_idle_connection_makes_room_for_another_domain(
    store: Store,
    sink_factory: Callable[..., Sink],
    make_worker: WorkerFactory,
) -> None:
    sink = sink_factory()
    worker = make_worker(sink.port, poll_interval=30, connections_max=1)
    task = asyncio.create_task(worker.run())
    try:
        await enqueue(store, "A1", "a@example.test")
        worker.wake()
        await delivered(store, "A1", "a@example.test")
        await enqueue(store, "B1", "b@peer.example.test")
        worker.wake()
        # example.test's idle connection gives up its room at once, not after its idle time
        assert await delivered(store, "B1", "b@peer.example.test") < CONNECTION_IDLE_S
    finally:
        await worker.stop(grace=2)
        await asyncio.wait_for(task, 5)


async def test_one_lease_batch_over_two_domains_within_the_bound(
    store: Store,
    sink_factory: Callable[..., Sink],
    make_worker: WorkerFactory,
) -> None:
    sink = sink_factory()
    for n in range(6):
        domain = "example.test" if n % 2 else "peer.example.test"
        await enqueue(store, f"Z{n}", f"u{n}@{domain}")
    worker = make_worker(sink.port, connections_max=1)
    assert await worker.run_once() == 6
    for n in range(6):
        domain = "example.test" if n % 2 else "peer.example.test"
        got = await recipients(store, f"Z{n}")
        assert got[f"u{n}@{domain}"].state is RecipientState.DELIVERED


def test_a_lane_asks_for_a_connection_per_few_leases() -> None:
    lane = Lane("example.test", False)
    assert lane.wanted() == 0
    lane.pending.extend([object()] * (MESSAGES_PER_CONNECTION_MIN + 1))  # type: ignore[list-item]
    assert lane.wanted() == 2
    assert len(lane.take_all()) == MESSAGES_PER_CONNECTION_MIN + 1 and lane.wanted() == 0
