"""The delivery worker end to end: a SQLite queue, Knot DNS, Postfix's smtp-sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest

from postel.delivery.worker import UNRECORDED_PER_CONNECTION_MAX
from postel.store import Store
from postel.store.queue_api import NewQueuedMessage, NewRecipient, QueueRecipient, RecipientState

from .conftest import Sink, WorkerFactory, free_port

TRACE = b"Received: from client.example.net by mx.example.org; Sun, 29 Nov 2026\r\n"


def body(n: int) -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.test\r\nSubject: outbound {n}\r\n\r\n"
        f"line one of {n}\r\n.leading dot\r\nend\r\n"
    ).encode()


async def enqueue(store: Store, queue_id: str, *addresses: str, data: bytes | None = None) -> None:
    writer = store.blob_writer()
    writer.write(data if data is not None else body(len(queue_id)))
    ref = await writer.commit()
    message = NewQueuedMessage(queue_id, ref, "a@example.org", trace_prefix=TRACE)
    rcpts = [NewRecipient(a, a.rpartition("@")[2]) for a in addresses]
    await store.enqueue(message, rcpts)


async def recipients(store: Store, queue_id: str) -> dict[str, QueueRecipient]:
    entry = await store.queue_show(queue_id)
    assert entry is not None
    return {r.address: r for r in entry.recipients}


async def test_delivered_and_dumped(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory()
    await enqueue(store, "Q1", "b@example.test", "c@example.test", data=body(1))
    assert await make_worker(sink.port).run_once() == 1
    got = await recipients(store, "Q1")
    assert {a: r.state for a, r in got.items()} == {
        "b@example.test": RecipientState.DELIVERED,
        "c@example.test": RecipientState.DELIVERED,
    }
    assert got["b@example.test"].last_reply is not None
    assert got["b@example.test"].last_reply.startswith("250")
    dump = sink.dumped(b"end")
    assert TRACE.rstrip(b"\r\n").replace(b"\r", b"") in dump.replace(b"\r", b"")
    assert b"X-Rcpt-Args: <b@example.test>" in dump and b"X-Rcpt-Args: <c@example.test>" in dump
    assert b"\n.leading dot" in dump.replace(b"\r", b"")  # dot-stuffed, un-stuffed by the sink


async def test_several_messages_over_one_connection(
    store: Store,
    sink_factory: Callable[..., Sink],
    make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = sink_factory()
    for n in range(4):
        await enqueue(store, f"M{n}", f"user{n}@example.test", data=body(100 + n))
    worker = make_worker(sink.port, connections_per_domain_max=1)
    with caplog.at_level(logging.INFO, logger="postel.delivery"):
        assert await worker.run_once() == 4
    for n in range(4):
        got = await recipients(store, f"M{n}")
        assert got[f"user{n}@example.test"].state is RecipientState.DELIVERED
    events = [r.msg for r in caplog.records]
    assert events.count("delivery.connected") == 1
    assert events.count("delivery.sent") == 4
    dump = sink.dumped(b"outbound 103")
    assert all(f"outbound {100 + n}".encode() in dump for n in range(4))


async def test_a_connection_has_a_bounded_number_of_unrecorded_messages(
    store: Store,
    sink_factory: Callable[..., Sink],
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However slow the commits of outcomes, a connection has at most
    UNRECORDED_PER_CONNECTION_MAX messages accepted by the peer and not recorded, so a
    crash repeats at most that many of its messages. Spec: RELIABILITY.md D1."""
    sink = sink_factory()
    for n in range(8):
        await enqueue(store, f"W{n}", f"user{n}@example.test", data=body(200 + n))
    events: list[str] = []
    settle = store.settle

    async def slow_settle(*args: Any, **kwargs: Any) -> Any:
        events.append("accepted")  # a settle follows the peer's reply
        await asyncio.sleep(0.2)  # a commit slower than a whole transaction
        result = await settle(*args, **kwargs)
        events.append("recorded")
        return result

    monkeypatch.setattr(store, "settle", slow_settle)
    assert await make_worker(sink.port, connections_per_domain_max=1).run_once() == 8
    unrecorded = [
        events[:at].count("accepted") - events[:at].count("recorded") + 1
        for at, event in enumerate(events)
        if event == "accepted"
    ]
    assert max(unrecorded) == UNRECORDED_PER_CONNECTION_MAX, events
    assert events.count("recorded") == 8


