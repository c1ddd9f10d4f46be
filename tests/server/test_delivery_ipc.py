"""The delivery channel between SMTP worker processes and the committing process, over
a real socketpair: the codec round-trips every field, store errors come back as the
same types, a bad frame ends the channel without a traceback, and a worker whose main
process is gone gets IpcClosed at once (docs/adr/0005)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import logging
import os
import pickle
import socket
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from postel.errors import NotFound, StoreError
from postel.ids import AccountId, DomainId, MailboxId, QueueId
from postel.server.delivery_ipc import (
    IPC_FRAME_MAX,
    WORKER_STORE_CALLS,
    DeliveryClient,
    DeliveryServer,
    IpcClosed,
    decode_deliveries,
    dumps,
    encode_deliveries,
    loads,
)
from postel.smtp.params import Body, Notify, Orcpt, Ret
from postel.store import BlobRef, Delivered, Delivery
from postel.store.api import (
    Account,
    Credentials,
    DirectoryEntry,
    DirectoryLookup,
    Domain,
    Mailbox,
    SenderPolicy,
    SpecialUse,
)
from postel.store.blobs import is_blob_key
from postel.store.dmarc_api import (
    DmarcDkimOutcome,
    DmarcEvaluation,
    DmarcPolicySnapshot,
    ReceivedReport,
)
from postel.store.queue_api import NewQueuedMessage, NewRecipient
from postel.store.quota_api import QuotaUsage

WHEN = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _delivery(
    inline: bytes | None = b"Subject: x\r\n\r\nhi\r\n", mailbox: str = "INBOX"
) -> Delivery:
    return Delivery(
        account_id=AccountId(7),
        mailbox=mailbox,
        blob=BlobRef("ab" * 32, 19, inline),
        trace_prefix=b"Return-Path: <a@b>\r\n\xff",
        internal_date=WHEN,
        summary='{"s": "\\u00e9"}',
        flags=frozenset({"\\Seen", "$Junk"}),
        queue_id=QueueId("Q1"),
    )


def test_codec_round_trips_every_field() -> None:
    for original in (_delivery(), _delivery(None)):
        (back,) = decode_deliveries(encode_deliveries([original]))
        assert back == original and back.blob.inline == original.blob.inline


def test_the_copies_of_one_message_carry_its_blob_and_summary_once() -> None:
    copies = [dataclasses.replace(_delivery(), account_id=AccountId(n)) for n in range(50)]
    value = encode_deliveries(copies)
    assert len(value["blobs"]) == 1 and len(value["summaries"]) == 1
    assert decode_deliveries(value) == copies


def test_codec_refuses_a_date_without_time_zone() -> None:
    value = encode_deliveries([_delivery()])
    value["items"][0]["internal_date"] = "2026-11-29T12:00:00"
    with pytest.raises(ValueError):
        decode_deliveries(value)


class _Store:
    """Commits by numbering; a mailbox named "missing" is NotFound."""

    def __init__(self) -> None:
        self.uid = 0

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
        if any(d.mailbox == "missing" for d in deliveries):
            raise NotFound("no such mailbox")
        out = []
        for d in deliveries:
            self.uid += 1
            out.append(Delivered(d.account_id, MailboxId(3), 99, self.uid, self.uid))
        return out


async def test_deliveries_and_errors_cross_the_channel() -> None:
    ours, theirs = socket.socketpair()
    woken: list[str] = []
    server = DeliveryServer(_Store(), lambda: woken.append("wake"), lambda: woken.append("up"))  # type: ignore[arg-type]
    served = asyncio.create_task(server.serve(ours))
    client = DeliveryClient()
    await client.connect(theirs)
    results = await asyncio.gather(*(client.deliver([_delivery(), _delivery()]) for _ in range(20)))
    uids = sorted(d.uid for batch in results for d in batch)
    assert uids == list(range(1, 41))
    with pytest.raises(NotFound):
        await client.deliver([_delivery(mailbox="missing")])
    client.wake_queue()
    client.up()
    await client.close()
    await asyncio.wait_for(served, 5)
    assert woken == ["wake", "up"]


async def test_the_worker_learns_at_once_that_the_main_process_is_gone() -> None:
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(_Store()).serve(ours))  # type: ignore[arg-type]
    client = DeliveryClient()
    await client.connect(theirs)
    served.cancel()
    ours.close()
    await asyncio.wait_for(client.closed.wait(), 5)
    with pytest.raises(IpcClosed):
        await client.deliver([_delivery()])


async def test_an_oversized_frame_ends_the_channel_quietly() -> None:
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(_Store()).serve(ours))  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection(sock=theirs)
    await reader.readexactly(4 + len(b'{"op":"ready"}'))
    writer.write(struct.pack("!I", IPC_FRAME_MAX + 1))
    await writer.drain()
    await asyncio.wait_for(served, 5)
    assert await reader.read() == b""
    writer.close()


async def test_a_worker_gone_with_deliveries_in_flight_ends_the_channel_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker killed while the main process commits its deliveries (kill -9, crash):
    the commits finish and their answers are dropped, with no write to the dead
    channel (asyncio warns from the fifth) and nothing logged above INFO."""
    gate = asyncio.Event()

    class _Slow(_Store):
        async def deliver(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
            await gate.wait()
            return await super().deliver(deliveries)

    store = _Slow()
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(store).serve(ours))  # type: ignore[arg-type]
    theirs.sendall(
        b"".join(
            struct.pack("!I", len(body)) + body
            for body in (
                json.dumps(
                    {"id": n, "op": "deliver", "deliveries": encode_deliveries([_delivery()])}
                ).encode()
                for n in range(1, 9)
            )
        )
    )
    await asyncio.sleep(0.2)  # all eight are read and wait in the store
    theirs.close()  # unread "ready" frame: the main process's next read is a reset
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(served, 5)
    assert store.uid == 8  # every commit stands
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.INFO] == []


class _Directory(_Store):
    """Answers the worker store calls it knows; records what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, object]] = []

    async def lookup_addresses(self, keys: Sequence[str]) -> dict[str, int]:
        self.asked.append(("lookup_addresses", tuple(keys)))
        return {key: n for n, key in enumerate(keys)}

    async def list_mailboxes(self, account_id: AccountId) -> list[object]:
        raise NotFound(f"no account {account_id}")

    async def get_domain(self, name: str) -> object:
        return _Unpicklable()

    async def close(self) -> None:  # a Store method a worker is not given
        raise AssertionError("the main process ran a method outside WORKER_STORE_CALLS")


class _Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("main process result",))


async def _channel(store: _Store) -> tuple[DeliveryClient, asyncio.Task[None]]:
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(store).serve(ours))  # type: ignore[arg-type]
    client = DeliveryClient()
    await client.connect(theirs)
    return client, served


async def test_a_worker_store_call_runs_in_the_main_process() -> None:
    store = _Directory()
    client, served = await _channel(store)
    answers = await asyncio.gather(
        *(client.call("lookup_addresses", [f"a{n}@x.test", "b@x.test"]) for n in range(10))
    )
    assert answers[3] == {"a3@x.test": 0, "b@x.test": 1}
    assert len(store.asked) == 10
    with pytest.raises(NotFound, match="no account 7"):
        await client.call("list_mailboxes", AccountId(7))
    # postel's own types and the plain standard ones cross both ways
    assert await client.call("lookup_addresses", [_delivery()]) == {_delivery(): 0}
    await client.close()
    await asyncio.wait_for(served, 5)


async def test_a_method_outside_the_worker_calls_is_refused_and_the_channel_goes_on() -> None:
    client, served = await _channel(_Directory())
    for method in ("close", "deliver", "__class__", "_write", "reindex_all"):
        assert method not in WORKER_STORE_CALLS
        with pytest.raises(StoreError, match="not a store call for workers"):
            await client.call(method)
    assert await client.call("lookup_addresses", ["a@x.test"]) == {"a@x.test": 0}
    await client.close()
    await asyncio.wait_for(served, 5)


async def test_a_pickle_naming_a_function_runs_nothing_in_the_main_process(
    tmp_path: Path,
) -> None:
    """A worker that parses hostile mail must not be able to make the main process run
    code by what it sends: only classes of postel and plain types may be named."""
    flag = tmp_path / "ran"
    gadgets = [
        _gadget(os.system, f"touch {flag}"),
        _gadget(eval, f"open({str(flag)!r}, 'w')"),
        _gadget(subprocess.call, ["touch", str(flag)]),
        _gadget(is_blob_key, "a function of postel is not a class"),
        # paths through a postel module's attributes to a class somewhere else
        _named(
            "postel.server.delivery_ipc",
            "asyncio.subprocess.subprocess.Popen",
            ["touch", str(flag)],
        ),
        _named("postel.server.smtp_workers", "subprocess.Popen", ["touch", str(flag)]),
        _named("postel.server.delivery_ipc", "io.FileIO", str(flag), "w"),
        _named("postel.store.api", "Path", str(flag)),  # imported into a data module
        _named("postel.store.api", "io.__class__.__class__", "x", (), {}),
        _named("postel.store.api", "Store", 1),  # defined there, but not data
        _named("postel.app.build", "SqlStore", "sqlite:///" + str(flag), str(tmp_path)),
        _named("pathlib", "Path", str(flag)),
    ]
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(_Directory()).serve(ours))  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection(sock=theirs)
    await reader.readexactly(4 + len(b'{"op":"ready"}'))
    for n, gadget in enumerate(gadgets, 1):
        body = json.dumps(
            {"id": n, "op": "call", "method": "lookup_addresses", "args": gadget}
        ).encode()
        writer.write(struct.pack("!I", len(body)) + body)
        await writer.drain()
        (length,) = struct.unpack("!I", await reader.readexactly(4))
        reply = json.loads(await reader.readexactly(length))
        assert reply["id"] == n and reply["error"] == "store", reply
        assert "may not cross the worker channel" in reply["message"]
    assert not flag.exists()
    writer.close()
    await asyncio.wait_for(served, 5)


def _named(module: str, name: str, *args: object) -> str:
    """A pickle (protocol 4: dotted names are looked up) calling ``module``.``name``(*args)."""
    call = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    call += pickle.dumps(args, protocol=2)[2:-1] + b"R"
    return base64.b64encode(b"\x80\x04" + call + b"}\x86.").decode()


def _gadget(function: object, *args: object) -> str:
    class Call:
        def __reduce__(self) -> tuple[object, ...]:
            return (function, args)

    return base64.b64encode(pickle.dumps(((Call(),), {}))).decode()


async def test_a_result_that_cannot_cross_fails_that_call_alone() -> None:
    client, served = await _channel(_Directory())
    with pytest.raises(StoreError):
        await client.call("get_domain", "x.test")
    assert await client.call("lookup_addresses", ["a@x.test"]) == {"a@x.test": 0}
    await client.close()
    await asyncio.wait_for(served, 5)


def _crossing_values() -> list[object]:
    """One value of every type the arguments and results of WORKER_STORE_CALLS hold."""
    credentials = Credentials("$argon2id$...", b"salt", 4096, b"stored", b"server")
    account = Account(
        AccountId(3), "a@x.test", DomainId(1), credentials, WHEN, True, SenderPolicy.DOMAIN, 5, 6
    )
    policy = DmarcPolicySnapshot("reject", "quarantine", None, "s", "r", True, "1", ("m@x",))
    return [
        Domain(DomainId(1), "x.test", WHEN),
        account,
        DirectoryLookup(frozenset({"x.test"}), (DirectoryEntry("a@x.test", ("b@x.test",)),)),
        Mailbox(MailboxId(2), AccountId(3), "Junk", SpecialUse.JUNK, 1, 2, 3, True),
        QuotaUsage(AccountId(3), 10, None, 2, 100),
        NewQueuedMessage(
            "Q1", BlobRef("ab" * 32, 3, None), "", b"R", "e", Ret.HDRS, Body.BINARY_MIME
        ),
        NewRecipient("r@y.test", "y.test", frozenset({Notify.SUCCESS}), Orcpt("rfc822", "r@y")),
        DmarcEvaluation(
            1,
            "x.test",
            "192.0.2.1",
            "x.test",
            "none",
            True,
            False,
            policy,
            WHEN,
            dkim=(DmarcDkimOutcome("x.test", "s", "pass"),),
        ),
        ReceivedReport("o", "id", "e@o", "x.test", 1, 2, 3, 4, 5, 6, "r@x.test", WHEN),
        dt.timedelta(seconds=3),
        dt.date(2026, 11, 30),
        {"k": (1, b"x", None, 2.5, [True])},
        {1, 2},
    ]


def test_the_pickle_field_round_trips_store_types_and_refuses_anything_else() -> None:
    for value in _crossing_values():
        assert loads(dumps(value)) == value
    value = ([_delivery()], frozenset({"\\Seen"}), dt.timedelta(seconds=3), {"k": (1, b"x")})
    assert loads(dumps(value)) == value
    with pytest.raises(ValueError, match="may not cross"):
        loads(_gadget(os.system, "true"))
    for junk in ("", "not base64!", base64.b64encode(b"\x80\x05junk").decode(), 7):
        with pytest.raises(ValueError):
            loads(junk)