async def test_soft_refusal_defers_with_backoff(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory("-r", "RCPT")  # every RCPT: 450 4.3.0
    await enqueue(store, "S1", "b@example.test")
    before = dt.datetime.now(dt.UTC)
    await make_worker(sink.port).run_once()
    r = (await recipients(store, "S1"))["b@example.test"]
    assert r.state is RecipientState.DEFERRED
    assert r.attempts == 1
    assert r.next_attempt > before + dt.timedelta(seconds=250)  # the first retry: 5 minutes
    assert r.last_reply is not None and r.last_reply.startswith("450")


async def test_hard_refusal_fails_with_the_reply(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory("-f", "RCPT", "-B", "550 5.1.1 Recipient unknown")
    await enqueue(store, "H1", "nobody@example.test")
    await make_worker(sink.port).run_once()
    r = (await recipients(store, "H1"))["nobody@example.test"]
    assert r.state is RecipientState.FAILED
    assert r.last_reply == "550 5.1.1 Recipient unknown"


async def test_refused_content_fails_every_recipient(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory("-f", ".", "-B", "554 5.7.1 Content rejected")
    await enqueue(store, "C1", "b@example.test", "c@example.test")
    await make_worker(sink.port).run_once()
    got = await recipients(store, "C1")
    assert {r.state for r in got.values()} == {RecipientState.FAILED}
    assert {r.last_reply for r in got.values()} == {"554 5.7.1 Content rejected"}


async def test_421_mid_session_defers(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory("-Q", "MAIL")
    await enqueue(store, "G1", "b@example.test")
    await make_worker(sink.port).run_once()
    r = (await recipients(store, "G1"))["b@example.test"]
    assert r.state is RecipientState.DEFERRED and r.attempts == 1
    assert r.last_reply is not None and r.last_reply.startswith("421")


async def test_destination_down_defers(store: Store, make_worker: WorkerFactory) -> None:
    await enqueue(store, "D1", "b@example.test")
    await make_worker(free_port()).run_once()
    r = (await recipients(store, "D1"))["b@example.test"]
    assert r.state is RecipientState.DEFERRED and r.attempts == 1
    assert r.last_reply is not None and r.last_reply.startswith("451 4.4.1")


async def test_null_mx_fails_without_connecting(store: Store, make_worker: WorkerFactory) -> None:
    connections = 0

    def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await enqueue(store, "N1", "b@nullmx.example.test")
        await make_worker(port).run_once()
    r = (await recipients(store, "N1"))["b@nullmx.example.test"]
    assert r.state is RecipientState.FAILED and r.attempts == 0
    assert r.last_reply is not None and r.last_reply.startswith("556 5.1.10")
    assert connections == 0


async def test_implicit_mx_and_unknown_domain(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory()
    await enqueue(store, "I1", "b@implicit.example.test")
    await enqueue(store, "X1", "b@missing.example.test")
    await make_worker(sink.port).run_once()
    assert (await recipients(store, "I1"))["b@implicit.example.test"].state is (
        RecipientState.DELIVERED
    )
    missing = (await recipients(store, "X1"))["b@missing.example.test"]
    assert missing.state is RecipientState.FAILED
    assert missing.last_reply is not None and missing.last_reply.startswith("550 5.1.2")


async def test_run_loop_wakes_and_stops_cleanly(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory()
    worker = make_worker(sink.port, poll_interval=30)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)
    await enqueue(store, "W1", "b@example.test")
    worker.wake()
    for _ in range(100):
        if (await recipients(store, "W1"))["b@example.test"].state is RecipientState.DELIVERED:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("not delivered after wake()")
    await worker.stop(grace=2)
    await asyncio.wait_for(task, 5)


async def test_stop_hands_back_leases_it_cannot_finish(
    store: Store, sink_factory: Callable[..., Sink], make_worker: WorkerFactory
) -> None:
    sink = sink_factory("-w", "30")  # the sink sits on DATA for 30 s
    for n in range(3):
        await enqueue(store, f"T{n}", f"u{n}@example.test")
    worker = make_worker(sink.port, connections_per_domain_max=1)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(1.0)
    await worker.stop(grace=0.5)
    await asyncio.wait_for(task, 5)
    states = [(await recipients(store, f"T{n}"))[f"u{n}@example.test"] for n in range(3)]
    assert [r.state for r in states].count(RecipientState.LEASED) == 1  # cut short: expires
    handed_back = [r for r in states if r.state is not RecipientState.LEASED]
    assert all(r.state is RecipientState.QUEUED and r.attempts == 0 for r in handed_back)


async def test_a_kept_connection_closed_by_the_peer_is_replaced_at_once(
    store: Store, make_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The peer closes a connection after each transaction while it idles (as a server
    that restarts does; RFC 5321 §4.5.3.2.7): the next message, sent over the kept
    connection, fails on it and goes again at once on a new connection instead of
    being deferred with back-off."""
    connections: list[int] = []
    delivered: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.write(b"220 closing.example ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250 closing.example\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                delivered.append(data)
                writer.write(b"250 2.0.0 taken\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.close()  # gone while the client keeps the connection
                return
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    worker = make_worker(port, poll_interval=30)
    task = asyncio.create_task(worker.run())
    try:
        with caplog.at_level(logging.INFO, logger="postel.delivery"):
            for n in (1, 2):
                await enqueue(store, f"K{n}", "b@example.test", data=body(n))
                worker.wake()
                for _ in range(100):
                    got = (await recipients(store, f"K{n}"))["b@example.test"]
                    if got.state is RecipientState.DELIVERED:
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail(f"K{n} not delivered at once: {got}")
                await asyncio.sleep(0.3)  # the peer has closed the kept connection
        assert len(delivered) == 2 and len(connections) == 2
        assert [r.msg for r in caplog.records].count("delivery.reconnect") == 1
    finally:
        await worker.stop(grace=2)
        await asyncio.wait_for(task, 5)
        server.close()
        await server.wait_closed()
